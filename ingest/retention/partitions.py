"""Monthly partitions of the events table on PostgreSQL; SQLite keeps one plain table.

Each month of event timestamps has a partition ``ingest_event_pYYYY_MM``, created ahead of time
by ``partitions_ensure``. The DEFAULT partition takes any timestamp without a month of its own (an
event sent long after it happened, or far ahead), so an insert never fails for want of one.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from ingest.models import Event

logger = logging.getLogger(__name__)

TABLE = Event._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
MONTHS_AHEAD = 3
LOCK_TIMEOUT = "5s"
_CREATE_LOCK_KEY = 7_391_004_012


def month_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime
    end: datetime


def partition_name(month: datetime) -> str:
    return f"{TABLE}_p{month:%Y_%m}"


def partitions_list() -> list[Partition]:
    """The month partitions that exist, oldest first (none on SQLite)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    partitions = []
    for name in names:
        if name == DEFAULT_PARTITION:
            continue
        month = datetime.strptime(name.removeprefix(f"{TABLE}_p"), "%Y_%m").replace(tzinfo=UTC)
        partitions.append(Partition(name, month, next_month(month)))
    return sorted(partitions, key=lambda partition: partition.start)


def partition_create(*, month: datetime) -> Partition:
    """Creates the partition of ``month``, moving into it any of its rows the DEFAULT partition held
    (PostgreSQL refuses a new partition whose rows sit in the default), all in one transaction."""
    month = month_start(month)
    partition = Partition(partition_name(month), month, next_month(month))
    bounds = (partition.start, partition.end)
    with transaction.atomic(), connection.cursor() as cursor:
        # Creating a partition locks the whole events table: give up rather than queue every insert
        # behind a long reader; one creator at a time, and what another made is not made again.
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CREATE_LOCK_KEY])
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [partition.name])
        if cursor.fetchone()[0]:
            return partition
        cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(
            f'SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE "timestamp" >= %s AND "timestamp" < %s)', bounds
        )
        moving = cursor.fetchone()[0]
        if moving:
            cursor.execute(
                f"CREATE TEMPORARY TABLE moving_events ON COMMIT DROP AS SELECT * FROM {DEFAULT_PARTITION} "
                f'WHERE "timestamp" >= %s AND "timestamp" < %s',
                bounds,
            )
            cursor.execute(f'DELETE FROM {DEFAULT_PARTITION} WHERE "timestamp" >= %s AND "timestamp" < %s', bounds)
        cursor.execute(
            f"CREATE TABLE {partition.name} PARTITION OF {TABLE} FOR VALUES "
            f"FROM ('{partition.start.isoformat()}') TO ('{partition.end.isoformat()}')"
        )
        if moving:
            cursor.execute(f"INSERT INTO {TABLE} OVERRIDING SYSTEM VALUE SELECT * FROM moving_events")
    return partition


def partitions_ensure(*, months_ahead: int = MONTHS_AHEAD, now: datetime | None = None) -> list[Partition]:
    """Creates the partitions of this month and the next ``months_ahead`` that are missing; returns them."""
    if connection.vendor != "postgresql":
        return []
    existing = {partition.name for partition in partitions_list()}
    month = month_start(now or timezone.now())
    created = []
    for _ in range(months_ahead + 1):
        if partition_name(month) not in existing:
            try:
                created.append(partition_create(month=month))
            except OperationalError as error:  # the table stayed busy past LOCK_TIMEOUT: the next run tries again
                logger.warning("partition of %s not created this time: %s", month.strftime("%Y-%m"), error)
        month = next_month(month)
    return created

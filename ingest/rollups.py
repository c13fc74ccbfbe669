"""Rollups and accepted-event outcomes, built from the events table by id, exactly once.

``rollups_update`` reads the events stored since its last run (ids past its cursor), adds their
counts to the rollups (per minute, hour and day of the event's timestamp; by type, and by type
and each other dimension) and to the ``accepted`` outcomes (per hour received), and moves the
cursor, one chunk of events per transaction: a crash changes nothing of the chunk it was in, a
re-run adds nothing twice, and late events (old timestamps) land in their old buckets. Events
younger than ``LAG_SECONDS`` wait for the next run, so an insert still committing with a lower id
is not passed over. One application's events never hold back the others': what cannot be counted
is skipped and recorded (``RollupSkip``), and the cursor moves on."""

import logging
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import Count, Max, Min, Value
from django.db.models.functions import Coalesce, Concat, Trim, Trunc
from django.utils import timezone
from psycopg.errors import QueryCanceled

from ingest.api_rollups import api_rollups_add, api_rollups_rebuild
from ingest.lambda_rollups import lambda_rollups_add, lambda_rollups_replace
from ingest.models import Archive, Event, EventRollup, Outcome, RollupCursor, RollupSkip

logger = logging.getLogger(__name__)
LAG_SECONDS = 10
CURSOR = "events"


def _insert_adding(model, queryset, columns: list[str], unique: list[str]) -> None:
    """INSERT ... SELECT of an aggregate queryset, adding to the counts of rows that exist."""
    select_sql, params = queryset.query.sql_with_params()
    table = model._meta.db_table
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}, count) {select_sql} "
        f"ON CONFLICT ({', '.join(unique)}) DO UPDATE SET count = {table}.count + excluded.count"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


Dimension = EventRollup.Dimension
# What each event is counted by, besides its type.
_DIMENSION_VALUES = {
    Dimension.TYPE: Value(""),
    Dimension.CATEGORY: Coalesce("category", Value("")),
    Dimension.SERVICE: Trim(
        Concat(Coalesce("service_name", Value("")), Value(" "), Coalesce("service_version", Value("")))
    ),
    Dimension.SDK: Coalesce("sdk_version", Value("")),
}


def _add_rollups(events) -> None:
    for granularity in EventRollup.Granularity.values:
        _add_granularity(events, granularity)


def minute_rollups_prune() -> int:
    """Deletes minute rollups older than the pages show; returns how many rows went."""
    deleted, _ = EventRollup.objects.filter(
        granularity=EventRollup.Granularity.MINUTE, bucket__lt=EventRollup.minute_rollups_since()
    ).delete()
    return deleted


def _add_accepted(events) -> None:
    grouped = (
        events.annotate(h=Trunc("received_at", "hour", tzinfo=UTC), o=Value(Outcome.Kind.ACCEPTED.value), r=Value(""))
        .values("organization_id", "application_id", "h", "o", "r")
        .annotate(n=Count("id"))
        .order_by()
    )
    _insert_adding(
        Outcome,
        grouped,
        ["organization_id", "application_id", "hour", "outcome", "reason"],
        ["application_id", "hour", "outcome", "reason"],
    )


def rollups_update(*, max_events: int = 500_000, lag_seconds: float = LAG_SECONDS) -> int:
    """Adds the events stored since the last run, a chunk of them per transaction; returns how many
    ids it moved past.

    A run stops starting chunks after ``ROLLUPS_RUN_SECONDS``, so the task's time limit, if it
    strikes, loses one chunk, and the next run carries on.
    """
    deadline = time.monotonic() + settings.ROLLUPS_RUN_SECONDS
    horizon = timezone.now() - timedelta(seconds=lag_seconds)
    moved, remaining = 0, max_events
    while remaining > 0 and time.monotonic() < deadline:
        chunk = min(settings.ROLLUPS_CHUNK_EVENTS, remaining)
        step = _chunk_add(chunk=chunk, horizon=horizon)
        if not step:
            break
        moved += step
        remaining -= chunk
    return moved


def _chunk_add(*, chunk: int, horizon: datetime) -> int:
    with transaction.atomic():
        cursor, _ = RollupCursor.objects.select_for_update().get_or_create(name=CURSOR)
        low = cursor.last_event_id
        # The next ``chunk`` ids rather than an id range, so a gap in the sequence is passed over.
        high = (
            Event.objects.filter(id__gt=low, received_at__lt=horizon)
            .order_by("id")
            .values("id")[:chunk]
            .aggregate(high=Max("id"))["high"]
        )
        if high is None:
            return 0
        if connection.vendor == "postgresql":
            with connection.cursor() as db:
                db.execute(
                    "SELECT set_config('statement_timeout', %s, true)", [f"{settings.ROLLUPS_STATEMENT_TIMEOUT}s"]
                )
        events = Event.objects.filter(id__gt=low, id__lte=high)
        _add_accepted(events)
        _add_isolated(events, first_id=low + 1, last_id=high)
        cursor.last_event_id = high
        cursor.save(update_fields=["last_event_id", "updated_at"])
        return high - low


_KINDS = {
    RollupSkip.Kind.EVENTS: _add_rollups,
    RollupSkip.Kind.API: api_rollups_add,
    RollupSkip.Kind.LAMBDA: lambda_rollups_add,
}


def _add_isolated(events, *, first_id: int, last_id: int) -> None:
    """Adds a chunk's events to the rollups of every kind. If that fails on the data (a value the
    database refuses, a statement past its timeout), each application's events are tried again, kind
    by kind; what still fails is recorded as a ``RollupSkip`` and left out, and the rest is counted."""
    try:
        with transaction.atomic():
            for add in _KINDS.values():
                add(events)
        return
    except Exception as error:
        if not _poisoned(error):
            raise
    for application_id in events.order_by().values_list("application_id", flat=True).distinct():
        theirs = events.filter(application_id=application_id)
        for kind, add in _KINDS.items():
            try:
                with transaction.atomic():
                    add(theirs)
            except Exception as error:
                if not _poisoned(error):
                    raise
                _skip_record(theirs, kind=kind, first_id=first_id, last_id=last_id, error=error)


def _poisoned(error: Exception) -> bool:
    """Whether an error comes from the events' data rather than an outage (which the task retries)."""
    if isinstance(error, OperationalError):
        return isinstance(error.__cause__, QueryCanceled)
    return isinstance(error, (DatabaseError, ValueError, TypeError, ArithmeticError))


def _skip_record(events, *, kind: str, first_id: int, last_id: int, error: Exception) -> RollupSkip:
    span = events.aggregate(
        n=Count("id"),
        first=Min("timestamp"),
        last=Max("timestamp"),
        organization_id=Max("organization_id"),
        application_id=Max("application_id"),
    )
    skip = RollupSkip.objects.create(
        organization_id=span["organization_id"],
        application_id=span["application_id"],
        kind=kind,
        first_event_id=first_id,
        last_event_id=last_id,
        events=span["n"],
        first_timestamp=span["first"],
        last_timestamp=span["last"],
        error=f"{type(error).__name__}: {error}"[:500],
    )
    logger.error(
        "rollups skipped",
        extra={
            "kind": kind,
            "organization_id": skip.organization_id,
            "application_id": skip.application_id,
            "first_event_id": first_id,
            "last_event_id": last_id,
            "events": skip.events,
            "error": skip.error,
        },
    )
    return skip


def rollups_rebuild(*, since: datetime, until: datetime, progress=None) -> int:
    """Recomputes the rollups of every UTC day that [since, until) touches, a day at a time, and
    returns how many events it counted.

    Bounds are widened to whole days, the coarsest bucket: recounting part of a bucket would count
    its other events twice or lose them. Only events the incremental job has already read are
    counted (the others it adds itself), and its cursor is locked meanwhile, so the two never count
    an event twice. Days with archived events are left as they are: their rollups are the only
    count of events no longer in the table.
    """
    day = _day_start(since)
    rebuilt = 0
    while day < until:
        next_day = day + timedelta(days=1)
        if Archive.objects.filter(start__lt=next_day, end__gt=day).exclude(state=Archive.State.WRITING).exists():
            if progress:
                progress(day, rebuilt)
            day = next_day
            continue
        with transaction.atomic():
            cursor, _ = RollupCursor.objects.select_for_update().get_or_create(name=CURSOR)
            EventRollup.objects.filter(bucket__gte=day, bucket__lt=next_day).delete()
            day_events = Event.objects.filter(id__lte=cursor.last_event_id, timestamp__gte=day, timestamp__lt=next_day)
            _add_rollups(day_events)
            lambda_rollups_replace(events=day_events, since=day, until=next_day)
            api_rollups_rebuild(day_events, since=day, until=next_day)
            rebuilt += day_events.count()
        if progress:
            progress(day, rebuilt)
        day = next_day
    return rebuilt


def _day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _add_granularity(events, granularity: str) -> None:
    if granularity == EventRollup.Granularity.MINUTE:
        events = events.filter(timestamp__gte=EventRollup.minute_rollups_since())
    for dimension, value in _DIMENSION_VALUES.items():
        grouped = (
            events.annotate(
                g=Value(granularity), d=Value(dimension.value), b=Trunc("timestamp", granularity, tzinfo=UTC), v=value
            )
            .values("organization_id", "application_id", "g", "d", "b", "event_type", "v")
            .annotate(n=Count("id"))
            .order_by()
        )
        _insert_adding(
            EventRollup,
            grouped,
            ["organization_id", "application_id", "granularity", "dimension", "bucket", "event_type", "value"],
            ["application_id", "granularity", "dimension", "bucket", "event_type", "value"],
        )

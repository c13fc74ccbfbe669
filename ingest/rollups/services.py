"""Rollups and accepted-event outcomes, built from the events table by id, exactly once.

``rollups_update`` reads the events stored since its last run (ids past a cursor), adds them to
rollup kinds (see ``engine``) and moves the cursor, one chunk of events per transaction, for each
follower: ``COUNTS`` (event counts, the API and Lambda rollups, and the ``accepted`` outcomes per
hour received) and ``INSIGHTS`` (users and properties), each on a cursor of its own. A crash
changes nothing of the chunk it was in, a re-run adds nothing twice, and late events (old
timestamps) land in their old buckets. A run reads no id past ``events_final_through``, so an
insert still committing with a lower id is not passed over. One application's events never hold
back the others': what cannot be counted is skipped and recorded (``RollupSkip``), and the cursor
moves on."""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import Count, Max, Min, Value
from django.db.models.functions import Trunc
from django.utils import timezone
from psycopg.errors import QueryCanceled

from ingest.models import (
    Archive,
    Event,
    Outcome,
    PropertyRollup,
    PropertyValueSlot,
    RollupCursor,
    RollupSkip,
    TrackedProperty,
    UserRollup,
)
from ingest.rollups import api, aws_lambda, engine, properties, users
from ingest.rollups import events as events_kind

logger = logging.getLogger(__name__)
# How long a run waits for the inserts running when it starts (one batch's insert, normally).
WAIT_SECONDS = 5
# One follower at a time uses it (the cursor's lock), so it can be generous.
ROLLUPS_WORK_MEM = "64MB"


@dataclass(frozen=True)
class Follower:
    """A cursor over the events table and the kinds it adds each event to, exactly once."""

    cursor: str
    kinds: tuple[engine.Spec, ...]
    outcomes: bool  # also counts the accepted outcomes


# Event counts first: see _add_kinds.
COUNTS = Follower("events", (events_kind.SPEC, api.SPEC, aws_lambda.SPEC), outcomes=True)
# Distinct users and properties cost twice what the counts do a chunk: on a cursor of their own, they
# never hold back the charts' freshness, even when they fall behind.
INSIGHTS = Follower("insights", (users.SPEC, properties.SPEC), outcomes=False)
FOLLOWERS = (COUNTS, INSIGHTS)
KINDS = COUNTS.kinds + INSIGHTS.kinds


def _add_accepted(events) -> None:
    grouped = (
        events.annotate(h=Trunc("received_at", "hour", tzinfo=UTC), o=Value(Outcome.Kind.ACCEPTED.value), r=Value(""))
        .values("organization_id", "application_id", "h", "o", "r")
        .annotate(n=Count("id"))
        .order_by()
    )
    select_sql, params = grouped.query.sql_with_params()
    table = Outcome._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (organization_id, application_id, hour, outcome, reason, count) {select_sql} "
            f"ON CONFLICT (application_id, hour, outcome, reason) DO UPDATE SET count = {table}.count + excluded.count",
            params,
        )


def rollups_update(
    *, max_events: int = 500_000, wait_seconds: float = WAIT_SECONDS, followers: tuple[Follower, ...] = FOLLOWERS
) -> int:
    """Adds the events stored since the last run, a chunk of them per transaction, for each follower
    in turn (up to ``max_events`` each); returns how many ids they moved past.

    A run stops starting chunks after ``ROLLUPS_RUN_SECONDS``, so the task's time limit, if it
    strikes, loses one chunk, and the next run carries on.
    """
    deadline = time.monotonic() + settings.ROLLUPS_RUN_SECONDS
    final = events_final_through(wait_seconds=wait_seconds)
    moved = 0
    for follower in followers:
        remaining = max_events
        while final is not None and remaining > 0 and time.monotonic() < deadline:
            chunk = min(settings.ROLLUPS_CHUNK_EVENTS, remaining)
            step = _chunk_add(follower, chunk=chunk, through=final)
            if not step:
                break
            moved += step
            remaining -= chunk
    return moved


def events_final_through(*, wait_seconds: float = WAIT_SECONDS) -> int | None:
    """The highest event id at or below which no insert is still running: every such id is stored
    for good or never will be. None if none could be shown within ``wait_seconds``.

    Ids come from a sequence as inserts start, so an insert still committing may hold an id below
    one already visible. Each transaction that took an id holds the sequence's RowExclusiveLock
    (nextval takes it) until it ends. So once the transactions holding it after the sequence's
    last value was read have ended, no id at or below that value can appear any more. They are
    inserts, a batch each: the wait is about one batch's insert, whatever the clocks say.
    SQLite has one writer at a time, and a writer's ids lie above every committed one.
    """
    if connection.vendor != "postgresql":
        return Event.objects.aggregate(high=Max("id"))["high"]
    with connection.cursor() as db:
        db.execute(f"SELECT pg_sequence_last_value(pg_get_serial_sequence('{Event._meta.db_table}', 'id'))")
        (last,) = db.fetchone()
        if last is None:
            return None
        db.execute(_INSERTS_RUNNING)
        running = [row[0] for row in db.fetchall()]
        deadline = time.monotonic() + wait_seconds
        while running:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.005)
            db.execute(f"{_INSERTS_RUNNING} AND virtualtransaction = ANY(%s)", [running])
            running = [row[0] for row in db.fetchall()]
    return last


# The transactions (other than this one) that took an event id and have not ended.
_INSERTS_RUNNING = (
    "SELECT DISTINCT virtualtransaction FROM pg_locks "
    f"WHERE locktype = 'relation' AND relation = pg_get_serial_sequence('{Event._meta.db_table}', 'id')::regclass "
    "AND mode = 'RowExclusiveLock' AND granted AND pid <> pg_backend_pid() "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def _chunk_add(follower: Follower, *, chunk: int, through: int) -> int:
    with transaction.atomic():
        cursor, _ = RollupCursor.objects.select_for_update().get_or_create(name=follower.cursor)
        low = cursor.last_event_id
        # The next ``chunk`` ids as a range from the first one there (ids are nearly dense; a query
        # for the next ``chunk`` rows themselves took 0.85 s on a backlog of a million). Ids up to
        # ``through`` are final, so the cursor may pass ids that never appeared.
        first = Event.objects.filter(id__gt=low, id__lte=through).aggregate(first=Min("id"))["first"]
        if first is None:
            return 0
        high = min(through, first + chunk - 1)
        if connection.vendor == "postgresql":
            with connection.cursor() as db:
                db.execute(
                    "SELECT set_config('statement_timeout', %s, true)", [f"{settings.ROLLUPS_STATEMENT_TIMEOUT}s"]
                )
                # A chunk's grouping sorts wide rows (hash sets): in memory rather than spilled to disk.
                db.execute("SELECT set_config('work_mem', %s, true)", [ROLLUPS_WORK_MEM])
        events = Event.objects.filter(id__gt=low, id__lte=high)
        if follower.outcomes:
            _add_accepted(events)
        _add_isolated(events, follower.kinds, first_id=low + 1, last_id=high)
        cursor.last_event_id = high
        cursor.save(update_fields=["last_event_id", "updated_at"])
        return high - low


def _add_isolated(events, kinds, *, first_id: int, last_id: int) -> None:
    """Adds a chunk's events to the rollups of every kind. If that fails on the data (a value the
    database refuses, a statement past its timeout), each application's events are tried again, kind
    by kind; what still fails is recorded as a ``RollupSkip`` and left out, and the rest is counted."""
    try:
        with transaction.atomic():
            _add_kinds(events, kinds)
        return
    except Exception as error:
        if not _poisoned(error):
            raise
    for application_id in events.order_by().values_list("application_id", flat=True).distinct():
        theirs = events.filter(application_id=application_id)
        for spec in kinds:
            try:
                with transaction.atomic():
                    engine.add(spec, theirs)
            except Exception as error:
                if not _poisoned(error):
                    raise
                _skip_record(theirs, kind=spec.name, first_id=first_id, last_id=last_id, error=error)


def _add_kinds(events, kinds) -> None:
    """Adds events to every kind. The event counts come first: their figures name the chunk's
    event types, so a kind none of whose types is there costs no pass over the chunk."""
    present = None
    for spec in kinds:
        if present is not None and spec.event_types is not None and not present & spec.event_types:
            continue
        delta = engine.add(spec, events)
        if spec is events_kind.SPEC:
            present = engine.distinct_values(delta, "event_type")


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


def rollups_rebuild(
    *, since: datetime, until: datetime, application_id: int | None = None, kinds=KINDS, progress=None
) -> int:
    """Recomputes the rollups of every UTC day that [since, until) touches, a day at a time, and
    returns how many events it counted; of one application and some kinds only, if given.

    Bounds are widened to whole days, the coarsest bucket: recounting part of a bucket would count
    its other events twice or lose them. Only events the incremental job has already read are
    counted (the others it adds itself), for each follower up to its own cursor, which is locked
    meanwhile, so the two never count an event twice. Days with archived events are left as they
    are: their rollups are the only count of events no longer in the table.
    """
    day = _day_start(since)
    rebuilt = 0
    while day < until:
        next_day = day + timedelta(days=1)
        if days_archived(since=day, until=next_day, application_id=application_id):
            if progress:
                progress(day, rebuilt)
            day = next_day
            continue
        with transaction.atomic():
            counted = 0
            for follower in FOLLOWERS:
                theirs = [spec for spec in follower.kinds if spec in kinds]
                if not theirs:
                    continue
                cursor, _ = RollupCursor.objects.select_for_update().get_or_create(name=follower.cursor)
                day_events = Event.objects.filter(
                    id__lte=cursor.last_event_id, timestamp__gte=day, timestamp__lt=next_day
                )
                if application_id is not None:
                    day_events = day_events.filter(application_id=application_id)
                for spec in theirs:
                    engine.replace(spec, day_events, since=day, until=next_day, application_id=application_id)
                counted = max(counted, day_events.count())
            rebuilt += counted
        if progress:
            progress(day, rebuilt)
        day = next_day
    return rebuilt


def days_archived(*, since: datetime, until: datetime, application_id: int | None = None) -> bool:
    """Whether archives hold events of [since, until) (of one application, if given)."""
    archives = Archive.objects.filter(start__lt=until, end__gt=since).exclude(state=Archive.State.WRITING)
    if application_id is not None:
        archives = archives.filter(application_id=application_id)
    return archives.exists()


def user_rollups_forget(*, application, user_id: str, session_ids: set[str], days: set[date]) -> None:
    """After ``user_id``'s events were erased from these UTC days: the rollups that count users
    (users, properties) are counted again from the events left, as if the user had never been seen.
    Days whose events are archived keep their rows, less the user's and the sessions' hashes in
    their sets (a sketch holds no hash, and its registers cannot tell whether one id was among the
    many it saw)."""
    for day in sorted(days):
        since = datetime(day.year, day.month, day.day, tzinfo=UTC)
        until = since + timedelta(days=1)
        rollups_rebuild(since=since, until=until, application_id=application.pk, kinds=INSIGHTS.kinds)
    if connection.vendor != "postgresql" or not days:
        return
    span = [
        application.pk,
        datetime.combine(min(days), datetime.min.time(), UTC),
        datetime.combine(max(days), datetime.min.time(), UTC) + timedelta(days=1),
    ]
    where = "WHERE application_id = %s AND bucket >= %s AND bucket < %s"
    seed, user_hash = application.user_hash_seed, "tk_keyed_hash(%s, %s)"
    session_hashes = "ARRAY(SELECT tk_keyed_hash(%s, s) FROM unnest(%s::text[]) AS s)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {UserRollup._meta.db_table} SET users_ids = array_remove(users_ids, {user_hash}), "
            "sessions_ids = CASE WHEN sessions_ids IS NOT NULL THEN "
            f"ARRAY(SELECT x FROM unnest(sessions_ids) AS x WHERE x <> ALL({session_hashes})) END {where}",
            [seed, user_id, seed, list(session_ids), *span],
        )
        cursor.execute(
            f"UPDATE {PropertyRollup._meta.db_table} SET users_ids = array_remove(users_ids, {user_hash}) {where}",
            [seed, user_id, *span],
        )


def _day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def rollups_prune() -> int:
    """Deletes the rollup rows past their kind's retention; returns how many went."""
    return sum(engine.prune(spec) for spec in KINDS)


# A new tracked property counts the events of these last days at once (in the background).
PROPERTY_BACKFILL_DAYS = 30


def tracked_property_check(*, application, event_type: str, path: str) -> str:
    """The JSON path of a property an operator asks to track, or the ValidationError that says why not."""
    if application.tracked_properties.count() >= TrackedProperty.PER_APPLICATION:
        raise ValidationError(
            f"An application may track at most {TrackedProperty.PER_APPLICATION} properties.", code="too_many"
        )
    TrackedProperty._meta.get_field("path").run_validators(path)
    json_path = properties.json_path(path)
    if application.tracked_properties.filter(event_type=event_type, json_path=json_path).exists():
        raise ValidationError("This property of this event type is tracked already.", code="tracked_already")
    return json_path


def tracked_property_create(
    *, application, event_type: str, path: str, kind: str, backfill: bool = True
) -> TrackedProperty:
    """Starts keeping a property's values; the events of the last ``PROPERTY_BACKFILL_DAYS`` days are
    counted by a background job (unless ``backfill`` is off), later ones as they arrive."""
    json_path = tracked_property_check(application=application, event_type=event_type, path=path)
    tracked = TrackedProperty.objects.create(
        application=application, event_type=event_type, path=path, json_path=json_path, kind=kind
    )
    if backfill:
        from ingest import tasks  # tasks import this module

        transaction.on_commit(lambda: tasks.property_backfill.delay(application_id=application.pk))
    return tracked


def property_backfill(*, application_id: int) -> int:
    """Counts again the tracked properties' values of the application's last days; returns how many
    events it read."""
    until = timezone.now()
    since = until - timedelta(days=PROPERTY_BACKFILL_DAYS)
    return rollups_rebuild(since=since, until=until, application_id=application_id, kinds=(properties.SPEC,))


def tracked_property_delete(*, tracked_property: TrackedProperty) -> None:
    """Stops keeping a property's values; its rollups and value slots go with it."""
    with transaction.atomic():
        PropertyRollup.objects.filter(property_id=tracked_property.pk).delete()
        PropertyValueSlot.objects.filter(property_id=tracked_property.pk).delete()
        tracked_property.delete()

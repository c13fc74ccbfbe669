"""Rollups and accepted-event outcomes, built from the events table by id, exactly once.

``rollups_update`` reads the events stored since its last run (ids past its cursor), adds their
counts to the rollups (per minute, hour and day of the event's timestamp; by type, and by type
and each other dimension) and to the ``accepted`` outcomes (per hour received), and moves the cursor, all in one
transaction: a crash changes nothing, a re-run adds nothing twice, and late events (old
timestamps) land in their old buckets. Events younger than ``LAG_SECONDS`` wait for the next run,
so an insert still committing with a lower id is not passed over.
"""

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Max, Value
from django.db.models.functions import Coalesce, Concat, Trim, Trunc
from django.utils import timezone

from ingest.api_rollups import api_rollups_add, api_rollups_rebuild
from ingest.lambda_rollups import lambda_rollups_add, lambda_rollups_replace
from ingest.models import Archive, Event, EventRollup, Outcome, RollupCursor

LAG_SECONDS = 10
CURSOR = "events"


def _insert_adding(model, queryset, columns: list[str], unique: list[str]) -> None:
    """INSERT ... SELECT of an aggregate queryset, adding to the counts of rows that exist."""
    select_sql, params = queryset.query.sql_with_params()
    table = model._meta.db_table
    sql = (f"INSERT INTO {table} ({', '.join(columns)}, count) {select_sql} "
           f"ON CONFLICT ({', '.join(unique)}) DO UPDATE SET count = {table}.count + excluded.count")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


Dimension = EventRollup.Dimension
# What each event is counted by, besides its type.
_DIMENSION_VALUES = {
    Dimension.TYPE: Value(""),
    Dimension.CATEGORY: Coalesce("category", Value("")),
    Dimension.SERVICE: Trim(Concat(Coalesce("service_name", Value("")), Value(" "),
                                   Coalesce("service_version", Value("")))),
    Dimension.SDK: Coalesce("sdk_version", Value("")),
}


def _add_rollups(events) -> None:
    for granularity in EventRollup.Granularity.values:
        _add_granularity(events, granularity)


def minute_rollups_prune() -> int:
    """Deletes minute rollups older than the pages show; returns how many rows went."""
    deleted, _ = EventRollup.objects.filter(granularity=EventRollup.Granularity.MINUTE,
                                            bucket__lt=EventRollup.minute_rollups_since()).delete()
    return deleted


def _add_accepted(events) -> None:
    grouped = (events.annotate(h=Trunc("received_at", "hour", tzinfo=UTC), o=Value(Outcome.Kind.ACCEPTED.value),
                               r=Value(""))
               .values("organization_id", "application_id", "h", "o", "r").annotate(n=Count("id")).order_by())
    _insert_adding(Outcome, grouped, ["organization_id", "application_id", "hour", "outcome", "reason"],
                   ["application_id", "hour", "outcome", "reason"])


def rollups_update(*, max_events: int = 500_000, lag_seconds: float = LAG_SECONDS) -> int:
    """Adds the events stored since the last run; returns how many ids it moved past."""
    with transaction.atomic():
        cursor, _ = RollupCursor.objects.select_for_update().get_or_create(name=CURSOR)
        low = cursor.last_event_id
        horizon = timezone.now() - timedelta(seconds=lag_seconds)
        high = Event.objects.filter(id__gt=low, id__lte=low + max_events,
                                    received_at__lt=horizon).aggregate(high=Max("id"))["high"]
        if high is None:
            return 0
        events = Event.objects.filter(id__gt=low, id__lte=high)
        _add_rollups(events)
        api_rollups_add(events)
        _add_accepted(events)
        lambda_rollups_add(events)
        cursor.last_event_id = high
        cursor.save(update_fields=["last_event_id", "updated_at"])
        return high - low


def rollups_rebuild(*, since: datetime, until: datetime, progress=None) -> int:
    """Recomputes the rollups of events whose timestamp falls in [since, until), a day at a time.

    Only events the incremental job has already read are counted (the others it adds itself), and
    its cursor is locked meanwhile, so the two never count an event twice. Days with archived events
    are left as they are: their rollups are the only count of events no longer in the table.
    """
    day = since.replace(hour=0, minute=0, second=0, microsecond=0)
    rebuilt = 0
    while day < until:
        end = min(day + timedelta(days=1), until)
        start = max(day, since)
        if Archive.objects.filter(start__lt=day + timedelta(days=1), end__gt=day).exclude(
                state=Archive.State.WRITING).exists():
            if progress:
                progress(day, rebuilt)
            day += timedelta(days=1)
            continue
        with transaction.atomic():
            cursor, _ = RollupCursor.objects.select_for_update().get_or_create(name=CURSOR)
            EventRollup.objects.filter(bucket__gte=start, bucket__lt=end).exclude(
                granularity=EventRollup.Granularity.DAY).delete()
            EventRollup.objects.filter(granularity=EventRollup.Granularity.DAY, bucket__gte=day,
                                       bucket__lt=day + timedelta(days=1)).delete()
            # A day bucket is rebuilt whole, even when the range starts or ends inside it.
            day_events = Event.objects.filter(id__lte=cursor.last_event_id, timestamp__gte=day,
                                              timestamp__lt=day + timedelta(days=1))
            in_range = day_events.filter(timestamp__gte=start, timestamp__lt=end)
            for granularity in (EventRollup.Granularity.MINUTE, EventRollup.Granularity.HOUR):
                _add_granularity(in_range, granularity)
            _add_granularity(day_events, EventRollup.Granularity.DAY)
            lambda_rollups_replace(events=in_range, since=start, until=end)
            api_rollups_rebuild(in_range, since=start, until=end)
            rebuilt += in_range.count()
        if progress:
            progress(day, rebuilt)
        day += timedelta(days=1)
    return rebuilt


def _add_granularity(events, granularity: str) -> None:
    if granularity == EventRollup.Granularity.MINUTE:
        events = events.filter(timestamp__gte=EventRollup.minute_rollups_since())
    for dimension, value in _DIMENSION_VALUES.items():
        grouped = (events.annotate(g=Value(granularity), d=Value(dimension.value),
                                   b=Trunc("timestamp", granularity, tzinfo=UTC), v=value)
                   .values("organization_id", "application_id", "g", "d", "b", "event_type", "v")
                   .annotate(n=Count("id")).order_by())
        _insert_adding(EventRollup, grouped, ["organization_id", "application_id", "granularity", "dimension",
                                              "bucket", "event_type", "value"],
                       ["application_id", "granularity", "dimension", "bucket", "event_type", "value"])

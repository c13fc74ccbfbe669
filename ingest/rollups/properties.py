"""Tracked properties' values per hour and day (``PropertyRollup``): for a text property, events and
users per value (at most ``TrackedProperty.VALUES_PER_DAY`` values a day, then "(other)"); for a
number, how many carried one, their sum, least, greatest and a histogram.

Events are read through the ``EventProperty`` view, a row per event and property tracked for its
type, so a chunk costs one pass whatever the number of properties."""

import re
from datetime import timedelta

from django.db.models import F, Max, Min, Q

from ingest.models import (
    PROPERTY_KEY_PATTERN,
    EventProperty,
    PropertyRollup,
    PropertyValueSlot,
    TrackedProperty,
    UserRollup,
)
from ingest.rollups.distinct import KeyedHash
from ingest.rollups.engine import Cap, Histogram, Measure, Spec, distinct_measures


def json_path(path: str) -> str:
    """A property path as written (``data.request."http.method"``) as the JSON path both databases
    read (``$."request"."http.method"``); the path must match ``PROPERTY_PATH_PATTERN``."""
    keys = [key.strip('"') for key in re.findall(PROPERTY_KEY_PATTERN, path.removeprefix("data."))]
    return "$" + "".join(f'."{key}"' for key in keys)


def _events_properties(events):
    """The tracked properties' rows of ``events`` (any queryset of events)."""
    rows = EventProperty.objects.filter(id__in=events.values("id"))
    # The id bounds as constants too, so PostgreSQL reads the chunk by its primary key rather than
    # every event to find the chunk's ids.
    bounds = events.aggregate(low=Min("id"), high=Max("id"))
    if bounds["low"] is None:
        return rows
    return rows.filter(id__gte=bounds["low"], id__lte=bounds["high"])


SPEC = Spec(
    name="property",
    model=PropertyRollup,
    source=_events_properties,
    event_types=None,
    key={"property_id": F("property_id"), "value": F("value")},
    measures={
        "count": Measure("count"),
        **distinct_measures("users", KeyedHash(F("user_hash_seed"), F("user_id"))),
        "number_count": Measure("count", where=Q(number__isnull=False)),
        "number_sum": Measure("sum", F("number")),
        "number_min": Measure("min", F("number")),
        "number_max": Measure("max", F("number"), default=None),
    },
    histogram=Histogram(F("number"), PropertyRollup.NUMBER_BOUNDS),
    buckets=("hour", "day"),
    unique=("property_id", "granularity", "bucket", "value"),
    retention={"hour": timedelta(days=UserRollup.HOUR_ROLLUPS_DAYS)},
    cap=Cap(
        slots=PropertyValueSlot,
        key="property_id",
        column="value",
        values=TrackedProperty.VALUES_PER_DAY,
        other=TrackedProperty.OTHER,
    ),
)

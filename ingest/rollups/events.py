"""Event counts: per minute, hour and day of the event's timestamp, by type, and by type and each
other dimension: what the dashboards' charts and tables read (``EventRollup``)."""

from datetime import timedelta

from django.db.models import F, Value
from django.db.models.functions import Coalesce, Concat, Trim

from ingest.models import EventRollup
from ingest.rollups.engine import Measure, Spec

Dimension = EventRollup.Dimension

SPEC = Spec(
    name="events",
    model=EventRollup,
    source=lambda events: events,
    event_types=None,
    key={"event_type": F("event_type")},
    dimensions={
        Dimension.TYPE: Value(""),
        Dimension.CATEGORY: Coalesce("category", Value("")),
        Dimension.SERVICE: Trim(
            Concat(Coalesce("service_name", Value("")), Value(" "), Coalesce("service_version", Value("")))
        ),
        Dimension.SDK: Coalesce("sdk_version", Value("")),
    },
    measures={"count": Measure("count")},
    buckets=("minute", "hour", "day"),
    unique=("application_id", "granularity", "dimension", "bucket", "event_type", "value"),
    retention={"minute": timedelta(hours=EventRollup.MINUTE_ROLLUPS_HOURS)},
)

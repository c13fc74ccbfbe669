"""HTTP requests (``http_request`` events) per service, per 5 minutes and hour: the API panel's
rollups (``ApiRollup``).

Each request's ``data`` (``method``, ``endpoint``, ``status``, ``response_time`` in ms, ``consumer``,
``node``) is read in SQL. Events come from any client through the signed ingest too: a field that
is absent or not of its JSON type counts as unknown ("" or NULL) rather than failing the job.
"""

from datetime import timedelta

from django.db.models import CharField, F, Q, Value
from django.db.models.functions import Cast, Coalesce, Concat, Left

from ingest.models import ApiRollup, EventRollup
from ingest.rollups.engine import DataNumber, DataText, Histogram, Measure, Spec

EVENT_TYPE = "http_request"
VALUE_LENGTH = ApiRollup._meta.get_field("value").max_length
# One request's response time counts as at most a day: a client's claim of more says nothing, and
# bounding each one keeps the sums far from the columns' limit (which they saturate at besides).
MAX_RESPONSE_MS = 86_400_000
Dimension = ApiRollup.Dimension


def _text(key: str):
    return Coalesce(DataText(key), Value(""), output_field=CharField())


def _requests(events):
    return events.filter(event_type=EVENT_TYPE).annotate(
        st=DataNumber("status", upper=999), rt=DataNumber("response_time", upper=MAX_RESPONSE_MS)
    )


SPEC = Spec(
    name="api",
    model=ApiRollup,
    source=_requests,
    event_types=frozenset({EVENT_TYPE}),
    key={"service_name": F("service_name")},
    dimensions={
        Dimension.SERVICE: Value(""),
        Dimension.ENDPOINT: Left(
            Concat(_text("method"), Value(" "), _text("endpoint"), output_field=CharField()), VALUE_LENGTH
        ),
        Dimension.STATUS: Coalesce(Cast("st", CharField()), Value("")),
        Dimension.NODE: Left(_text("node"), VALUE_LENGTH),
        Dimension.CONSUMER: Left(_text("consumer"), VALUE_LENGTH),
    },
    measures={
        "count": Measure("count"),
        "errors": Measure("count", where=Q(st__gte=400) & ~Q(st=401)),
        "duration_ms": Measure("sum", F("rt"), saturate=True),
    },
    histogram=Histogram(F("rt"), ApiRollup.LATENCY_BOUNDS),
    buckets=("5min", "hour"),
    unique=("application_id", "granularity", "dimension", "bucket", "service_name", "value"),
    retention={"5min": timedelta(hours=EventRollup.MINUTE_ROLLUPS_HOURS)},
)

"""AWS Lambda invocations per function and version, per 5 minutes and hour: the Lambda panel's
rollups (``LambdaRollup``).

Two sources describe an invocation:

- the Telemetry API's ``platform.report`` (source ``lambda/1``): status, duration, billed duration,
  configured and used memory, and init duration on a cold start, all in one record;
- the Lambda extension over OTLP (``otlp/1``, docs/protocols.md#lambda-over-otlp), turning the report into gauges:
  ``faas.invocation.duration`` (one per invocation), ``aws.lambda.billed_duration``,
  ``aws.lambda.max_memory_used`` (bytes) and ``aws.lambda.init_duration`` (cold starts), with the
  configured memory as the resource's ``faas.max_memory`` (bytes); and a ``lambda.invoke`` span
  whose ``faas.invocation.status`` (or an error status) marks a failed invocation.

The function is the ``faas.name`` resource attribute, else the service name; its version
``faas.version``, else the service version. A function should send by one way only, or its
invocations count twice. Only the fields counted are read, in SQL and bounded there: a value of
the wrong type counts as absent, a number past its bound as the bound, since a row that cannot be
read must not stop the job.
"""

from datetime import timedelta

from django.db.models import Case, CharField, F, FloatField, IntegerField, Q, Value, When
from django.db.models.functions import Coalesce, Floor, Least, Left, NullIf, Round

from ingest.models import LAMBDA_DURATION_BOUNDS_MS, EventRollup, LambdaRollup
from ingest.rollups.engine import DataNumber, DataText, Histogram, Measure, Spec

_MB = 1024 * 1024
_OTLP_METRICS = (
    "faas.invocation.duration",
    "aws.lambda.billed_duration",
    "aws.lambda.max_memory_used",
    "aws.lambda.init_duration",
)
# Bounds of one event's numbers: a duration counts as at most a day (Lambda stops a function at 15
# minutes), memory as at most the Telemetry API's own limit; past them a value says nothing more.
MAX_DURATION_MS = 86_400_000
MAX_MEMORY_MB = 10**7
# Numbers are clamped in SQL to [-1, _READ_LIMIT] first, so any JSON number reads as a float.
_READ_LIMIT = 10**15
_NAME_LENGTH = LambdaRollup._meta.get_field("function").max_length
_REPORT_METRICS = ("durationMs", "billedDurationMs", "memorySizeMB", "initDurationMs", "maxMemoryUsedMB")


def _number(*path: str) -> DataNumber:
    return DataNumber(*path, lower=-1, upper=_READ_LIMIT, output_field=FloatField())


def _text(*path: str, length: int = 64) -> Left:
    return Left(DataText(*path, any_type=True), length)


# The few fields of ``data`` these rollups count, read in SQL: an event's ``data`` may be megabytes
# (a resource's attributes, copied into each OTLP point) and never needs to reach Python.
_FIELDS = {
    "report_status": _text("record", "status"),
    **{f"report_{key}": _number("record", "metrics", key) for key in _REPORT_METRICS},
    "metric_name": _text("name"),
    "metric_value": _number("value"),
    "faas_name": _text("resource", "faas.name", length=_NAME_LENGTH),
    "faas_version": _text("resource", "faas.version", length=_NAME_LENGTH),
    "faas_max_memory": _number("resource", "faas.max_memory"),
    "invocation_status": _text("attributes", "faas.invocation.status"),
    "status_code": _text("status", "code"),
}
REPORT = Q(schema_version="lambda/1")
METRIC = Q(schema_version="otlp/1", event_type="otel.metric")
SPAN = Q(schema_version="otlp/1", event_type="otel.span")


def _is_metric(name: str) -> Q:
    return METRIC & Q(metric_name=name)


def _when(*cases: tuple[Q, object], default=None, output_field=None) -> Case:
    output_field = output_field or FloatField()
    return Case(
        *(When(condition, then=value) for condition, value in cases),
        default=Value(default, output_field=output_field),
        output_field=output_field,
    )


def _positive(name: str, upper: float):
    """A report's number when it is not negative, at most ``upper``; else NULL."""
    return _when((Q(**{f"{name}__gte": 0}), Least(F(name), Value(float(upper)))))


def _metric_value(upper: float):
    return Least(F("metric_value"), Value(float(upper)))


# ``faas.max_memory`` in MB. The convention says bytes, but some detectors copy
# AWS_LAMBDA_FUNCTION_MEMORY_SIZE (MB) as it is; Lambda has no function under 128 MB, so a value
# under 1 MiB can only be megabytes.
_CONFIGURED_MB = _when(
    (Q(faas_max_memory__gte=_MB), Least(F("faas_max_memory") / Value(float(_MB)), Value(float(MAX_MEMORY_MB)))),
    (Q(faas_max_memory__gt=0), Least(F("faas_max_memory"), Value(float(MAX_MEMORY_MB)))),
)
_DURATION = _when(
    (REPORT, _positive("report_durationMs", MAX_DURATION_MS)),
    (_is_metric("faas.invocation.duration"), _metric_value(MAX_DURATION_MS)),
)
_BILLED = _when(
    (REPORT, _positive("report_billedDurationMs", MAX_DURATION_MS)),
    (_is_metric("aws.lambda.billed_duration"), _metric_value(MAX_DURATION_MS)),
)
_MEMORY = _when((REPORT, _positive("report_memorySizeMB", MAX_MEMORY_MB)), (METRIC, _CONFIGURED_MB))
_INIT = _when(
    (REPORT, _positive("report_initDurationMs", MAX_DURATION_MS)),
    (_is_metric("aws.lambda.init_duration"), _metric_value(MAX_DURATION_MS)),
)
_FAILED = Q(invocation_status__isnull=False) & ~Q(invocation_status="success") | Q(
    invocation_status__isnull=True, status_code="STATUS_CODE_ERROR"
)


def _invocations(events):
    """The events that describe Lambda invocations, with what the measures read of them. A report
    without any metric, or a metric without a number of at least 0, counts for nothing."""
    return (
        events.filter(
            Q(schema_version="lambda/1", event_type="platform.report")
            | Q(schema_version="otlp/1", event_type="otel.metric", category__in=_OTLP_METRICS)
            | Q(schema_version="otlp/1", event_type="otel.span", category="lambda.invoke")
        )
        .annotate(**_FIELDS)
        .filter(
            REPORT & ~Q(**{f"report_{key}__isnull": True for key in _REPORT_METRICS})
            | METRIC & Q(metric_value__gte=0)
            | SPAN
        )
        .annotate(duration=_DURATION, billed=_BILLED, memory=_MEMORY, init=_INIT)
    )


def _one_when(condition: Q) -> Case:
    return _when((condition, Value(1)), default=0, output_field=IntegerField())


SPEC = Spec(
    name="lambda",
    model=LambdaRollup,
    source=_invocations,
    event_types=frozenset({"platform.report", "otel.metric", "otel.span"}),
    key={
        "function": Case(
            When(REPORT, then=F("service_name")),
            default=Coalesce(NullIf("faas_name", Value("")), F("service_name")),
            output_field=CharField(),
        ),
        "version": Case(
            When(REPORT, then=Coalesce("service_version", Value(""))),
            default=Coalesce(NullIf("faas_version", Value("")), NullIf("service_version", Value("")), Value("")),
            output_field=CharField(),
        ),
    },
    measures={
        "invocations": Measure("sum", _one_when(REPORT | _is_metric("faas.invocation.duration"))),
        "errors": Measure(
            "sum",
            _one_when(REPORT & ~Q(report_status="success") | REPORT & Q(report_status__isnull=True) | SPAN & _FAILED),
        ),
        "cold_starts": Measure(
            "sum", _one_when(REPORT & Q(init__isnull=False) | _is_metric("aws.lambda.init_duration"))
        ),
        "init_ms": Measure("sum", Coalesce(F("init"), Value(0.0))),
        "duration_ms": Measure("sum", Coalesce(F("duration"), Value(0.0))),
        "billed_ms": Measure("sum", Coalesce(F("billed"), Value(0.0))),
        "gb_seconds": Measure(
            "sum",
            _when(
                (Q(billed__isnull=False, memory__gt=0), F("billed") / Value(1000.0) * F("memory") / Value(1024.0)),
                default=0.0,
            ),
        ),
        "max_memory_used_mb": Measure(
            "max",
            _when(
                (REPORT, Coalesce(Floor(_positive("report_maxMemoryUsedMB", MAX_MEMORY_MB)), Value(0.0))),
                (
                    _is_metric("aws.lambda.max_memory_used"),
                    Least(Round(F("metric_value") / Value(float(_MB))), Value(float(MAX_MEMORY_MB))),
                ),
                default=0.0,
            ),
        ),
        "memory_size_mb": Measure("max", Coalesce(Floor(F("memory")), Value(0.0))),
    },
    histogram=Histogram(F("duration"), LAMBDA_DURATION_BOUNDS_MS),
    buckets=("5min", "hour"),
    unique=("application_id", "granularity", "bucket", "function", "version"),
    retention={"5min": timedelta(hours=EventRollup.MINUTE_ROLLUPS_HOURS)},
)


def duration_bound(duration_ms: float) -> int:
    """The histogram bucket of a duration: the index of its column."""
    return SPEC.histogram.index(duration_ms)

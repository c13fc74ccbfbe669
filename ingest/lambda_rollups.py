"""AWS Lambda rollups, added from the events ``rollups_update`` reads, in its transaction.

Two sources describe an invocation:

- the Telemetry API's ``platform.report`` (source ``lambda/1``): status, duration, billed duration,
  configured and used memory, and init duration on a cold start, all in one record;
- seed 003's extension over OTLP (source ``otlp/1``), which turns that report into gauges:
  ``faas.invocation.duration`` (one per invocation), ``aws.lambda.billed_duration``,
  ``aws.lambda.max_memory_used`` (bytes) and ``aws.lambda.init_duration`` (cold starts), with the
  configured memory as the resource's ``faas.max_memory`` (bytes); and a ``lambda.invoke`` span
  whose ``faas.invocation.status`` (or an error status) marks a failed invocation.

The function is the ``faas.name`` resource attribute, else the service name; its version
``faas.version``, else the service version. A function should send by one way only, or its
invocations count twice. Events are read once each, so these rows are only added to. Only the
fields counted are read, in SQL and bounded there: a value of the wrong type counts as absent, a
number past its bound as the bound, since a row that cannot be read must not stop the job.
"""

from bisect import bisect_left
from collections import defaultdict
from datetime import UTC, datetime

from django.db import connection
from django.db.models import FloatField, Q
from django.db.models.functions import Left

from ingest.api_rollups import DataNumber, DataText
from ingest.models import LAMBDA_DURATION_BOUNDS_MS, EventRollup, LambdaDurationBucket, LambdaRollup

Granularity = LambdaRollup.Granularity
_MB = 1024 * 1024
_OTLP_METRICS = (
    "faas.invocation.duration",
    "aws.lambda.billed_duration",
    "aws.lambda.max_memory_used",
    "aws.lambda.init_duration",
)
_SUMS = ("invocations", "errors", "cold_starts", "init_ms", "duration_ms", "billed_ms", "gb_seconds")
_MAXIMA = ("max_memory_used_mb", "memory_size_mb")
# Bounds of one event's numbers: a duration counts as at most a day (Lambda stops a function at 15
# minutes), memory as at most the Telemetry API's own limit; past them a value says nothing more.
MAX_DURATION_MS = 86_400_000
MAX_MEMORY_MB = 10**7
# Numbers are clamped in SQL to [-1, _READ_LIMIT] first, so any JSON number reads as a float.
_READ_LIMIT = 10**15
_NAME_LENGTH = LambdaRollup._meta.get_field("function").max_length


def _number(path: tuple[str, ...]) -> DataNumber:
    return DataNumber(*path, lower=-1, upper=_READ_LIMIT, output_field=FloatField())


def _text(path: tuple[str, ...], length: int = 64) -> Left:
    return Left(DataText(*path, any_type=True), length)


_REPORT_METRICS = ("durationMs", "billedDurationMs", "memorySizeMB", "initDurationMs", "maxMemoryUsedMB")
# The few fields of ``data`` these rollups count, read in SQL: an event's ``data`` may be megabytes
# (a resource's attributes, copied into each OTLP point) and never needs to reach Python.
_FIELDS = {
    "report_status": _text(("record", "status")),
    **{f"report_{key}": _number(("record", "metrics", key)) for key in _REPORT_METRICS},
    "metric_name": _text(("name",)),
    "metric_value": _number(("value",)),
    "faas_name": _text(("resource", "faas.name"), _NAME_LENGTH),
    "faas_version": _text(("resource", "faas.version"), _NAME_LENGTH),
    "faas_max_memory": _number(("resource", "faas.max_memory")),
    "invocation_status": _text(("attributes", "faas.invocation.status")),
    "status_code": _text(("status", "code")),
}


def _positive(value: float | None, upper: float) -> float | None:
    return None if value is None or value < 0 else min(value, upper)


def _buckets(moment: datetime, five_minutes_since: datetime) -> list[tuple[str, datetime]]:
    moment = moment.astimezone(UTC)
    hour = moment.replace(minute=0, second=0, microsecond=0)
    if moment < five_minutes_since:
        return [(Granularity.HOUR, hour)]
    five_minutes = hour.replace(minute=moment.minute - moment.minute % 5)
    return [(Granularity.HOUR, hour), (Granularity.FIVE_MINUTES, five_minutes)]


class _Facts:
    """One event's contribution to its function's row."""

    __slots__ = ("duration", "sums", "maxima")

    def __init__(self):
        self.duration: float | None = None  # one invocation's duration, for the histogram
        self.sums: dict[str, float] = {}
        self.maxima: dict[str, int] = {}


def _gb_seconds(billed_ms: float | None, memory_mb: float | None) -> float:
    return billed_ms / 1000 * memory_mb / 1024 if billed_ms is not None and memory_mb else 0.0


def _report_facts(fields: dict) -> _Facts | None:
    if all(fields[f"report_{key}"] is None for key in _REPORT_METRICS):
        return None
    facts = _Facts()
    facts.duration = _positive(fields["report_durationMs"], MAX_DURATION_MS)
    billed = _positive(fields["report_billedDurationMs"], MAX_DURATION_MS)
    memory = _positive(fields["report_memorySizeMB"], MAX_MEMORY_MB)
    init = _positive(fields["report_initDurationMs"], MAX_DURATION_MS)
    facts.sums = {
        "invocations": 1,
        "errors": int(fields["report_status"] != "success"),
        "duration_ms": facts.duration or 0.0,
        "billed_ms": billed or 0.0,
        "gb_seconds": _gb_seconds(billed, memory),
        "cold_starts": int(init is not None),
        "init_ms": init or 0.0,
    }
    facts.maxima = {
        "memory_size_mb": int(memory or 0),
        "max_memory_used_mb": int(_positive(fields["report_maxMemoryUsedMB"], MAX_MEMORY_MB) or 0),
    }
    return facts


def _otlp_metric_facts(fields: dict) -> _Facts | None:
    value = _positive(fields["metric_value"], _READ_LIMIT)
    if value is None:
        return None
    memory_mb = _configured_mb(fields["faas_max_memory"])
    facts, name = _Facts(), fields["metric_name"]
    if name == "faas.invocation.duration":
        facts.duration = min(value, MAX_DURATION_MS)
        facts.sums = {"invocations": 1, "duration_ms": facts.duration}
    elif name == "aws.lambda.billed_duration":
        billed = min(value, MAX_DURATION_MS)
        facts.sums = {"billed_ms": billed, "gb_seconds": _gb_seconds(billed, memory_mb)}
    elif name == "aws.lambda.max_memory_used":
        facts.maxima = {"max_memory_used_mb": min(round(value / _MB), MAX_MEMORY_MB)}
    elif name == "aws.lambda.init_duration":
        facts.sums = {"cold_starts": 1, "init_ms": min(value, MAX_DURATION_MS)}
    if memory_mb:
        facts.maxima["memory_size_mb"] = int(memory_mb)
    return facts


def _otlp_span_facts(fields: dict) -> _Facts:
    outcome = fields["invocation_status"]
    failed = outcome != "success" if outcome is not None else fields["status_code"] == "STATUS_CODE_ERROR"
    facts = _Facts()
    facts.sums = {"errors": int(failed)}
    return facts


def _function(fields: dict, service_name: str, service_version: str | None, source: str) -> tuple[str, str]:
    if source == "otlp/1":
        name, version = fields["faas_name"], fields["faas_version"]
        return name or service_name, version or service_version or ""
    return service_name, service_version or ""


def _facts(source: str, event_type: str, fields: dict) -> _Facts | None:
    if source == "lambda/1":
        return _report_facts(fields)
    if event_type == "otel.span":
        return _otlp_span_facts(fields)
    return _otlp_metric_facts(fields)


def _configured_mb(value: float | None) -> float | None:
    """``faas.max_memory`` in MB. The convention says bytes, but some detectors copy
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE (MB) as it is; Lambda has no function under 128 MB, so a value
    under 1 MiB can only be megabytes."""
    if not value or value < 0:
        return None
    return min(value / _MB if value >= _MB else value, MAX_MEMORY_MB)


def lambda_events(events):
    """The events of ``events`` that describe Lambda invocations (see the module's docstring)."""
    return events.filter(
        Q(schema_version="lambda/1", event_type="platform.report")
        | Q(schema_version="otlp/1", event_type="otel.metric", category__in=_OTLP_METRICS)
        | Q(schema_version="otlp/1", event_type="otel.span", category="lambda.invoke")
    )


def duration_bound(duration_ms: float) -> int:
    """The histogram bucket of a duration: the index of its upper bound."""
    return bisect_left(LAMBDA_DURATION_BOUNDS_MS, duration_ms)


def lambda_rollups_add(events) -> None:
    """Adds the Lambda invocations among ``events`` to the rollups (one pass, two upserts)."""
    rows: dict[tuple, dict] = defaultdict(dict)
    histogram: dict[tuple, int] = defaultdict(int)
    five_minutes_since = EventRollup.minute_rollups_since()
    names = list(_FIELDS)
    for organization_id, application_id, timestamp, source, event_type, name, version, *values in (
        lambda_events(events)
        .annotate(**_FIELDS)
        .values_list(
            "organization_id",
            "application_id",
            "timestamp",
            "schema_version",
            "event_type",
            "service_name",
            "service_version",
            *names,
        )
        .iterator(chunk_size=5000)
    ):
        fields = dict(zip(names, values))
        facts = _facts(source, event_type, fields)
        if facts is None:
            continue
        function, function_version = _function(fields, name, version, source)
        for granularity, bucket in _buckets(timestamp, five_minutes_since):
            key = (organization_id, application_id, granularity, bucket, function, function_version)
            row = rows[key]
            for column, value in facts.sums.items():
                row[column] = row.get(column, 0) + value
            for column, value in facts.maxima.items():
                row[column] = max(row.get(column, 0), value)
            if facts.duration is not None:
                histogram[(*key, duration_bound(facts.duration))] += 1
    _upsert_rows(rows)
    _upsert_histogram(histogram)


def lambda_rollups_replace(*, events, since: datetime, until: datetime) -> None:
    """Recomputes the rows of buckets in [since, until) from ``events`` (those of that range), for
    ``rollups_rebuild``."""
    for model in (LambdaRollup, LambdaDurationBucket):
        model.objects.filter(bucket__gte=since, bucket__lt=until).delete()
    lambda_rollups_add(events)


def five_minute_rollups_prune() -> int:
    """Deletes 5-minute rows older than the panel shows; returns how many went."""
    deleted = 0
    for model in (LambdaRollup, LambdaDurationBucket):
        count, _ = model.objects.filter(
            granularity=Granularity.FIVE_MINUTES, bucket__lt=EventRollup.minute_rollups_since()
        ).delete()
        deleted += count
    return deleted


def _greatest(a: str, b: str) -> str:
    return f"GREATEST({a}, {b})" if connection.vendor == "postgresql" else f"MAX({a}, {b})"


_KEY = ["organization_id", "application_id", "granularity", "bucket", "function", "version"]
_UNIQUE = "application_id, granularity, bucket, function, version"


def _upsert_rows(rows: dict[tuple, dict]) -> None:
    if not rows:
        return
    table = LambdaRollup._meta.db_table
    columns = [*_KEY, *_SUMS, *_MAXIMA]
    updates = [f"{c} = {table}.{c} + excluded.{c}" for c in _SUMS] + [
        f"{c} = {_greatest(f'{table}.{c}', f'excluded.{c}')}" for c in _MAXIMA
    ]
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({_UNIQUE}) DO UPDATE SET {', '.join(updates)}"
    )
    values = [(*key, *(row.get(c, 0) for c in _SUMS), *(row.get(c, 0) for c in _MAXIMA)) for key, row in rows.items()]
    with connection.cursor() as cursor:
        cursor.executemany(sql, values)


def _upsert_histogram(histogram: dict[tuple, int]) -> None:
    if not histogram:
        return
    table = LambdaDurationBucket._meta.db_table
    sql = (
        f"INSERT INTO {table} ({', '.join(_KEY)}, bound, count) VALUES ({', '.join(['%s'] * (len(_KEY) + 2))}) "
        f"ON CONFLICT ({_UNIQUE}, bound) DO UPDATE SET count = {table}.count + excluded.count"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(*key, count) for key, count in histogram.items()])

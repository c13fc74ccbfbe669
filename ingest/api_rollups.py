"""Rollups of HTTP requests (``http_request`` events) for the API panel, added by ``rollups_update``.

Each request's ``data`` (``method``, ``endpoint``, ``status``, ``response_time`` in ms, ``consumer``,
``node``) is read in SQL, so a run costs one ``INSERT ... SELECT`` per granularity and dimension,
never a Python object per event. Events come from any client through the signed ingest too: a
field that is absent or not of its JSON type counts as unknown ("" or NULL) rather than failing the job.
"""

from datetime import UTC, datetime

from django.db import connection
from django.db.models import BigIntegerField, CharField, Count, DateTimeField, F, Func, Q, Sum, Value
from django.db.models.functions import Cast, Coalesce, Concat, Least, Left, Trunc

from ingest.models import ApiRollup, EventRollup

EVENT_TYPE = "http_request"
VALUE_LENGTH = ApiRollup._meta.get_field("value").max_length
# One request's response time counts as at most a day: a client's claim of more says nothing, and
# bounding each one keeps the sums far from the columns' limit (which they saturate at besides).
MAX_RESPONSE_MS = 86_400_000
BIGINT_MAX = 2**63 - 1
Dimension = ApiRollup.Dimension
Granularity = ApiRollup.Granularity


# JSON paths: PostgreSQL's text[] for #> and #>>, SQLite's "$.a.b" (each key quoted: OTLP's have dots).
def _pg_path(path: tuple[str, ...]) -> str:
    return "{" + ",".join(f'"{key}"' for key in path) + "}"


def _sqlite_path(path: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{key}"' for key in path)


class DataNumber(Func):
    """``data`` at ``path`` clamped to [lower, upper] when it is a JSON number, else NULL.

    Clamped in the database, so a number of any size or sign never reaches a column or Python."""

    output_field = BigIntegerField()

    def __init__(self, *path: str, lower: int = 0, upper: int, output_field=None):
        super().__init__(F("data"), output_field=output_field)
        self.path, self.lower, self.upper = path, lower, upper

    def as_postgresql(self, compiler, connection, **extra):
        data, params = compiler.compile(self.source_expressions[0])
        value = f"({data} #> %s)"
        cast = "bigint" if isinstance(self.output_field, BigIntegerField) else "double precision"
        sql = (
            f"CASE WHEN jsonb_typeof({value}) = 'number' "
            f"THEN LEAST(GREATEST({value}::numeric, {self.lower}), {self.upper})::{cast} END"
        )
        path = _pg_path(self.path)
        return sql, (*params, path, *params, path)

    def as_sqlite(self, compiler, connection, **extra):
        data, params = compiler.compile(self.source_expressions[0])
        path = _sqlite_path(self.path)
        cast = "INTEGER" if isinstance(self.output_field, BigIntegerField) else "REAL"
        sql = (
            f"CASE WHEN json_type({data}, %s) IN ('integer', 'real') "
            f"THEN CAST(MIN(MAX(json_extract({data}, %s), {self.lower}), {self.upper}) AS {cast}) END"
        )
        return sql, (*params, path, *params, path)


class DataText(Func):
    """``data`` at ``path`` when it is a JSON string, else NULL (a JSON null included, on every database);
    with ``any_type``, any JSON value but null as text (a version may be sent as a number)."""

    output_field = CharField()

    def __init__(self, *path: str, any_type: bool = False):
        super().__init__(F("data"))
        self.path, self.any_type = path, any_type

    def as_postgresql(self, compiler, connection, **extra):
        data, params = compiler.compile(self.source_expressions[0])
        path = _pg_path(self.path)
        if self.any_type:
            return f"{data} #>> %s", (*params, path)
        return f"CASE WHEN jsonb_typeof({data} #> %s) = 'string' THEN {data} #>> %s END", (*params, path, *params, path)

    def as_sqlite(self, compiler, connection, **extra):
        data, params = compiler.compile(self.source_expressions[0])
        path = _sqlite_path(self.path)
        if self.any_type:
            return f"json_extract({data}, %s)", (*params, path)
        return f"CASE WHEN json_type({data}, %s) = 'text' THEN json_extract({data}, %s) END", (
            *params,
            path,
            *params,
            path,
        )


class _FiveMinutes(Func):
    """The start of the 5-minute bucket (UTC) that a timestamp falls in."""

    output_field = DateTimeField()

    def as_postgresql(self, compiler, connection, **extra):
        moment, params = compiler.compile(self.source_expressions[0])
        return f"to_timestamp(floor(extract(epoch from {moment}) / 300) * 300)", params

    def as_sqlite(self, compiler, connection, **extra):
        moment, params = compiler.compile(self.source_expressions[0])
        return f"datetime(CAST(strftime('%%s', {moment}) AS INTEGER) / 300 * 300, 'unixepoch')", params


def _text(key: str):
    return Coalesce(DataText(key), Value(""), output_field=CharField())


_VALUES = {
    Dimension.SERVICE: Value(""),
    Dimension.ENDPOINT: Left(
        Concat(_text("method"), Value(" "), _text("endpoint"), output_field=CharField()), VALUE_LENGTH
    ),
    Dimension.STATUS: Coalesce(Cast("st", CharField()), Value("")),
    Dimension.NODE: Left(_text("node"), VALUE_LENGTH),
    Dimension.CONSUMER: Left(_text("consumer"), VALUE_LENGTH),
}
_BUCKETS = {
    Granularity.FIVE_MINUTES: lambda: _FiveMinutes("timestamp"),
    Granularity.HOUR: lambda: Trunc("timestamp", "hour", tzinfo=UTC),
}
_KEY = ["organization_id", "application_id", "g", "b", "s", "d", "v"]
_COLUMNS = ["organization_id", "application_id", "granularity", "bucket", "service_name", "dimension", "value"]
_UNIQUE = ["application_id", "granularity", "dimension", "bucket", "service_name", "value"]
_MEASURES = ["count", "errors", "duration_ms", *ApiRollup.LATENCY_FIELDS]


def _latency_counts() -> dict:
    counts, lower = {}, None
    for bound, name in zip(ApiRollup.LATENCY_BOUNDS, ApiRollup.LATENCY_FIELDS):
        counts[name] = Count("id", filter=Q(rt__lte=bound) if lower is None else Q(rt__gt=lower, rt__lte=bound))
        lower = bound
    counts["ms_more"] = Count("id", filter=Q(rt__gt=lower))
    return counts


def _add(requests, granularity: str) -> None:
    if granularity == Granularity.FIVE_MINUTES:
        requests = requests.filter(timestamp__gte=EventRollup.minute_rollups_since())
    requests = requests.annotate(
        st=DataNumber("status", upper=999), rt=DataNumber("response_time", upper=MAX_RESPONSE_MS)
    )
    table = ApiRollup._meta.db_table
    updates = ", ".join(
        f"{name} = {_saturating_sum(f'{table}.{name}', f'excluded.{name}')}"
        if name == "duration_ms"
        else f"{name} = {table}.{name} + excluded.{name}"
        for name in _MEASURES
    )
    for dimension, value in _VALUES.items():
        grouped = (
            requests.annotate(
                g=Value(granularity), b=_BUCKETS[granularity](), d=Value(dimension.value), s=F("service_name"), v=value
            )
            .values(*_KEY)
            .annotate(
                n=Count("id"),
                e=Count("id", filter=Q(st__gte=400) & ~Q(st=401)),
                t=Least(Coalesce(Sum("rt"), 0), Value(BIGINT_MAX)),
                **_latency_counts(),
            )
            .order_by()
        )
        select_sql, params = grouped.query.sql_with_params()
        sql = (
            f"INSERT INTO {table} ({', '.join(_COLUMNS + _MEASURES)}) {select_sql} "
            f"ON CONFLICT ({', '.join(_UNIQUE)}) DO UPDATE SET {updates}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _saturating_sum(a: str, b: str) -> str:
    if connection.vendor == "postgresql":
        return f"LEAST({a}::numeric + {b}, {BIGINT_MAX})::bigint"
    return f"MIN({a} + {b}, {BIGINT_MAX})"  # SQLite turns an overflowing integer sum into a real


def api_rollups_add(events) -> None:
    """Adds the HTTP requests among ``events`` to the API rollups (inside the caller's transaction)."""
    requests = events.filter(event_type=EVENT_TYPE)
    # Each granularity and dimension below is a pass over the run's events: one look first, since
    # many runs hold no HTTP request at all.
    if not requests.exists():
        return
    for granularity in Granularity.values:
        _add(requests, granularity)


def api_rollups_rebuild(events, *, since: datetime, until: datetime) -> None:
    """Recomputes the API rollups of [since, until), whole hours, from ``events`` (those of that span)."""
    ApiRollup.objects.filter(bucket__gte=since, bucket__lt=until).delete()
    api_rollups_add(events)


def five_minute_rollups_prune() -> int:
    """Deletes 5-minute API rollups older than the panel shows; returns how many rows went."""
    deleted, _ = ApiRollup.objects.filter(
        granularity=Granularity.FIVE_MINUTES, bucket__lt=EventRollup.minute_rollups_since()
    ).delete()
    return deleted

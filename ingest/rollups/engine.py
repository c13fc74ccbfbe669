"""One engine for every rollup kind: a kind is a ``Spec`` (its source events, dimensions, measures,
histogram, buckets and retention), and adding, rebuilding and pruning are the same for all.

Adding a chunk of events to a kind costs one pass over the chunk: its events are grouped in SQL by
the kind's finest bucket and every dimension's value at once, into a temporary table (``_delta``)
of a few rows per bucket; each (granularity, dimension) row set is then summed from those rows by
one ``INSERT ... SELECT ... ON CONFLICT`` that adds to the rows already there. Counts and sums add,
maxima take the greater, and a histogram is a count per fixed bucket of a value (columns
``ms_<upper bound>`` and ``ms_more``), so rows of any span merge by addition. Nothing is read into
Python. The same SQL runs on PostgreSQL and SQLite.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import (
    BigIntegerField,
    CharField,
    Count,
    DateTimeField,
    Expression,
    F,
    Func,
    Max,
    Min,
    Q,
    Sum,
    Value,
)
from django.db.models.functions import Least, Trunc
from django.utils import timezone

from ingest.rollups import distinct

BIGINT_MAX = 2**63 - 1


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


class FiveMinutes(Func):
    """The start of the 5-minute bucket (UTC) that a timestamp falls in."""

    output_field = DateTimeField()

    def as_postgresql(self, compiler, connection, **extra):
        moment, params = compiler.compile(self.source_expressions[0])
        return f"to_timestamp(floor(extract(epoch from {moment}) / 300) * 300)", params

    def as_sqlite(self, compiler, connection, **extra):
        moment, params = compiler.compile(self.source_expressions[0])
        return f"datetime(CAST(strftime('%%s', {moment}) AS INTEGER) / 300 * 300, 'unixepoch')", params


# Granularities: the bucket of an event's timestamp, and (SQL) the coarser bucket of a finer one.
BUCKETS: dict[str, Callable[[], Expression]] = {
    "minute": lambda: Trunc("timestamp", "minute", tzinfo=UTC),
    "5min": lambda: FiveMinutes("timestamp"),
    "hour": lambda: Trunc("timestamp", "hour", tzinfo=UTC),
    "day": lambda: Trunc("timestamp", "day", tzinfo=UTC),
}
_PG_COARSER = {
    "minute": "date_trunc('minute', {c} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "5min": "to_timestamp(floor(extract(epoch from {c}) / 300) * 300)",
    "hour": "date_trunc('hour', {c} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "day": "date_trunc('day', {c} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
}
# SQLite keeps datetimes as UTC text, "YYYY-MM-DD HH:MM:SS[.ffffff]", as Trunc returns them.
_SQLITE_COARSER = {
    "minute": "strftime('%%Y-%%m-%%d %%H:%%M:00', {c})",
    "5min": "datetime(CAST(strftime('%%s', {c}) AS INTEGER) / 300 * 300, 'unixepoch')",
    "hour": "strftime('%%Y-%%m-%%d %%H:00:00', {c})",
    "day": "strftime('%%Y-%%m-%%d 00:00:00', {c})",
}


@dataclass(frozen=True)
class Measure:
    """A column of the rollup rows: ``count`` counts the events (those matching ``where``, if
    given), ``sum`` adds a per-event value, ``min`` and ``max`` keep the least and the greatest.
    ``ids`` and ``sketch`` keep a distinct count of a per-event keyed hash (``distinct`` says how):
    declare both with ``distinct_measures``. A sum with ``saturate`` stops at the bigint limit
    rather than fail; ``default`` is a ``max``'s value over no events."""

    how: str  # "count", "sum", "min", "max", "ids" or "sketch"
    value: Expression | None = None
    where: Q | None = None
    saturate: bool = False
    default: int | None = 0

    def aggregate(self):
        if self.how == "count":
            return Count("id", filter=self.where)
        if self.how == "min":
            return Min(self.value)
        if self.how == "max":
            return Max(self.value, default=self.default)
        if self.how == "ids":
            return distinct.IdsCollect(self.value)
        if self.how == "sketch":
            return distinct.SketchCollect(self.value)
        total = Sum(self.value, default=0)
        return Least(total, Value(BIGINT_MAX)) if self.saturate else total


def distinct_measures(name: str, value: Expression) -> dict[str, Measure]:
    """The columns of a distinct count of ``value`` (a keyed hash): ``<name>_ids`` and ``<name>_sketch``."""
    return {f"{name}_ids": Measure("ids", value), f"{name}_sketch": Measure("sketch", value)}


@dataclass(frozen=True)
class Histogram:
    """Events per fixed bucket of a value: column ``ms_<bound>`` counts values above the previous
    bound and at most this one, ``ms_more`` those past the last bound."""

    value: Expression
    bounds: tuple[int, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return (*(f"ms_{bound}" for bound in self.bounds), "ms_more")

    def measures(self) -> dict[str, Measure]:
        counts, lower = {}, None
        for bound, column in zip(self.bounds, self.columns):
            where = Q(_h__lte=bound) if lower is None else Q(_h__gt=lower, _h__lte=bound)
            counts[column], lower = Measure("count", where=where), bound
        counts["ms_more"] = Measure("count", where=Q(_h__gt=lower))
        return counts

    def index(self, value: float) -> int:
        """The bucket of a value: the index of its column."""
        for number, bound in enumerate(self.bounds):
            if value <= bound:
                return number
        return len(self.bounds)


@dataclass(frozen=True)
class Cap:
    """At most ``values`` distinct values of the key column ``column`` per ``key`` column and UTC
    day: the first seen (a chunk's most frequent first), kept in ``slots`` (a model of ``key``,
    ``day`` and ``value``). Past them, events count under ``other``: rows stay bounded whatever
    values clients send."""

    slots: type
    key: str
    column: str
    values: int
    other: str


@dataclass(frozen=True)
class Spec:
    """A rollup kind.

    ``source`` picks the kind's events among a chunk's (and may annotate what the other fields
    read), of ``event_types`` only when given. A row is keyed by organization, application,
    granularity, bucket, the ``key`` columns and, when the kind has ``dimensions``, by
    ``dimension`` and its ``value``: each event counts once per dimension. ``buckets`` are the
    granularities kept, finest first; ``retention`` says how long rows of a granularity are kept
    (those not named: for good). Rows of a bucket finer than an hour are built for events younger
    than their retention only.
    """

    name: str
    model: type
    source: Callable
    # The event types ``source`` can pick, if only some: a chunk without them is passed over.
    event_types: frozenset[str] | None
    key: dict[str, Expression]
    measures: dict[str, Measure]
    buckets: tuple[str, ...]
    unique: tuple[str, ...]
    dimensions: dict[str, Expression] = field(default_factory=dict)
    histogram: Histogram | None = None
    retention: dict[str, timedelta] = field(default_factory=dict)
    cap: Cap | None = None

    def all_measures(self) -> dict[str, Measure]:
        return {**self.measures, **(self.histogram.measures() if self.histogram else {})}

    def kept_since(self, granularity: str) -> datetime | None:
        kept = self.retention.get(granularity)
        return None if kept is None else timezone.now() - kept


def add(spec: Spec, events) -> str:
    """Adds ``events`` (of a chunk: any events) to ``spec``'s rollups, in the caller's transaction;
    returns the name of the temporary table of the chunk's figures (``_delta_fill``)."""
    delta = _delta_fill(spec, events)
    if spec.cap:
        _cap(spec.cap, delta)
    table = spec.model._meta.db_table
    measures = spec.all_measures()
    key_columns = list(spec.key)
    sums = ", ".join(_combine(column, measure) for column, measure in measures.items())
    # Every (granularity, dimension) row set in one statement: their keys differ, so no row is
    # reached twice, and the statement is planned once.
    selects, params = [], []
    for granularity in spec.buckets:
        bucket_sql = _coarser(granularity).format(c="b")
        since = spec.kept_since(granularity)
        for number, dimension in enumerate(spec.dimensions or [None]):
            dimension_values = [] if dimension is None else ["%s", f"v{number}"]
            group = ["organization_id", "application_id", bucket_sql, *key_columns]
            if dimension is not None:
                group.append(f"v{number}")
            selects.append(
                f"SELECT organization_id, application_id, %s, {bucket_sql}, "
                f"{', '.join([*key_columns, *dimension_values])}, {sums} "
                f"FROM {delta} {'WHERE b >= %s' if since else ''} GROUP BY {', '.join(group)}"
            )
            params += [granularity, *([] if dimension is None else [dimension])]
            params += [_as_database_time(since)] if since else []
    dimension_columns = ["dimension", "value"] if spec.dimensions else []
    updates = ", ".join(_update(table, column, measure) for column, measure in measures.items())
    # SQLite reads "INSERT ... SELECT ... ON CONFLICT" as a join's ON unless the SELECT has a WHERE.
    sql = (
        f"INSERT INTO {table} (organization_id, application_id, granularity, bucket, "
        f"{', '.join([*key_columns, *dimension_columns, *measures])}) "
        f"SELECT * FROM ({' UNION ALL '.join(selects)}) AS delta_rows WHERE true "
        f"ON CONFLICT ({', '.join(spec.unique)}) DO UPDATE SET {updates}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    return delta


def distinct_values(delta: str, column: str) -> set:
    """The values of a column of a chunk's figures (``add``'s temporary table)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT {column} FROM {delta}")
        return {row[0] for row in cursor.fetchall()}


def _delta_fill(spec: Spec, events) -> str:
    """Groups the kind's events among ``events`` by the finest bucket, the key and every dimension's
    value, into this connection's temporary table for the kind; returns its name."""
    measures = spec.all_measures()
    annotations = {"b": BUCKETS[spec.buckets[0]](), **{f"k_{name}": value for name, value in spec.key.items()}}
    annotations.update({f"v{number}": value for number, value in enumerate(spec.dimensions.values())})
    chosen = spec.source(events)
    if spec.histogram:
        chosen = chosen.annotate(_h=spec.histogram.value)
    grouped = (
        chosen.annotate(**annotations)
        .values("organization_id", "application_id", *annotations)
        .annotate(**{f"m_{column}": measure.aggregate() for column, measure in measures.items()})
        .order_by()
    )
    select_sql, params = grouped.query.sql_with_params()
    names = ["organization_id", "application_id", "b", *spec.key, *(f"v{n}" for n in range(len(spec.dimensions)))]
    names += list(measures)
    delta = f"rollup_delta_{spec.name}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Emptied at each commit, so its rows never outlive the chunk (nor its dead rows: no
            # autovacuum reaches a temporary table).
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {delta} ({', '.join(names)}) ON COMMIT DELETE ROWS "
                f"AS {select_sql} WITH NO DATA",
                params,
            )
        else:
            cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {delta} ({', '.join(names)})")
        cursor.execute(f"DELETE FROM {delta}")
        cursor.execute(f"INSERT INTO {delta} {select_sql}", params)
    return delta


def _cap(cap: Cap, delta: str) -> None:
    """Gives the chunk's new values slots while their day has some left, and puts the values
    without one under ``cap.other``, in the chunk's figures (``delta``)."""
    slots, key, column = cap.slots._meta.db_table, cap.key, cap.column
    day = _coarser("day").format(c=f"{delta}.b")
    has_slot = (
        f"EXISTS (SELECT 1 FROM {slots} AS s WHERE s.{key} = {delta}.{key} AND s.day = {day} "
        f"AND s.value = {delta}.{column})"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {slots} ({key}, day, value) SELECT k, d, v FROM ("
            f"SELECT k, d, v, row_number() OVER (PARTITION BY k, d ORDER BY n DESC, v) AS r FROM ("
            f"SELECT {delta}.{key} AS k, {day} AS d, {delta}.{column} AS v, SUM({delta}.count) AS n FROM {delta} "
            f"WHERE NOT {has_slot} GROUP BY 1, 2, 3) AS fresh) AS ranked "
            f"WHERE r <= %s - (SELECT count(*) FROM {slots} AS s WHERE s.{key} = ranked.k AND s.day = ranked.d)",
            [cap.values],
        )
        cursor.execute(f"UPDATE {delta} SET {column} = %s WHERE NOT {has_slot}", [cap.other])


def _coarser(granularity: str) -> str:
    return (_PG_COARSER if connection.vendor == "postgresql" else _SQLITE_COARSER)[granularity]


def _as_database_time(moment: datetime):
    return moment if connection.vendor == "postgresql" else connection.ops.adapt_datetimefield_value(moment)


def _combine(column: str, measure: Measure) -> str:
    """The delta rows' figures summed into one row's."""
    if measure.how in ("min", "max"):
        return f"{measure.how.upper()}({column})"
    if measure.how == "ids":
        return distinct.ids_union_agg_sql(column)
    if measure.how == "sketch":
        return distinct.sketch_union_agg_sql(connection.vendor, column)
    if measure.saturate:
        return _least(f"SUM({column})", str(BIGINT_MAX))
    return f"SUM({column})"


def _update(table: str, column: str, measure: Measure) -> str:
    old, new = f"{table}.{column}", f"excluded.{column}"
    if measure.how == "max":
        return f"{column} = {_greatest(old, new)}"
    if measure.how == "min":
        return f"{column} = {_least(old, new)}"
    if measure.how == "ids":
        return f"{column} = {distinct.ids_union_sql(old, new)}"
    if measure.how == "sketch":
        return f"{column} = {distinct.sketch_union_sql(connection.vendor, old, new)}"
    if measure.saturate:
        if connection.vendor == "postgresql":
            return f"{column} = LEAST({old}::numeric + {new}, {BIGINT_MAX})::bigint"
        return f"{column} = MIN({old} + {new}, {BIGINT_MAX})"  # SQLite turns an overflowing sum into a real
    return f"{column} = {old} + {new}"


def _greatest(a: str, b: str) -> str:
    return f"GREATEST({a}, {b})" if connection.vendor == "postgresql" else f"MAX({a}, {b})"


def _least(a: str, b: str) -> str:
    return f"LEAST({a}, {b})" if connection.vendor == "postgresql" else f"MIN({a}, {b})"


def replace(spec: Spec, events, *, since: datetime, until: datetime, application_id: int | None = None) -> None:
    """Recomputes ``spec``'s rows of buckets in [since, until) (of one application, if given) from
    ``events``, those of that span; the bounds must be those of whole buckets of every granularity
    of the kind."""
    rows = spec.model.objects.filter(bucket__gte=since, bucket__lt=until)
    if application_id is not None:
        rows = rows.filter(application_id=application_id)
    rows.delete()
    add(spec, events)


def prune(spec: Spec) -> int:
    """Deletes ``spec``'s rows past their retention; returns how many went."""
    deleted = 0
    for granularity in spec.buckets:
        since = spec.kept_since(granularity)
        if since is not None:
            count, _ = spec.model.objects.filter(granularity=granularity, bucket__lt=since).delete()
            deleted += count
    return deleted

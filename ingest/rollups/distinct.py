"""Distinct counts (users, sessions) that rollup rows of any span can merge, without keeping an id.

An id is first turned into a 64-bit hash seeded with the application's own random
``user_hash_seed`` (PostgreSQL's ``hashtextextended``; a keyed BLAKE2b on SQLite), kept in the
database: a hash can be tied back to an id only by someone who holds that seed and guesses the id.
(SHA-256 in SQL cost 20-35 times as much a chunk, and the seed lives beside the rollups anyway.)

A row keeps a distinct count in two columns:

- ``<name>_ids``: the sorted set of the keyed hashes, while it holds at most ``EXACT_LIMIT`` of
  them (NULL past that, and from then on). A union of rows is exact while its set stays that small.
- ``<name>_sketch`` (PostgreSQL): a HyperLogLog sketch of the same hashes (the ``hll`` extension,
  2^15 registers of 5 bits: a standard error of 0.57%), which merges by union at any size. It
  holds the maximum of a few bits of many hashes per register, no hash itself.

On SQLite (the embedded default) the set has no limit and there is no sketch: counts stay exact.
"""

import hashlib
import json

from django.db.models import Aggregate, BigIntegerField, BooleanField, F, Func

from ingest.models import IdsField, SketchField

# Up to this many distinct ids a row's (and a union's) count is exact on PostgreSQL; past it, the
# sketch's estimate. The SQL functions of migration 0020 hold the same figure.
EXACT_LIMIT = 16_384
# hll_empty's parameters: log2 of the registers, register width, no explicit mode (our set is that),
# sparse mode on. Every sketch must share them to be merged.
HLL_PARAMETERS = "15, 5, 0, 1"


class KeyedHash(Func):
    """The seeded hash of a text value (NULL stays NULL), given the application's seed."""

    function = "tk_keyed_hash"
    output_field = BigIntegerField()


class IdsCollect(Aggregate):
    """The set of a group's non-NULL hashes: an ``IdsField`` value."""

    output_field = IdsField()

    def as_postgresql(self, compiler, connection, **extra):
        # array_remove rather than a FILTER: the hash is computed once an event, not twice.
        value, params = compiler.compile(self.source_expressions[0])
        return f"coalesce(array_remove(array_agg(DISTINCT {value}), NULL), '{{}}')", params

    def as_sqlite(self, compiler, connection, **extra):
        value, params = compiler.compile(self.source_expressions[0])
        return f"json_group_array(DISTINCT {value}) FILTER (WHERE {value} IS NOT NULL)", params * 2


class SketchCollect(Aggregate):
    """The sketch of a group's hashes (PostgreSQL); NULL on SQLite."""

    output_field = SketchField()

    def as_postgresql(self, compiler, connection, **extra):
        value, params = compiler.compile(self.source_expressions[0])
        return f"hll_add_agg(hll_hashval({value}), {HLL_PARAMETERS})", params

    def as_sqlite(self, compiler, connection, **extra):
        return "NULL", []


# The SQL that merges sets and sketches, for the engine's upserts.
def ids_union_sql(a: str, b: str) -> str:
    return f"tk_ids_union({a}, {b})"


def sketch_union_sql(vendor: str, a: str, b: str) -> str:
    return f"hll_union({a}, {b})" if vendor == "postgresql" else "NULL"


def ids_union_agg_sql(column: str) -> str:
    return f"tk_ids_union_agg({column})"


def sketch_union_agg_sql(vendor: str, column: str) -> str:
    return f"hll_union_agg({column})" if vendor == "postgresql" else "NULL"


class DistinctCount(Aggregate):
    """The distinct count (``name``: "users", "sessions") of a group of rows: exact from their sets
    while the union stays within ``EXACT_LIMIT``, else the union of their sketches' estimate."""

    output_field = BigIntegerField()

    def __init__(self, name: str, **extra):
        super().__init__(F(f"{name}_ids"), F(f"{name}_sketch"), **extra)

    def as_postgresql(self, compiler, connection, **extra):
        (ids, ids_params), (sketch, sketch_params) = (compiler.compile(e) for e in self.source_expressions)
        estimate = f"round(hll_cardinality(hll_union_agg({sketch})))::bigint"
        return f"coalesce(cardinality(tk_ids_union_agg({ids})), {estimate}, 0)", [*ids_params, *sketch_params]

    def as_sqlite(self, compiler, connection, **extra):
        ids, params = compiler.compile(self.source_expressions[0])
        return f"coalesce(json_array_length(tk_ids_union_agg({ids})), 0)", params


class RowDistinctCount(Func):
    """One row's distinct count (``name``: "users", "sessions"): no union to make, so it costs a read
    of the row, not a sort of its hashes."""

    output_field = BigIntegerField()

    def __init__(self, name: str):
        super().__init__(F(f"{name}_ids"), F(f"{name}_sketch"))

    def as_postgresql(self, compiler, connection, **extra):
        (ids, ids_params), (sketch, sketch_params) = (compiler.compile(e) for e in self.source_expressions)
        estimate = f"round(hll_cardinality({sketch}))::bigint"
        return f"coalesce(cardinality({ids}), {estimate}, 0)", [*ids_params, *sketch_params]

    def as_sqlite(self, compiler, connection, **extra):
        ids, params = compiler.compile(self.source_expressions[0])
        return f"coalesce(json_array_length({ids}), 0)", params


class DistinctIsExact(Aggregate):
    """Whether ``DistinctCount`` of the same group is exact."""

    output_field = BooleanField()

    def __init__(self, name: str, **extra):
        super().__init__(F(f"{name}_ids"), **extra)

    def as_postgresql(self, compiler, connection, **extra):
        ids, params = compiler.compile(self.source_expressions[0])
        return f"(tk_ids_union_agg({ids}) IS NOT NULL)", params

    def as_sqlite(self, compiler, connection, **extra):
        return "1", []


# SQLite's side: Python functions registered on each connection (ingest.apps).
def _sqlite_keyed_hash(seed, value):
    if seed is None or value is None:
        return None
    digest = hashlib.blake2b(value.encode(), digest_size=8, key=seed.to_bytes(8, "big", signed=True)).digest()
    return int.from_bytes(digest, "big", signed=True)


def _sqlite_ids_union(a, b):
    if a is None or b is None:
        return None
    return json.dumps(sorted(set(json.loads(a)) | set(json.loads(b))))


class _SqliteIdsUnion:
    def __init__(self):
        self.ids: set | None = set()

    def step(self, value):
        if value is None:
            self.ids = None
        elif self.ids is not None:
            self.ids.update(json.loads(value))

    def finalize(self):
        return None if self.ids is None else json.dumps(sorted(self.ids))


def sqlite_functions_register(sender, connection, **kwargs) -> None:
    if connection.vendor != "sqlite":
        return
    connection.connection.create_function("tk_keyed_hash", 2, _sqlite_keyed_hash, deterministic=True)
    connection.connection.create_function("tk_ids_union", 2, _sqlite_ids_union, deterministic=True)
    connection.connection.create_aggregate("tk_ids_union_agg", 1, _SqliteIdsUnion)

"""Writes of the ingest path: nonces, events and their outcomes."""

import logging
import weakref
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
import psycopg
from django.db import DEFAULT_DB_ALIAS, DataError, IntegrityError, connection, connections, transaction
from django.utils import timezone

from accounts.ingest_targets import IngestTarget
from ingest.access.admission import outcomes_record, quota_release, quota_reserve
from ingest.models import Event, Nonce, Outcome
from ingest.storage.schema import CheckedBatch, Envelope, EventError
from telemetry.lib.redis import get_redis
from telemetry.metrics import EVENTS_FAILED, EVENTS_INGESTED

logger = logging.getLogger(__name__)

_COLUMNS = (
    "organization_id",
    "application_id",
    "event_id",
    "schema_version",
    "user_id",
    "session_id",
    "event_type",
    "category",
    "data",
    "timestamp",
    "received_at",
    "service_name",
    "service_version",
    "service_language",
    "sdk_version",
    "stream_id",
)
_TABLE = Event._meta.db_table
# A large batch goes to PostgreSQL by binary COPY (_pg_copy), a small one as one JSON document,
# encoded by msgspec in C and unpacked by jsonb_to_recordset (_pg_insert): one prepared statement,
# one round trip and no per-event Python work. The document is parsed once, as jsonb: parsed as
# json, each ->> on an event's nested objects would parse their text again (12% more PostgreSQL
# CPU per 10-event batch, benchmarks/README.md). Both are plain inserts, which stop at an event
# already stored; such a batch (a client's retry) goes again with ON CONFLICT making the re-sent
# events no-ops. The first try goes without it: checking for a conflict before each row costs
# PostgreSQL a tenth of a small batch's INSERT (benchmarks/README.md), and retries are rare.
_PG_INSERT = (
    f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) "
    "SELECT %s, %s, e.event_id, e.schema_version, e.user_id, e.session_id, e.event->>'type', "
    "e.event->>'category', e.event->'data', e.\"timestamp\", %s, e.service->>'name', "
    "e.service->>'version', e.service->>'language', %s, %s "
    'FROM jsonb_to_recordset(%s::jsonb) AS e(event_id uuid, schema_version text, "timestamp" timestamptz, '
    "user_id text, session_id text, service jsonb, event jsonb)"
)
_ON_CONFLICT_SKIP = ' ON CONFLICT (application_id, "timestamp", event_id) DO NOTHING'
_encode = msgspec.json.Encoder().encode
_SQLITE_INSERT = (
    f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})" + _ON_CONFLICT_SKIP
)


def nonce_key(application_id: int, nonce: str) -> str:
    return f"tk:nonce:{application_id}:{nonce}"


def nonce_claim_in_database(*, key: str, ttl: int) -> bool:
    """Records a request nonce in the database (the embedded default; with Redis, admission does it).

    False when it was already used within ``ttl`` seconds. The table is shared by every process.
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            Nonce.objects.filter(key=key, expires_at__lte=now).delete()
            Nonce.objects.create(key=key, expires_at=now + timedelta(seconds=ttl))
    except IntegrityError:
        return False
    return True


def nonce_release(*, key: str) -> None:
    """Forgets a nonce whose request failed for a server-side reason, so the client may resend it."""
    try:
        client = get_redis()
        if client is not None:
            client.delete(key)
        else:
            Nonce.objects.filter(key=key).delete()
    except Exception:  # the request is already failing; its own error is the one to report
        logger.warning("could not release nonce", exc_info=True)


def nonces_purge() -> int:
    """Deletes expired nonces of the embedded store (Redis expires its own)."""
    deleted, _ = Nonce.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted


class _RawJsonbDumper(psycopg.adapt.Dumper):
    """Event data to a jsonb column in COPY's binary format: the JSON bytes as received (the schema
    checked them), with jsonb's version byte, never decoded and encoded again."""

    format = psycopg.pq.Format.BINARY
    oid = psycopg.adapters.types["jsonb"].oid

    def dump(self, obj) -> bytes:
        return b"\x01" + bytes(obj)


_COPY = f"COPY {_TABLE} ({', '.join(_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = [
    psycopg.adapters.types[name].oid
    for name in (
        "int8",
        "int8",
        "uuid",
        "text",
        "text",
        "text",
        "text",
        "text",
        "jsonb",
        "timestamptz",
        "timestamptz",
        "text",
        "text",
        "text",
        "text",
        "int8",
    )
]
# Below this many events one prepared INSERT costs less in all: COPY saves PostgreSQL work per
# event, but costs a round trip and Python work of its own (benchmarks/README.md).
COPY_MIN_EVENTS = 50


def _pg_copy(
    target: IngestTarget, events: list[Envelope], received_at: datetime, per_batch: tuple, conn: psycopg.Connection
) -> int:
    organization_id, application_id = target.organization_id, target.application_id
    with psycopg.Cursor(conn) as cursor:
        cursor.adapters.register_dumper(None, _RawJsonbDumper)  # this cursor only, looked up by COPY's types
        with cursor.copy(_COPY) as copy:
            copy.set_types(_COPY_TYPES)
            for e in events:
                service, body = e.service, e.event
                copy.write_row(
                    (
                        organization_id,
                        application_id,
                        e.event_id,
                        e.schema_version,
                        e.user_id,
                        e.session_id,
                        body.type,
                        body.category,
                        body.data,
                        e.timestamp,
                        received_at,
                        service.name,
                        service.version,
                        service.language,
                        *per_batch,
                    )
                )
        return cursor.rowcount


class _PreparedInsert:
    """One of the INSERTs above, prepared once per database connection under a name of its own and
    run by libpq's PQexecPrepared (psycopg's ``pq`` layer, which lets go of the GIL while it waits):
    the parameters go as bytes already, so none of a cursor's per-statement work (adapting each
    value, converting the query, managing prepared statements, its result generators) is paid on
    every small batch; it was half of the web worker's CPU for storing one (benchmarks/README.md).
    A prepared statement is not transactional, so one prepared in a transaction rolled back stays.
    On a connection that prepares nothing (APP_DATABASE__PREPARED_STATEMENTS=false, for a pooler
    that cannot keep prepared statements), it goes unnamed by PQexecParams: planned on every batch.
    """

    # Parameters: organization, application, received at, SDK version, stream, the events. The
    # texts go in binary format, i.e. as their bytes with their length: a NUL in them is refused by
    # PostgreSQL (a DataError, as with any cursor), where libpq would cut a text-format value short.
    _TYPES = tuple(
        psycopg.adapters.types[name].oid for name in ("int8", "int8", "timestamptz", "text", "int8", "jsonb")
    )
    _FORMATS = [0, 0, 0, 1, 0, 1]

    def __init__(self, name: str, sql: str):
        self.name = name.encode()
        self.sql = (sql % tuple(f"${n}" for n in range(1, sql.count("%s") + 1))).encode()  # libpq's $1, $2…
        self._prepared_on = weakref.WeakSet()  # psycopg connections holding it

    def run(
        self,
        conn: psycopg.Connection,
        target: IngestTarget,
        events: list[Envelope],
        received_at: datetime,
        per_batch: tuple,
    ) -> int:
        pgconn = conn.pgconn
        sdk_version, stream_id = per_batch
        params = [
            b"%d" % target.organization_id,
            b"%d" % target.application_id,
            received_at.isoformat().encode(),
            None if sdk_version is None else sdk_version.encode(),
            None if stream_id is None else b"%d" % stream_id,
            b"\x01" + _encode(events),  # jsonb's binary format: a version byte, then the JSON text
        ]
        if conn.prepare_threshold is None:  # Django's OPTIONS leave it unset when prepared statements are off
            result = pgconn.exec_params(self.sql, params, self._TYPES, self._FORMATS)
        else:
            if conn not in self._prepared_on:
                self._check(conn, pgconn.prepare(self.name, self.sql, self._TYPES))
                self._prepared_on.add(conn)
            result = pgconn.exec_prepared(self.name, params, self._FORMATS)
        self._check(conn, result)
        return result.command_tuples or 0

    @staticmethod
    def _check(conn: psycopg.Connection, result) -> None:
        if result.status == psycopg.pq.ExecStatus.COMMAND_OK:
            return
        if conn.pgconn.status == psycopg.pq.ConnStatus.BAD:  # the server went away: no SQLSTATE to go by
            raise psycopg.OperationalError(result.get_error_message("utf-8"))
        raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


_INSERT = _PreparedInsert("ingest_events_insert", _PG_INSERT)
_INSERT_SKIPPING_STORED = _PreparedInsert("ingest_events_insert_skipping_stored", _PG_INSERT + _ON_CONFLICT_SKIP)


def _pg_insert(
    target: IngestTarget,
    events: list[Envelope],
    received_at: datetime,
    per_batch: tuple,
    conn: psycopg.Connection,
    skip_stored: bool = False,
) -> int:
    return (_INSERT_SKIPPING_STORED if skip_stored else _INSERT).run(conn, target, events, received_at, per_batch)


def _pg_store(target: IngestTarget, events: list[Envelope], received_at: datetime, per_batch: tuple) -> int:
    """Stores by COPY from COPY_MIN_EVENTS events on (about half of what INSERT costs PostgreSQL per
    event), by INSERT below; should the batch meet an event already stored, again by INSERT skipping
    those events."""
    insert = _pg_copy if len(events) >= COPY_MIN_EVENTS else _pg_insert
    try:
        with _statement() as conn:
            return insert(target, events, received_at, per_batch, conn)
    except IntegrityError:
        pass
    with _statement() as conn:
        return _pg_insert(target, events, received_at, per_batch, conn, skip_stored=True)


def _sqlite_store(target: IngestTarget, events: list[Envelope], received_at: datetime, per_batch: tuple) -> int:
    as_stored = connection.ops.adapt_datetimefield_value  # Django's own text form, so SQL compares right
    received = as_stored(received_at)
    rows = [
        (
            target.organization_id,
            target.application_id,
            e.event_id.hex,
            e.schema_version,
            e.user_id,
            e.session_id,
            e.event.type,
            e.event.category,
            bytes(e.event.data).decode(),
            as_stored(e.timestamp),
            received,
            e.service.name,
            e.service.version,
            e.service.language,
            *per_batch,
        )
        for e in events
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(_SQLITE_INSERT, rows)
        return max(cursor.rowcount, 0)


@dataclass(frozen=True)
class StoreResult:
    stored: int
    errors: list[EventError]


@contextmanager
def _statement():
    """Django's psycopg connection, for one statement sent through psycopg rather than Django's
    cursor (which inlines every value into the SQL text). Outside a transaction the statement is
    atomic by itself, with no BEGIN/COMMIT round trips; inside a caller's, a savepoint (whose
    SAVEPOINT also opens the transaction, psycopg sending BEGIN first) keeps a refused statement
    from aborting it. Errors surface as Django's database exceptions."""
    db = connections[DEFAULT_DB_ALIAS]  # looked up once: each attribute of django.db.connection looks it up again
    db.ensure_connection()
    with transaction.atomic() if db.in_atomic_block else nullcontext(), db.wrap_database_errors:
        yield db.connection


def events_store(
    *,
    target: IngestTarget,
    events: list[Envelope],
    indexes: list[int],
    sdk_version: str | None,
    stream_id: int | None = None,
    whole: bool = False,
) -> StoreResult:
    """Stores valid events atomically; returns how many were new.

    Events already stored for the application (same event id) are skipped, not errors. Should the
    database refuse a value the schema let through (a number out of jsonb's range, say), each event
    is retried alone so that only the offending ones (``indexes`` gives their place in the batch)
    are reported, and the others are stored; with ``whole``, none is.
    """
    if not events:
        return StoreResult(0, [])
    received_at = timezone.now()
    per_batch = (sdk_version, stream_id)  # the last columns, the same for every event of the batch
    store = _pg_store if connection.vendor == "postgresql" else _sqlite_store
    try:
        return StoreResult(store(target, events, received_at, per_batch), [])
    except DataError:
        logger.info("batch refused by the database; storing its events one by one")
    stored, errors = 0, []
    with transaction.atomic():
        for index, event in zip(indexes, events):
            try:
                stored += store(target, [event], received_at, per_batch)
            except DataError as exc:
                errors.append(
                    EventError(
                        index,
                        str(event.event_id),
                        "invalid_data",
                        f"event could not be stored: {str(exc).splitlines()[0]}",
                    )
                )
        if whole and errors:
            transaction.set_rollback(True)
            stored = 0
    return StoreResult(stored, errors)


def outcomes_count(*, target: IngestTarget, counts: Counter, quota_unused: int = 0) -> None:
    """Counts a request's events that were not accepted, in the metrics and the outcomes, and gives
    back ``quota_unused`` events of the month's quota."""
    for (outcome, reason), count in counts.items():
        if count:
            EVENTS_FAILED.labels(outcome, reason).inc(count)
    outcomes_record(
        organization_id=target.organization_id,
        application_id=target.application_id,
        counts=counts,
        quota_unused=quota_unused,
        target=target,
    )


@dataclass(frozen=True)
class Accepted:
    stored: int  # new events stored
    wanted: int  # valid events offered
    granted: int  # of those, how many the month's quota admitted
    errors: list[EventError]  # every refused event in batch order: invalid, refused by the database, over quota


def events_accept(
    *,
    target: IngestTarget,
    checked: CheckedBatch,
    reserved: int | None,
    sdk_version: str | None = None,
    stream_id: int | None = None,
    whole: bool = False,
) -> Accepted:
    """Stores the valid events of a checked batch that the month's quota admits, then settles the
    batch: outcomes counted and unused quota given back (also when storing fails, so that the
    client's retry finds it). ``reserved``: quota already reserved at admission; None to reserve here.
    ``whole``: the batch is stored whole or not at all (see ``events_store``).

    Accepted events are counted from the events table (``rollups_update``), not here, so the common
    batch, all accepted, costs no outcome round trip.
    """
    wanted = len(checked.valid)
    try:
        if reserved is None:
            reserved = quota_reserve(target=target, wanted=wanted)
        granted = min(wanted, reserved)
        result = events_store(
            target=target,
            events=checked.valid[:granted],
            indexes=checked.indexes[:granted],
            sdk_version=sdk_version,
            stream_id=stream_id,
            whole=whole,
        )
    except Exception:
        if reserved:
            quota_release(target=target, unused=reserved)
        raise
    over_quota = [
        EventError(index, str(event.event_id), "over_quota", "The organization's monthly event quota is spent")
        for index, event in zip(checked.indexes[granted:], checked.valid[granted:])
    ]
    EVENTS_INGESTED.inc(result.stored)
    Kind = Outcome.Kind
    counts = Counter(
        {
            (Kind.OVER_QUOTA, ""): len(over_quota),
            (Kind.DUPLICATE, ""): granted - result.stored - len(result.errors) + checked.duplicates,
        }
    )
    for error in checked.errors + result.errors:
        counts[(Kind.INVALID, error.error)] += 1
    # Quota is spent only by events stored: what was reserved for others is given back.
    outcomes_count(target=target, counts=counts, quota_unused=reserved - result.stored)
    errors = sorted(checked.errors + result.errors + over_quota, key=lambda error: error.index)
    return Accepted(stored=result.stored, wanted=wanted, granted=granted, errors=errors)

"""Writes of the ingest path: nonces and events."""

import logging
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
import psycopg
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from accounts.selectors import IngestTarget
from ingest.models import Event, Nonce
from ingest.schema import Envelope, EventError
from telemetry.lib.redis import get_redis

logger = logging.getLogger(__name__)

_COLUMNS = (
    "organization_id", "application_id", "event_id", "schema_version", "user_id", "session_id",
    "event_type", "category", "data", "timestamp", "received_at", "service_name", "service_version",
    "service_language", "sdk_version",
)
_TABLE = Event._meta.db_table
# Hot path: the validated envelopes travel as one JSON document, encoded by msgspec in C, and
# PostgreSQL unpacks it with json_to_recordset: one round trip and no per-event Python work, with
# ON CONFLICT making a re-sent event a no-op.
_PG_INSERT = (
    f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) "
    "SELECT %s, %s, e.event_id, e.schema_version, e.user_id, e.session_id, e.event->>'type', "
    "e.event->>'category', (e.event->'data')::jsonb, e.\"timestamp\", %s, e.service->>'name', "
    "e.service->>'version', e.service->>'language', %s "
    "FROM json_to_recordset(%s::json) AS e(event_id uuid, schema_version text, \"timestamp\" timestamptz, "
    "user_id text, session_id text, service json, event json) "
    "ON CONFLICT (application_id, event_id) DO NOTHING"
)
_encode = msgspec.json.Encoder().encode
_SQLITE_INSERT = (
    f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
    "ON CONFLICT (application_id, event_id) DO NOTHING"
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


def _pg_store(target: IngestTarget, events: list[Envelope], received_at: datetime, sdk_version: str | None,
              cursor) -> int:
    cursor.execute(_PG_INSERT, (target.organization_id, target.application_id, received_at, sdk_version,
                                _encode(events).decode()), prepare=True)
    return cursor.rowcount


def _sqlite_store(target: IngestTarget, events: list[Envelope], received_at: datetime, sdk_version: str | None,
                  cursor) -> int:
    as_stored = connection.ops.adapt_datetimefield_value  # Django's own text form, so SQL compares right
    received = as_stored(received_at)
    rows = [
        (target.organization_id, target.application_id, e.event_id.hex, e.schema_version, e.user_id, e.session_id,
         e.event.type, e.event.category, bytes(e.event.data).decode(), as_stored(e.timestamp),
         received, e.service.name, e.service.version, e.service.language, sdk_version)
        for e in events
    ]
    cursor.executemany(_SQLITE_INSERT, rows)
    return max(cursor.rowcount, 0)


@dataclass(frozen=True)
class StoreResult:
    stored: int
    errors: list[EventError]


@contextmanager
def _cursor():
    """On PostgreSQL, a psycopg cursor with server-side binding: parameters travel as binary arrays
    and the statement is prepared once per connection (Django's own cursor inlines every value
    into the SQL text). Errors still surface as Django's database exceptions."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def events_store(*, target: IngestTarget, events: list[Envelope], indexes: list[int],
                 sdk_version: str | None) -> StoreResult:
    """Stores valid events in one statement and one transaction; returns how many were new.

    Events already stored for the application (same event id) are skipped, not errors. Should the
    database refuse a value the schema let through (a number out of jsonb's range, say), each event
    is retried alone so that only the offending ones (``indexes`` gives their place in the batch)
    are reported, and the others are stored.
    """
    if not events:
        return StoreResult(0, [])
    received_at = timezone.now()
    postgresql = connection.vendor == "postgresql"
    store = _pg_store if postgresql else _sqlite_store
    try:
        # On PostgreSQL the batch is one statement, atomic by itself: no BEGIN/COMMIT round trips
        # (inside a caller's transaction, a savepoint keeps a refused batch from aborting it).
        single_statement = postgresql and not connection.in_atomic_block
        with (nullcontext() if single_statement else transaction.atomic()), _cursor() as cursor:
            return StoreResult(store(target, events, received_at, sdk_version, cursor), [])
    except DataError:
        logger.info("batch refused by the database; storing its events one by one")
    stored, errors = 0, []
    with transaction.atomic():
        for index, event in zip(indexes, events):
            try:
                with transaction.atomic(), _cursor() as cursor:
                    stored += store(target, [event], received_at, sdk_version, cursor)
            except DataError as exc:
                errors.append(EventError(index, str(event.event_id), "invalid_data",
                                         f"event could not be stored: {str(exc).splitlines()[0]}"))
    return StoreResult(stored, errors)

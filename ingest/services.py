"""Writes of the ingest path: nonces and events."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

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
# Per-event columns travel as one array each (one round trip for the whole batch); the others are
# the same for every event of the batch.
_PG_ARRAYS = (
    ("event_id", "uuid"), ("user_id", "text"), ("session_id", "text"), ("event_type", "text"),
    ("category", "text"), ("data", "text"), ("ts", "timestamptz"), ("service_name", "text"),
    ("service_version", "text"), ("service_language", "text"),
)
_PG_INSERT = (
    f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) "
    "SELECT %s, %s, e.event_id, %s, e.user_id, e.session_id, e.event_type, e.category, e.data::jsonb, "
    "e.ts, %s, e.service_name, e.service_version, e.service_language, %s "
    f"FROM unnest({', '.join(f'%s::{kind}[]' for _, kind in _PG_ARRAYS)}) "
    f"AS e({', '.join(name for name, _ in _PG_ARRAYS)}) "
    "ON CONFLICT (application_id, event_id) DO NOTHING"
)
_SQLITE_INSERT = (
    f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
    "ON CONFLICT (application_id, event_id) DO NOTHING"
)


def _nonce_key(application_id: int, nonce: str) -> str:
    return f"tk:nonce:{application_id}:{nonce}"


def nonce_claim(*, application_id: int, nonce: str, ttl: int) -> bool:
    """Records a request nonce; False when it was already used within ``ttl`` seconds.

    Redis ``SET NX EX`` is shared by every server process; the embedded default uses a table,
    which is shared across processes too.
    """
    key = _nonce_key(application_id, nonce)
    client = get_redis()
    if client is not None:
        return bool(client.set(key, b"1", nx=True, ex=ttl))
    now = timezone.now()
    try:
        with transaction.atomic():
            Nonce.objects.filter(key=key, expires_at__lte=now).delete()
            Nonce.objects.create(key=key, expires_at=now + timedelta(seconds=ttl))
    except IntegrityError:
        return False
    return True


def nonce_release(*, application_id: int, nonce: str) -> None:
    """Forgets a nonce whose request failed for a server-side reason, so the client may resend it."""
    key = _nonce_key(application_id, nonce)
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
    columns = ([], [], [], [], [], [], [], [], [], [])
    for e in events:
        service, body = e.service, e.event
        for column, value in zip(columns, (
            e.event_id, e.user_id, e.session_id, body.type, body.category, bytes(body.data).decode(),
            e.timestamp, service.name, service.version, service.language,
        )):
            column.append(value)
    cursor.execute(_PG_INSERT, (target.organization_id, target.application_id, events[0].schema_version,
                                received_at, sdk_version, *columns))
    return cursor.rowcount


def _sqlite_store(target: IngestTarget, events: list[Envelope], received_at: datetime, sdk_version: str | None,
                  cursor) -> int:
    rows = [
        (target.organization_id, target.application_id, e.event_id.hex, e.schema_version, e.user_id, e.session_id,
         e.event.type, e.event.category, bytes(e.event.data).decode(), e.timestamp.isoformat(),
         received_at.isoformat(), e.service.name, e.service.version, e.service.language, sdk_version)
        for e in events
    ]
    cursor.executemany(_SQLITE_INSERT, rows)
    return max(cursor.rowcount, 0)


@dataclass(frozen=True)
class StoreResult:
    stored: int
    errors: list[EventError]


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
    store = _pg_store if connection.vendor == "postgresql" else _sqlite_store
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            return StoreResult(store(target, events, received_at, sdk_version, cursor), [])
    except DataError:
        logger.info("batch refused by the database; storing its events one by one")
    stored, errors = 0, []
    with transaction.atomic(), connection.cursor() as cursor:
        for index, event in zip(indexes, events):
            try:
                with transaction.atomic():
                    stored += store(target, [event], received_at, sdk_version, cursor)
            except DataError as exc:
                errors.append(EventError(index, str(event.event_id), "invalid_data",
                                         f"event could not be stored: {str(exc).splitlines()[0]}"))
    return StoreResult(stored, errors)

"""Event streams (seed 002): schemaless JSON values over an HTTP POST or a WebSocket, each value one
event, stored as it arrives and linked to the stream that carried it.

Values are stored in groups, each through ``events_accept``: over HTTP the values of each read of
``READ_SIZE`` bytes (the server's body stream blocks until it has that many, or the body ends),
over WebSocket the messages that arrived back to back. So a long stream is never held in memory
whole, quota is spent as events are stored, and a client that stops half-way keeps everything
stored before.
"""

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from django.db.models import F
from django.utils import timezone

from accounts.selectors import IngestTarget
from ingest.models import Stream
from ingest.schema import batch_of, envelope_make
from ingest.services import Accepted, events_accept

SOURCE = "stream/1"
READ_SIZE = 16 * 1024
# Header names that carry credentials: never stored with a stream.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
_NUL_ESCAPE = b"\\u0000"  # valid JSON, but PostgreSQL's jsonb cannot hold it


def headers_kept(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request headers as a stream keeps them: names lowercased, credentials left out."""
    return {name.lower(): value for name, value in pairs if name.lower() not in _SECRET_HEADERS}


def stream_open(*, target: IngestTarget, transport: str, headers: dict[str, str]) -> Stream:
    """Records a new stream of ``target``'s application."""
    return Stream.objects.create(organization_id=target.organization_id, application_id=target.application_id,
                                 transport=transport, headers=headers, started_at=timezone.now())


def stream_close(*, stream: Stream, ending: str) -> None:
    """Marks the stream ended, and why."""
    Stream.objects.filter(pk=stream.pk).update(ended_at=timezone.now(), ending=ending)


def _timestamp(value: dict) -> datetime | None:
    for name in ("time", "timestamp"):
        text = value.get(name)
        if isinstance(text, str):
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                continue
            if moment.tzinfo is not None:
                return moment.astimezone(UTC)
    return None


def _envelope(raw: bytes, value, now: datetime):
    fields = value if isinstance(value, dict) else {}
    event_type, level = fields.get("type"), fields.get("level")
    return envelope_make(source=SOURCE, data=raw, timestamp=_timestamp(fields) or now,
                         event_type=event_type if isinstance(event_type, str) and event_type else "stream",
                         category=level if isinstance(level, str) and level else None)


def stream_values_store(*, target: IngestTarget, stream: Stream, values: list[tuple[bytes, object]]) -> Accepted:
    """Stores decoded values (each with its raw JSON) as events of ``stream``, as far as the month's
    quota allows; ``Accepted.granted < Accepted.wanted`` means the quota ran out."""
    now = timezone.now()
    accepted = events_accept(target=target, checked=batch_of([_envelope(raw, value, now) for raw, value in values]),
                             reserved=None, sdk_version=(stream.headers.get("user-agent") or "")[:100] or None,
                             stream_id=stream.pk)
    if accepted.stored:
        Stream.objects.filter(pk=stream.pk).update(event_count=F("event_count") + accepted.stored, last_event_at=now)
    return accepted


class StreamStopped(ValueError):
    """The body holds something that is not a JSON value, or one over the size limit."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


_decode = msgspec.json.decode


def _line_values(line: bytes) -> list[tuple[bytes, object]]:
    """The JSON values of one line: usually one; several when the client concatenated them."""
    try:
        return [(line, _decode(line))]
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass
    try:
        text = line.decode()
    except UnicodeDecodeError:
        raise StreamStopped("invalid_json", "The stream holds bytes that are not UTF-8") from None
    values, position, decoder = [], 0, json.JSONDecoder()
    while position < len(text):
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise StreamStopped("invalid_json", f"Malformed JSON value: {error}") from None
        values.append((text[position:end].encode(), value))
        position = end
        while position < len(text) and text[position].isspace():
            position += 1
    return values


def values_read(read, *, max_value_bytes: int) -> Iterator[list[tuple[bytes, object]]]:
    """Reads a body of JSON values (one per line in practice) through ``read(size)`` and yields
    them in the groups in which they should be stored. At a malformed value, or one longer than
    ``max_value_bytes``, it yields the values before it and then raises ``StreamStopped``."""
    rest = b""
    while True:
        pending: list[tuple[bytes, object]] = []
        chunk = read(READ_SIZE)
        lines = (rest + chunk).split(b"\n")
        rest = b"" if not chunk else lines.pop()
        try:
            for line in lines:
                line = line.strip()
                if not line:
                    continue
                if len(line) > max_value_bytes:
                    raise StreamStopped("payload_too_large", f"A value is over the limit of {max_value_bytes} bytes")
                if _NUL_ESCAPE in line:
                    raise StreamStopped("invalid_json", "A value holds \\u0000, which cannot be stored")
                pending.extend(_line_values(line))
        except StreamStopped:
            if pending:
                yield pending
            raise
        if len(rest) > max_value_bytes:
            if pending:
                yield pending
            raise StreamStopped("payload_too_large", f"A value is over the limit of {max_value_bytes} bytes")
        if pending:
            yield pending
        if not chunk:
            return


@dataclass(frozen=True)
class Message:
    """One WebSocket message as a value to store: JSON as it came, anything else as a JSON string
    (or, for bytes that are not text, an object holding them in base64)."""

    raw: bytes
    value: object

    @classmethod
    def of(cls, payload: bytes | str) -> "Message":
        data = payload.encode() if isinstance(payload, str) else payload
        if _NUL_ESCAPE not in data:
            try:
                return cls(data, _decode(data))
            except (msgspec.DecodeError, UnicodeDecodeError):
                pass
        try:
            text = data.decode()
        except UnicodeDecodeError:
            value = {"base64": base64.b64encode(data).decode()}
            return cls(msgspec.json.encode(value), value)
        text = text.replace("\x00", "")
        return cls(msgspec.json.encode(text), text)

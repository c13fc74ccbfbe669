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
from ingest.errors import Unauthorized
from ingest.intake import token_authenticate
from ingest.models import Stream
from ingest.schema import NUL_ESCAPE, batch_of, envelope_make, in_calendar
from ingest.services import events_accept

SOURCE = "stream/1"
READ_SIZE = 16 * 1024
# Header names that carry credentials: never stored with a stream.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


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
            if moment.tzinfo is not None and in_calendar(moment):
                return moment.astimezone(UTC)
    return None


def _envelope(raw: bytes, value, now: datetime):
    fields = value if isinstance(value, dict) else {}
    event_type, level = fields.get("type"), fields.get("level")
    return envelope_make(source=SOURCE, data=raw, timestamp=_timestamp(fields) or now,
                         event_type=event_type if isinstance(event_type, str) and event_type else "stream",
                         category=level if isinstance(level, str) and level else None)


def stream_values_store(*, stream: Stream, values: list[tuple[bytes, object]], token: str | None,
                        org_id: str, app_id: str) -> int:
    """Stores a group of decoded values (each with its raw JSON) as events of ``stream``; returns
    how many were stored. The token is checked again first, so a credential revoked (or a tier
    changed) mid-stream takes effect within seconds. Raises ``StreamStopped``, with the count this
    group stored, when the stream must stop: token no longer valid, the month's quota spent, or a
    value the database refused."""
    try:
        target = token_authenticate(token=token, org_public_id=org_id, app_public_id=app_id)
    except Unauthorized as error:
        raise StreamStopped("unauthorized", error.message) from None
    now = timezone.now()
    accepted = events_accept(target=target, checked=batch_of([_envelope(raw, value, now) for raw, value in values]),
                             reserved=None, sdk_version=(stream.headers.get("user-agent") or "")[:100] or None,
                             stream_id=stream.pk)
    if accepted.stored:
        Stream.objects.filter(pk=stream.pk).update(event_count=F("event_count") + accepted.stored, last_event_at=now)
    if accepted.granted < accepted.wanted:
        raise StreamStopped("quota_exceeded", "The organization's monthly event quota is spent",
                            stored=accepted.stored)
    if accepted.errors:
        first = accepted.errors[0]
        raise StreamStopped(first.error, f"A value could not be stored: {first.message}", stored=accepted.stored)
    return accepted.stored


class StreamStopped(ValueError):
    """The stream must stop here: a value malformed, too large or refused by the database, the
    quota spent, or the token no longer valid. ``code`` is the stable error code (and the stream's
    ending); ``stored`` what the last group stored before the stop."""

    def __init__(self, code: str, message: str, *, stored: int = 0):
        super().__init__(message)
        self.code, self.stored = code, stored


_decode = msgspec.json.decode


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")  # Python's decoder takes NaN and Infinity; jsonb does not


_python_decoder = json.JSONDecoder(parse_constant=_no_constants)


def _values_in(text: bytes) -> tuple[list[tuple[bytes, object]], bytes]:
    """The JSON values in ``text`` (usually one line holding one), and what follows the last of them
    when it is a value still unfinished (pretty-printed values span lines); raises ``StreamStopped``
    at anything else."""
    try:
        return [(text, _decode(text))], b""
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass
    try:
        decoded = text.decode()
    except UnicodeDecodeError:
        raise StreamStopped("invalid_json", "The stream holds bytes that are not UTF-8") from None
    values, position = [], 0
    while position < len(decoded):
        try:
            value, end = _python_decoder.raw_decode(decoded, position)
        except json.JSONDecodeError as error:
            if error.pos >= len(decoded):  # the value goes on in the next line
                return values, decoded[position:].encode()
            raise StreamStopped("invalid_json", f"Malformed JSON value: {error}") from None
        except ValueError as error:
            raise StreamStopped("invalid_json", f"Malformed JSON value: {error}") from None
        values.append((decoded[position:end].encode(), value))
        position = end
        while position < len(decoded) and decoded[position].isspace():
            position += 1
    return values, b""


def values_read(read, *, max_value_bytes: int) -> Iterator[list[tuple[bytes, object]]]:
    """Reads a body of JSON values (one per line in practice) through ``read(size)`` and yields
    them in the groups in which they should be stored. At a malformed value, or one longer than
    ``max_value_bytes``, it yields the values before it and then raises ``StreamStopped``."""
    rest = b""  # the body after the last newline read
    unfinished = b""  # the lines so far of a value that spans lines
    while True:
        pending: list[tuple[bytes, object]] = []
        chunk = read(READ_SIZE)
        lines = (rest + chunk).split(b"\n")
        rest = b"" if not chunk else lines.pop()
        try:
            for line in lines:
                text = (unfinished + b"\n" + line if unfinished else line).strip()
                if not text:
                    continue
                if len(text) > max_value_bytes:
                    raise StreamStopped("payload_too_large", f"A value is over the limit of {max_value_bytes} bytes")
                if NUL_ESCAPE in text:
                    raise StreamStopped("invalid_json", "A value holds \\u0000, which cannot be stored")
                values, unfinished = _values_in(text)
                pending.extend(values)
            if len(rest) + len(unfinished) > max_value_bytes:
                raise StreamStopped("payload_too_large", f"A value is over the limit of {max_value_bytes} bytes")
            if not chunk and unfinished:
                raise StreamStopped("invalid_json", "The body ends inside a JSON value")
        except StreamStopped:
            if pending:
                yield pending
            raise
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
        if NUL_ESCAPE not in data:
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

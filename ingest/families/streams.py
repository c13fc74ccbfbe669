"""Event streams (docs/protocols.md#event-streams): JSON values over an HTTP POST or a WebSocket, each value one
event, stored as it arrives and linked to the stream that carried it.

Values are stored in groups, each through ``events_accept``: over HTTP the values of each read of
``READ_SIZE`` bytes (the server's body stream blocks until it has that many, or the body ends),
over WebSocket the messages that arrived back to back. So a long stream is never held in memory
whole, quota is spent as events are stored, and a client that stops half-way keeps everything
stored before.
"""

import base64
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from accounts.ingest_targets import IngestTarget
from accounts.services import credential_touch
from ingest.access import verification
from ingest.access.tokens import token_authenticate
from ingest.errors import ApiError, Unauthorized
from ingest.models import Stream
from ingest.storage.schema import NUL_ESCAPE, batch_of, envelope_make, in_calendar
from ingest.storage.services import events_accept
from telemetry.lib.crypto import token_hash
from telemetry.lib.redis import get_redis, redis_script

SOURCE = "stream/1"
READ_SIZE = 16 * 1024
# Past each of these bytes a stream counts once more against the application's rate limit (a
# WebSocket's groups of messages are at most as large), so a long stream pays for what it sends.
BYTES_PER_REQUEST = 1024 * 1024
# The request headers a stream keeps, shown to the application's viewers: what the client is and
# how it sends. Any other may carry credentials or a client's address (X-Forwarded-For, Forwarded,
# X-Real-IP, Via, Referer and the like), which are never stored.
_KEPT_HEADERS = frozenset(
    {
        "user-agent",
        "content-type",
        "content-encoding",
        "accept",
        "x-request-id",
        "sec-websocket-protocol",
        "sec-websocket-version",
    }
)
_HEADER_VALUE_LENGTH = 256


def headers_kept(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request headers as a stream keeps them: names lowercased, only the few in ``_KEPT_HEADERS``,
    values cut to ``_HEADER_VALUE_LENGTH`` characters."""
    kept = {}
    for name, value in pairs:
        name = name.lower()
        if name in _KEPT_HEADERS:
            kept[name] = value[:_HEADER_VALUE_LENGTH]
    return kept


# A token's open connections: a sorted set of slot -> the end of its lease (ms, Redis' clock).
_SLOT_CLAIM = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class StreamSlot:
    """One of a token's open streams (HTTP or WebSocket), held (or renewed) in Redis for ``lease``
    seconds at a time, at most STREAM_MAX_CONNECTIONS_PER_TOKEN of them; always granted on the
    embedded default, which has no Redis and caps nothing."""

    def __init__(self, token: str):
        self.key, self.member = f"tk:stream-slots:{token_hash(token)}", uuid.uuid4().hex
        # Renewed at a group once a third of it is gone, so it outlasts any silence the idle
        # timeouts allow (and a slow store).
        self.lease = 2 * max(settings.STREAM_IDLE_TIMEOUT, settings.SERVER_BODY_TIMEOUT) + 30
        self.renewed = 0.0

    def claim(self) -> bool:
        script = redis_script(_SLOT_CLAIM)
        self.renewed = time.monotonic()
        if script is None:
            return True
        return bool(
            script(keys=[self.key], args=[self.member, settings.STREAM_MAX_CONNECTIONS_PER_TOKEN, self.lease * 1000])
        )

    def due(self) -> bool:
        return time.monotonic() - self.renewed > self.lease / 3

    def release(self) -> None:
        client = get_redis()
        if client is not None:
            client.zrem(self.key, self.member)


def stream_open(*, target: IngestTarget, transport: str, headers: dict[str, str]) -> Stream:
    """Records a new stream of ``target``'s application."""
    return Stream.objects.create(
        organization_id=target.organization_id,
        application_id=target.application_id,
        transport=transport,
        headers=headers,
        started_at=timezone.now(),
    )


def stream_close(*, stream: Stream, ending: str) -> None:
    """Marks the stream ended, and why."""
    Stream.objects.filter(pk=stream.pk).update(ended_at=timezone.now(), ending=ending)


def _text(raw: msgspec.Raw) -> str | None:
    """A member's value when it is a string (members absent or of another kind: None)."""
    if not raw:
        return None
    try:
        return _decode_text(raw)
    except msgspec.DecodeError:
        return None


def _timestamp(fields: "_Fields") -> datetime | None:
    for raw in (fields.time, fields.timestamp):
        text = _text(raw)
        if text is not None:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                continue
            if moment.tzinfo is not None and in_calendar(moment):
                return moment.astimezone(UTC)
    return None


def _envelope(raw: bytes, fields: "_Fields | None", now: datetime):
    if fields is None:
        return envelope_make(source=SOURCE, data=raw, timestamp=now, event_type="stream")
    event_type, level = _text(fields.type), _text(fields.level)
    return envelope_make(
        source=SOURCE,
        data=raw,
        timestamp=_timestamp(fields) or now,
        event_type=event_type or "stream",
        category=level or None,
    )


def stream_values_store(
    *, stream: Stream, values: list[tuple[bytes, "_Fields | None"]], token: str | None, org_id: str, app_id: str
) -> int:
    """Stores a group of checked values (each its raw JSON and the members read from it) as events
    of ``stream``; returns how many were stored. The token is checked again first, so a credential
    revoked (or a tier changed) mid-stream takes effect within seconds. Raises ``StreamStopped``, with the count this
    group stored, when the stream must stop: token no longer valid, the month's quota spent, or a
    value the database refused."""
    try:
        caller = token_authenticate(token=token, org_public_id=org_id, app_public_id=app_id)
    except Unauthorized as error:
        raise StreamStopped("unauthorized", error.message) from None
    target = caller.target
    credential_touch(credential_id=caller.credential_id)  # the stream was admitted when it opened
    now = timezone.now()
    checked = batch_of([_envelope(raw, fields, now) for raw, fields in values])
    try:
        verification.service_binding_check(service=caller.bound_service, checked=checked)
    except ApiError as error:  # a stream's values name no service, so a key bound to one cannot stream
        raise StreamStopped(error.code, error.message) from None
    accepted = events_accept(
        target=target,
        checked=checked,
        reserved=None,
        sdk_version=(stream.headers.get("user-agent") or "")[:100] or None,
        stream_id=stream.pk,
    )
    if accepted.stored:
        Stream.objects.filter(pk=stream.pk).update(event_count=F("event_count") + accepted.stored, last_event_at=now)
    if accepted.granted < accepted.wanted:
        raise StreamStopped("quota_exceeded", "The organization's monthly event quota is spent", stored=accepted.stored)
    if accepted.errors:
        first = accepted.errors[0]
        raise StreamStopped(first.error, f"A value could not be stored: {first.message}", stored=accepted.stored)
    return accepted.stored


class MeteredRead:
    """``read`` that counts the bytes it has given."""

    def __init__(self, read):
        self._read, self.size = read, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._read(size)
        self.size += len(chunk)
        return chunk


class StreamStopped(ValueError):
    """The stream must stop here: a value malformed, too large or refused by the database, the
    quota spent, or the token no longer valid. ``code`` is the stable error code (and the stream's
    ending); ``stored`` what the last group stored before the stop."""

    def __init__(self, code: str, message: str, *, stored: int = 0):
        super().__init__(message)
        self.code, self.stored = code, stored


class _Fields(msgspec.Struct):
    """The members of an object that an event is made from. Decoding into this checks the whole
    value as JSON but builds nothing else: a megabyte of ``[[],[],…]`` would otherwise be some 20 MB
    of Python objects, and a second of CPU."""

    type: msgspec.Raw = msgspec.Raw()
    level: msgspec.Raw = msgspec.Raw()
    time: msgspec.Raw = msgspec.Raw()
    timestamp: msgspec.Raw = msgspec.Raw()


class _Array(msgspec.Struct, array_like=True):
    """Any array, its items checked as JSON and skipped."""


_decode_object = msgspec.json.Decoder(_Fields).decode
_check_array = msgspec.json.Decoder(_Array).decode
_decode_scalar = msgspec.json.Decoder().decode
_decode_text = msgspec.json.Decoder(str).decode
_NOT_SPACE = re.compile(rb"[^ \t\r\n]")
# msgspec says where a complete value is followed by more: its only way of telling a value's end.
_TRAILING = re.compile(r"trailing characters \(byte (\d+)\)")
_TRUNCATED = "Input data was truncated"


def _fields(buffer) -> _Fields | None:
    """Checks the JSON value starting ``buffer`` (bytes or a memoryview) and returns the members of
    interest of an object (None for any other value). Raises ``msgspec.DecodeError`` when it is
    malformed, cut short or followed by more, and ``StreamStopped`` when it is JSON that cannot be
    stored."""
    try:
        if buffer[0] == 0x7B:  # {
            return _decode_object(buffer)
        if buffer[0] == 0x5B:  # [
            _check_array(buffer)
        else:
            _decode_scalar(buffer)
        return None
    except msgspec.ValidationError as error:  # a number beyond 64 bits, at the top level
        raise StreamStopped("invalid_json", f"Malformed JSON value: {error}") from None
    except RecursionError:
        raise StreamStopped("invalid_json", "A value is nested too deeply") from None
    except UnicodeDecodeError:
        raise StreamStopped("invalid_json", "The stream holds bytes that are not UTF-8") from None


def _storable(raw: bytes) -> bytes:
    """``raw`` when the database can store it: skipped strings are not checked for UTF-8 by the decoder."""
    if NUL_ESCAPE in raw:
        raise StreamStopped("invalid_json", "A value holds \\u0000, which cannot be stored")
    try:
        raw.decode()
    except UnicodeDecodeError:
        raise StreamStopped("invalid_json", "The stream holds bytes that are not UTF-8") from None
    return raw


def _values_in(text: bytes) -> tuple[list[tuple[bytes, _Fields | None]], int | None]:
    """The JSON values in ``text`` (usually one line holding one), and where a last value that is
    cut short starts (None when there is none); raises ``StreamStopped`` at anything else. Each
    value is decoded once, or twice when more follows it on the line."""
    values, view, position = [], memoryview(text), 0
    while (start := _NOT_SPACE.search(text, position)) is not None:
        position = start.start()
        try:
            fields = _fields(view[position:])
        except msgspec.DecodeError as error:
            if str(error) == _TRUNCATED:
                return values, position
            more = _TRAILING.search(str(error))
            if more is None:
                raise StreamStopped("invalid_json", f"Malformed JSON value: {error}") from None
            end = position + int(more[1]) - 1
            raw = _storable(text[position:end])
            values.append((raw, _fields(raw)))
            position = end
            continue
        values.append((_storable(text[position:] if position else text), fields))
        break
    return values, None


def _depth(line: bytes) -> int | None:
    """Brackets ``line`` opens less those it closes, outside strings; None when it leaves a string
    open, which JSON cannot (a string holds no newline). Only the bytes' own C loops run here, so a
    value spanning many lines costs one scan of each line."""
    if b'"' in line:
        if b"\\" in line:  # escaped backslashes first, so that \\" still ends a string
            line = line.replace(b"\\\\", b"").replace(b'\\"', b"")
        parts = line.split(b'"')
        if len(parts) % 2 == 0:
            return None
        line = b"".join(parts[::2])
    return line.count(b"[") + line.count(b"{") - line.count(b"]") - line.count(b"}")


class _Reader:
    """The state of ``values_read`` between lines: a value spanning lines is held until its
    brackets balance, then decoded once (not again at every line, which made a long unfinished
    value cost the square of its length)."""

    def __init__(self, max_value_bytes: int):
        self.max_value_bytes = max_value_bytes
        self.unfinished: list[bytes] = []  # the lines so far of a value that spans lines
        self.unfinished_size = 0
        self.depth = 0  # brackets open in them

    def too_large(self, size: int) -> None:
        if size > self.max_value_bytes:
            raise StreamStopped("payload_too_large", f"A value is over the limit of {self.max_value_bytes} bytes")

    def line(self, line: bytes, pending: list) -> None:
        if self.unfinished:
            self.unfinished.append(line)
            self.unfinished_size += len(line) + 1
            self.too_large(self.unfinished_size)
            depth = _depth(line)
            if depth is None:
                raise StreamStopped("invalid_json", "A string runs past the end of its line")
            self.depth += depth
            if self.depth > 0:
                return
            text, self.unfinished, self.unfinished_size = b"\n".join(self.unfinished), [], 0
        else:
            if not line or line.isspace():
                return
            self.too_large(len(line))
            text = line
        values, cut = _values_in(text)
        pending.extend(values)
        if cut is not None:
            rest = text[cut:]
            depth = _depth(rest)
            if not depth or depth < 0:  # balanced or over-closed, yet cut short: no line can finish it
                raise StreamStopped("invalid_json", "Malformed JSON value: it ends too soon")
            self.unfinished, self.unfinished_size, self.depth = [rest], len(rest), depth


def values_read(read, *, max_value_bytes: int, max_body_bytes: int) -> Iterator[list[tuple[bytes, _Fields | None]]]:
    """Reads a body of JSON values (one per line in practice) through ``read(size)`` and yields
    them in the groups in which they should be stored, in one pass. At a malformed value, one
    longer than ``max_value_bytes``, or the body's first byte past ``max_body_bytes``, it yields
    the values before and then raises ``StreamStopped``."""
    reader = _Reader(max_value_bytes)
    rest: list[bytes] = []  # the body after the last newline read
    rest_size = body_size = 0
    while True:
        pending: list[tuple[bytes, _Fields | None]] = []
        chunk = read(min(READ_SIZE, max_body_bytes - body_size + 1))
        body_size += len(chunk)
        over = body_size > max_body_bytes
        if over:  # the values before the limit are kept, as at any other stop
            chunk = chunk[: len(chunk) - (body_size - max_body_bytes)]
        try:
            if b"\n" in chunk:
                lines = chunk.split(b"\n")
                lines[0] = b"".join(rest) + lines[0]
                rest = [lines.pop()]
                rest_size = len(rest[0])
            else:
                rest.append(chunk)
                rest_size += len(chunk)
                lines = [b"".join(rest)] if not chunk and not over else []
            for line in lines:
                reader.line(line, pending)
            if over:
                raise StreamStopped(
                    "payload_too_large", f"The stream's body is over the limit of {max_body_bytes} bytes"
                )
            reader.too_large(rest_size + reader.unfinished_size)
            if not chunk and reader.unfinished:
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
    (or, for bytes that are not text, an object holding them in base64). JSON is checked as the
    HTTP stream's values are, without building its objects."""

    raw: bytes
    fields: _Fields | None

    @classmethod
    def of(cls, payload: bytes | str) -> "Message":
        data = payload.encode() if isinstance(payload, str) else payload
        start = _NOT_SPACE.search(data)
        if start is not None and NUL_ESCAPE not in data:
            try:
                fields = _fields(memoryview(data)[start.start() :])
                data.decode()
                return cls(data, fields)
            except (msgspec.DecodeError, StreamStopped, UnicodeDecodeError):
                pass
        try:
            text = data.decode()
        except UnicodeDecodeError:
            return cls(msgspec.json.encode({"base64": base64.b64encode(data).decode()}), None)
        return cls(msgspec.json.encode(text.replace("\x00", "")), None)

"""The telemetry-kit batch and event schema (docs/protocols.md#event-schema).

Hot path: a batch of up to a thousand events is decoded by msgspec into compiled structs, and
``data`` stays as the raw JSON bytes it came in, so nothing is re-encoded on the way to storage.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec

from ingest.errors import NestingTooDeep

SCHEMA_VERSION = "1.0.0"
EMPTY_OBJECT = msgspec.Raw(b"{}")

Text = Annotated[str, msgspec.Meta(max_length=255)]
RequiredText = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
UserId = Annotated[str, msgspec.Meta(pattern=r"^(anon_[0-9a-fA-F]{64}|client_[0-9a-fA-F]{64})$")]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]

# PostgreSQL's jsonb refuses \u0000; an even run of backslashes before it is an escaped backslash.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")
_AT_PATH = re.compile(r"- at `\$\.([A-Za-z_]+)")

# Error codes reported per event: stable, documented in the README.
FIELD_ERROR_CODES = {
    "event_id": "invalid_event_id",
    "id": "invalid_event_id",
    "schema_version": "unsupported_schema_version",
    "timestamp": "invalid_timestamp",
    "user_id": "invalid_user_id",
    "session_id": "invalid_session_id",
    "service": "invalid_service",
    "event": "invalid_event",
}


class Batch(msgspec.Struct):
    events: list[msgspec.Raw]


# The event structs hold no containers, so they can never be part of a cycle: gc=False keeps the
# thousands a large batch decodes into out of the garbage collector (less memory, no collections).
class Service(msgspec.Struct, gc=False):
    name: RequiredText
    version: Text | None = None
    language: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class EventBody(msgspec.Struct, gc=False):
    type: RequiredText
    category: Text | None = None
    data: msgspec.Raw = EMPTY_OBJECT


class Envelope(msgspec.Struct, gc=False):
    schema_version: str
    timestamp: AwareDatetime
    user_id: UserId
    service: Service
    event: EventBody
    event_id: uuid.UUID | None = None
    id: uuid.UUID | None = None
    session_id: RequiredText | None = None


@dataclass(frozen=True, slots=True)
class EventError:
    index: int
    event_id: str | None
    error: str
    message: str

    def as_dict(self) -> dict:
        return {"index": self.index, "event_id": self.event_id, "error": self.error, "message": self.message}


class BatchFormatError(ValueError):
    """The body is not JSON, or not an object with an ``events`` array."""


class EnvelopeBatch(msgspec.Struct):
    events: list[Envelope]


_batch_decoder = msgspec.json.Decoder(Batch)
_envelope_batch_decoder = msgspec.json.Decoder(EnvelopeBatch)
_envelope_decoder = msgspec.json.Decoder(Envelope)
NUL_ESCAPE = b"\\u0000"  # how JSON carries NUL, which PostgreSQL's text and jsonb refuse


_value_decoder = msgspec.json.Decoder()
DEPTH_MESSAGE = "JSON values may nest arrays and objects at most {} levels deep"


def too_deep() -> NestingTooDeep:
    """For a body msgspec gave up on (RecursionError): far deeper than any value kept is allowed."""
    return NestingTooDeep("The body nests arrays and objects too deep")


def _depth(value) -> int:
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in item)
    return deepest


def raw_value_error(raw: bytes, *, max_depth: int) -> tuple[str, str] | None:
    """Why a JSON value stored as sent must be refused, as (code, message), or None. Its numbers
    must be ones msgspec reads: PostgreSQL would keep 1e99999 as a numeric of 100,000 digits, and
    Python's readers refuse an integer of over 4,300. Its arrays and objects nest at most
    ``max_depth`` deep. It costs a decode of the value (about 0.2 µs for an SDK event's data)."""
    try:
        value = _value_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        return "invalid_data", f"{exc}: numbers must fit a 64-bit float"
    except msgspec.DecodeError as exc:
        return "invalid_data", str(exc)
    except RecursionError:
        return "nesting_too_deep", DEPTH_MESSAGE.format(max_depth)
    if (
        isinstance(value, (dict, list))
        and (data := bytes(raw)).count(b"[") + data.count(b"{") > max_depth
        and _depth(value) > max_depth
    ):
        return "nesting_too_deep", DEPTH_MESSAGE.format(max_depth)
    return None


def batch_decode(body: bytes) -> list[Envelope] | list[msgspec.Raw]:
    """The batch's events: decoded envelopes when every event is well formed (one pass over the
    body), else each event's raw JSON, for ``event_check`` to decode and report one by one. Raises
    ``BatchFormatError``, or ``NestingTooDeep`` for a body too deep for the decoder."""
    try:
        body.decode("utf-8")  # Raw values are not checked by the decoder, and go to storage as text
        if NUL_ESCAPE not in body:  # with one, each event is checked on its own bytes
            try:
                return _envelope_batch_decoder.decode(body).events
            except msgspec.ValidationError:
                pass
        return _batch_decoder.decode(body).events
    except msgspec.ValidationError as exc:
        raise BatchFormatError(f'Body must be a JSON object {{"events": [...]}}: {exc}') from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BatchFormatError(f"Body is not valid JSON: {exc}") from None
    except RecursionError:
        raise too_deep() from None


def in_calendar(moment: datetime) -> bool:
    """Whether an aware time stays within years 1 to 9999 once in UTC, where it is stored and read
    back. An offset moves a time by less than a day, so only the first and last years need the
    conversion."""
    if moment.year not in (1, 9999):
        return True
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return False
    return True


def has_nul(*values: str | None) -> bool:
    """Whether a text holds NUL, which PostgreSQL's text and jsonb refuse."""
    return any(value is not None and "\x00" in value for value in values)


def _raw_event_id(raw: bytes) -> str | None:
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(value, dict):
        candidate = value.get("event_id", value.get("id"))
        if isinstance(candidate, str):
            return candidate[:100]
    return None


def failed_field(exc: msgspec.ValidationError) -> tuple[str | None, str | None]:
    """The field a msgspec validation error names: (missing field, field at the failing path)."""
    text = str(exc)
    missing, at_path = _MISSING_FIELD.search(text), _AT_PATH.search(text)
    return (missing.group(1) if missing else None), (at_path.group(1) if at_path else None)


def _decode_failure(index: int, raw: bytes, exc: msgspec.ValidationError) -> EventError:
    text = str(exc)
    missing, at_path = failed_field(exc)
    if missing and not at_path:
        code = FIELD_ERROR_CODES.get(missing, "missing_field")
        code = "missing_field" if code == "invalid_event" else code
    elif at_path:
        code = FIELD_ERROR_CODES.get(at_path, "invalid_event")
    else:
        code = "invalid_event"
    return EventError(index, _raw_event_id(raw), code, text)


def event_check(index: int, item: Envelope | msgspec.Raw, *, now: datetime, max_age: timedelta | None, max_depth: int):
    """Checks one event (decoding it first when it comes raw); returns an ``Envelope`` or an ``EventError``."""
    raw = None
    if isinstance(item, msgspec.Raw):
        raw = item
        try:
            item = _envelope_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            return _decode_failure(index, raw, exc)
        except RecursionError:
            return EventError(index, None, "nesting_too_deep", "The event nests arrays and objects too deep")
    envelope = item

    event_id = envelope.event_id or envelope.id
    if event_id is None:
        return EventError(index, None, "invalid_event_id", "event_id (or id) is required and must be a UUID")
    if envelope.schema_version != SCHEMA_VERSION:
        return EventError(
            index,
            str(event_id),
            "unsupported_schema_version",
            f"Unsupported schema version: {envelope.schema_version[:20]}",
        )
    if not in_calendar(envelope.timestamp):
        return EventError(index, str(event_id), "invalid_timestamp", "timestamp is out of range once converted to UTC")
    if max_age is not None and abs(now - envelope.timestamp) > max_age:
        return EventError(
            index,
            str(event_id),
            "timestamp_out_of_range",
            f"timestamp must be within {max_age.days} days of the server's time",
        )
    # JSON can carry NUL (which PostgreSQL's text and jsonb refuse) only as the escape \u0000, and
    # batches with one come raw: an event without one needs no closer look.
    if raw is not None and NUL_ESCAPE in bytes(raw):
        service, body = envelope.service, envelope.event
        if has_nul(envelope.session_id, service.name, service.version, service.language, body.type, body.category):
            return EventError(index, str(event_id), "invalid_text", "text fields must not contain NUL characters")
        if _JSON_NUL.search(body.data):
            return EventError(index, str(event_id), "invalid_data", "event.data must not contain \\u0000")
    if refused := raw_value_error(envelope.event.data, max_depth=max_depth):
        return EventError(index, str(event_id), refused[0], f"event.data: {refused[1]}")
    envelope.event_id = event_id
    return envelope


@dataclass
class CheckedBatch:
    valid: list[Envelope]
    indexes: list[int]  # the place in the batch of each valid envelope
    errors: list[EventError]
    duplicates: int


def batch_check(
    events: list[Envelope] | list[msgspec.Raw], *, now: datetime, max_age: timedelta | None, max_depth: int
) -> CheckedBatch:
    """Splits a batch into valid envelopes (first occurrence of each event id) and errors."""
    valid: list[Envelope] = []
    indexes: list[int] = []
    errors: list[EventError] = []
    seen: set[int] = set()  # event ids as integers: hashing a UUID object runs Python code
    duplicates = 0
    previous = None
    for index, item in enumerate(events):
        result = event_check(index, item, now=now, max_age=max_age, max_depth=max_depth)
        if isinstance(result, EventError):
            errors.append(result)
        elif (key := result.event_id.int) in seen:
            duplicates += 1
        else:
            seen.add(key)
            if previous is not None:
                # An SDK's events come in runs of one user, session and service: a value equal to
                # the one before is held once. That halves a large batch's memory while it is
                # stored, for 0.16 ms of CPU a thousand events (benchmarks/README.md).
                if result.user_id == previous.user_id:
                    result.user_id = previous.user_id
                if result.session_id == previous.session_id:
                    result.session_id = previous.session_id
                if result.service == previous.service:
                    result.service = previous.service
            previous = result
            valid.append(result)
            indexes.append(index)
    return CheckedBatch(valid, indexes, errors, duplicates)


def _text(value: str | None, limit: int = 255) -> str | None:
    return None if value is None else value.replace("\x00", "")[:limit]


def envelope_make(
    *,
    source: str,
    event_type: str,
    data: bytes,
    timestamp: datetime,
    service_name: str = "",
    category: str | None = None,
    service_version: str | None = None,
    session_id: str | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    """An event of a client family other than the SDK (streams, Lambda, OTLP, Malti), shaped for
    ``events_accept``: texts cut to their columns and freed of NUL, a new event id unless one is
    given, no user id. ``source`` ("stream/1", "lambda/1", ...) is stored as the schema version, so
    each family's events can be told apart. ``data`` is JSON text, stored as it is."""
    return Envelope(
        schema_version=source,
        timestamp=timestamp,
        user_id="",
        session_id=_text(session_id),
        service=Service(name=_text(service_name), version=_text(service_version)),
        event=EventBody(type=_text(event_type) or "unknown", category=_text(category), data=msgspec.Raw(data)),
        event_id=event_id or uuid.uuid4(),
    )


def batch_of(
    envelopes: list[Envelope], *, indexes: list[int] | None = None, errors: list[EventError] | None = None
) -> CheckedBatch:
    """Envelopes made by ``envelope_make`` as a checked batch, with their places in the request
    (default: in order from 0) and the errors found while making them."""
    return CheckedBatch(
        valid=envelopes,
        indexes=list(range(len(envelopes))) if indexes is None else indexes,
        errors=errors or [],
        duplicates=0,
    )

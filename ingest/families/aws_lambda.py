"""The AWS Lambda Telemetry API's JSON arrays (docs/protocols.md#aws-lambda), as events.

Each element ``{"type", "time", "record"}`` becomes one event of that type, its data the element as
sent. Unknown types are kept: AWS adds types. ``platform.report`` records feed the Lambda rollups,
so their metrics are checked here, once, into numbers the rollups can trust.
"""

import hashlib
import uuid
from dataclasses import dataclass
from typing import Annotated

import msgspec
from django.conf import settings

from ingest.access import verification
from ingest.access.tokens import body_encoding_check
from ingest.access.verification import Caller
from ingest.errors import BadRequest, PayloadTooLarge
from ingest.pipeline import Decoded, Intake, TokenFamily
from ingest.storage.schema import (
    NUL_ESCAPE,
    AwareDatetime,
    CheckedBatch,
    EventError,
    batch_of,
    envelope_make,
    in_calendar,
    raw_value_error,
    too_deep,
)

SOURCE = "lambda/1"
# Event ids derive from the function and the element's bytes, so a forwarder's retry of the same
# array stores nothing twice.
_ID_NAMESPACE = uuid.UUID("0f3c5d0e-8a4b-4f57-9a43-2f4c6b1d7e21")

Millis = Annotated[float, msgspec.Meta(ge=0, le=1e9)]
Megabytes = Annotated[int, msgspec.Meta(ge=0, le=10**7)]


class _Element(msgspec.Struct):
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    time: AwareDatetime


class _ReportMetrics(msgspec.Struct, rename="camel"):
    duration_ms: Millis
    billed_duration_ms: Millis
    memory_size_mb: Megabytes = msgspec.field(name="memorySizeMB")
    max_memory_used_mb: Megabytes = msgspec.field(name="maxMemoryUsedMB")
    init_duration_ms: Millis | None = None
    restore_duration_ms: Millis | None = None


class _ReportRecord(msgspec.Struct, rename="camel"):
    request_id: Annotated[str, msgspec.Meta(max_length=255)]
    status: Annotated[str, msgspec.Meta(max_length=64)]
    metrics: _ReportMetrics


class _Report(msgspec.Struct):
    record: _ReportRecord


class _StartRecord(msgspec.Struct):
    version: Annotated[str, msgspec.Meta(max_length=255)] | None = None


class _Start(msgspec.Struct):
    record: _StartRecord


class _InitStartRecord(msgspec.Struct, rename="camel"):
    function_name: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    function_version: Annotated[str, msgspec.Meta(max_length=255)] | None = None


class _InitStart(msgspec.Struct):
    record: _InitStartRecord


_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_element_decoder = msgspec.json.Decoder(_Element)
_report_decoder = msgspec.json.Decoder(_Report)
_start_decoder = msgspec.json.Decoder(_Start)
_init_start_decoder = msgspec.json.Decoder(_InitStart)


class ArrayFormatError(ValueError):
    """The body is not a JSON array."""


def array_decode(body: bytes) -> list[msgspec.Raw]:
    """The array's elements as raw JSON, each checked on its own by ``lambda_batch``; raises
    ``ArrayFormatError``, or ``NestingTooDeep`` for a body too deep for the decoder."""
    try:
        body.decode("utf-8")  # raw elements go to storage as text
        return _array_decoder.decode(body)
    except msgspec.ValidationError:
        raise ArrayFormatError("Body must be a JSON array of Telemetry API events") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ArrayFormatError(f"Body is not valid JSON: {exc}") from None
    except RecursionError:
        raise too_deep() from None


@dataclass(frozen=True)
class Function:
    name: str | None
    version: str | None


def function_from_init(elements: list[msgspec.Raw]) -> Function:
    """The function named by the array's ``platform.initStart``, when it has one (AWS sends
    ``functionName`` and ``functionVersion`` there)."""
    for raw in elements:
        if b"platform.initStart" not in bytes(raw):
            continue
        try:
            record = _init_start_decoder.decode(raw).record
        except (msgspec.ValidationError, msgspec.DecodeError):
            continue
        if record.function_name:
            return Function(record.function_name, record.function_version)
    return Function(None, None)


def _category(event_type: str) -> str:
    return event_type.partition(".")[0]


def _element_check(index: int, raw: msgspec.Raw, function: Function, seen: dict[bytes, int], max_depth: int):
    """An envelope for one element, or an ``EventError``."""
    data = bytes(raw)
    try:
        element = _element_decoder.decode(data)
    except msgspec.ValidationError as exc:
        return EventError(index, None, "invalid_event", f"Each element needs a type and an RFC 3339 time: {exc}")
    if NUL_ESCAPE in data:
        return EventError(index, None, "invalid_data", "Elements must not contain \\u0000")
    if not in_calendar(element.time):
        return EventError(index, None, "invalid_timestamp", "time is out of range once converted to UTC")
    if refused := raw_value_error(data, max_depth=max_depth):
        return EventError(index, None, *refused)
    version = function.version
    if element.type == "platform.report":
        try:
            _report_decoder.decode(data)
        except msgspec.ValidationError as exc:
            return EventError(index, None, "invalid_record", f"platform.report record: {exc}")
    elif element.type == "platform.start":
        try:
            version = _start_decoder.decode(data).record.version or version
        except msgspec.ValidationError:
            pass
    digest = hashlib.sha256(data).digest()
    occurrence = seen[digest] = seen.get(digest, -1) + 1  # the same bytes twice in one array are two events
    event_id = uuid.uuid5(_ID_NAMESPACE, f"{function.name}\x00{digest.hex()}\x00{occurrence}")
    return envelope_make(
        source=SOURCE,
        event_type=element.type,
        data=data,
        timestamp=element.time,
        service_name=function.name or "",
        service_version=version,
        category=_category(element.type),
        event_id=event_id,
    )


def lambda_batch(elements: list[msgspec.Raw], *, function: Function, max_depth: int) -> CheckedBatch:
    """The array as a checked batch: an envelope per valid element, an error per invalid one."""
    envelopes, indexes, errors = [], [], []
    seen: dict[bytes, int] = {}
    for index, raw in enumerate(elements):
        result = _element_check(index, raw, function, seen, max_depth)
        if isinstance(result, EventError):
            errors.append(result)
        else:
            envelopes.append(result)
            indexes.append(index)
    return batch_of(envelopes, indexes=indexes, errors=errors)


class LambdaFamily(TokenFamily):
    """``POST /v1/lambda/{org_id}/{app_id}``: an array the Lambda Telemetry API pushed, forwarded by
    an extension with the application's API token."""

    def decode(self, intake: Intake, caller: Caller) -> Decoded:
        verification.content_type_check(intake.meta)
        body_encoding_check(intake.meta)
        try:
            elements = array_decode(intake.body)
        except ArrayFormatError as error:
            raise BadRequest(str(error)) from None
        if len(elements) > settings.INGEST_MAX_BATCH_SIZE:
            raise PayloadTooLarge(
                f"The array has {len(elements)} events; the limit is {settings.INGEST_MAX_BATCH_SIZE}"
            )
        function = _function(intake, elements)
        if not function.name:
            raise BadRequest("Name the function: X-Lambda-Function-Name header or ?function= (see the README)")
        checked = lambda_batch(elements, function=function, max_depth=settings.INGEST_MAX_JSON_DEPTH)
        return Decoded(checked=checked, total=len(elements))


def _function(intake: Intake, elements: list[msgspec.Raw]) -> Function:
    """The function the events come from: the X-Lambda-Function-Name and -Version headers, else the
    ``function`` and ``version`` query parameters, else the array's own ``platform.initStart``."""
    meta, query = intake.meta, intake.request.GET
    name = meta.get("HTTP_X_LAMBDA_FUNCTION_NAME", "").strip() or query.get("function", "").strip()
    version = meta.get("HTTP_X_LAMBDA_FUNCTION_VERSION", "").strip() or query.get("version", "").strip()
    if name:
        return Function(name[:255], version[:255] or None)
    found = function_from_init(elements)
    return Function(found.name, version[:255] or found.version)

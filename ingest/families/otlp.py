"""OTLP/HTTP export requests (traces, metrics, logs) as events, and the answers OTLP expects.

Requests are decoded with the official protobuf definitions (``opentelemetry-proto``), from binary
protobuf or from OTLP's JSON mapping. Each span, log record and metric data point becomes one event
(``otel.span``, ``otel.log``, ``otel.metric``) whose data keeps its fields, attributes, resource
attributes and scope as plain JSON; service name and version come from the resource. Event ids
derive from the item's bytes, so an exporter's retry stores nothing twice.
"""

import base64
import binascii
import hashlib
import json
import math
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from django.conf import settings
from django.http import HttpResponse
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from ingest.access.tokens import body_encoding_check
from ingest.access.verification import Caller
from ingest.errors import ApiError, BadRequest, NestingTooDeep, PayloadTooLarge
from ingest.pipeline import Decoded, Intake, TokenFamily
from ingest.storage.schema import DEPTH_MESSAGE, CheckedBatch, Envelope, EventError, batch_of, envelope_make, too_deep

SOURCE = "otlp/1"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_NAMESPACE = uuid.UUID("5b0d2c61-3f7e-4e0a-9d8c-6a1e2b3c4d5f")
_encode = msgspec.json.Encoder().encode
# Timestamps a database column holds: year 1 to 9999 (nanoseconds since the epoch).
_MAX_NANOS = 253402300799 * 10**9


class OtlpFormatError(ValueError):
    """The body cannot be decoded as the signal's export request."""


class TooManyItems(ValueError):
    """The request holds more spans, log records or data points than one request may, or would
    store too many times its own size."""


# What a request may store: this many times its (decompressed) body, plus a little for the
# smallest requests. The texts a request shares among its items (resource, scope, metric) are
# stored whole once; what each item keeps of them is short, so only a hostile request reaches this.
MAX_AMPLIFICATION = 16
AMPLIFICATION_ALLOWANCE = 64 * 1024


@dataclass(frozen=True)
class Signal:
    name: str  # traces, metrics, logs
    request: type[Message]
    response: type[Message]
    partial: type[Message]
    rejected_field: str  # partial_success's count: rejected_spans, ...


SIGNALS = {
    "traces": Signal(
        "traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        trace_service_pb2.ExportTracePartialSuccess,
        "rejected_spans",
    ),
    "metrics": Signal(
        "metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        metrics_service_pb2.ExportMetricsPartialSuccess,
        "rejected_data_points",
    ),
    "logs": Signal(
        "logs",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        logs_service_pb2.ExportLogsPartialSuccess,
        "rejected_log_records",
    ),
}


def media_type(content_type: str) -> str | None:
    """PROTOBUF or JSON, from a Content-Type header; None for anything else."""
    value = content_type.split(";", 1)[0].strip().lower()
    return value if value in (PROTOBUF, JSON) else None


def gunzip(body: bytes, *, limit: int) -> bytes:
    """A gzip body inflated, refusing (``OverflowError``) more than ``limit`` bytes: a small body
    must not become a large one in memory."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OtlpFormatError(f"Body is not valid gzip: {exc}") from None
    if len(inflated) > limit or inflater.unconsumed_tail:
        raise OverflowError(f"Inflated body exceeds the limit of {limit} bytes")
    if not inflater.eof:
        raise OtlpFormatError("Body is not valid gzip: truncated")
    return inflated


# OTLP's JSON mapping writes these bytes fields as hex, where protobuf's own JSON expects base64.
_HEX_FIELDS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def _hex_ids_as_base64(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _HEX_FIELDS and isinstance(item, str):
                try:
                    value[key] = base64.b64encode(bytes.fromhex(item)).decode()
                except ValueError:
                    raise OtlpFormatError(f"{key} must be hexadecimal") from None
            else:
                _hex_ids_as_base64(item)
    elif isinstance(value, list):
        for item in value:
            _hex_ids_as_base64(item)
    return value


def request_decode(signal: Signal, body: bytes, media: str) -> Message:
    """The export request; raises ``OtlpFormatError``, or ``NestingTooDeep`` for a JSON body too
    deep for the decoder (protobuf's own parser stops at 100 levels, a DecodeError)."""
    request = signal.request()
    try:
        if media == PROTOBUF:
            request.ParseFromString(body)
        else:
            json_format.ParseDict(_hex_ids_as_base64(json.loads(body)), request, ignore_unknown_fields=True)
    except RecursionError:
        raise too_deep() from None
    except (DecodeError, json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        if isinstance(exc, OtlpFormatError):
            raise
        raise OtlpFormatError(
            f"Body is not a valid {signal.request.DESCRIPTOR.name}: "
            f"{str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}"
        ) from None
    return request


def _text(value: str) -> str:
    return value.replace("\x00", "")


def any_value(value, depth: int = 1) -> object:
    """An OTLP AnyValue as plain JSON; ``depth``: how deep it lies in arrays and lists of pairs."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _text(value.string_value)
    if kind in ("bool_value", "int_value"):
        return getattr(value, kind)
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else None
    if kind in ("array_value", "kvlist_value") and depth >= settings.INGEST_MAX_JSON_DEPTH:
        raise NestingTooDeep(DEPTH_MESSAGE.format(settings.INGEST_MAX_JSON_DEPTH))
    if kind == "array_value":
        return [any_value(item, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values, depth + 1)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None


def attributes(pairs, depth: int = 1) -> dict:
    return {_text(pair.key): any_value(pair.value, depth) for pair in pairs}


def _hex(data: bytes) -> str | None:
    return binascii.hexlify(data).decode() if data else None


def _time(nanos: int) -> datetime | None:
    if not 0 < nanos <= _MAX_NANOS:
        return None
    return datetime.fromtimestamp(nanos // 10**9, UTC).replace(microsecond=nanos % 10**9 // 1000)


# The resource attributes kept on every item, as the Lambda rollups read them there (service.name
# and service.version are the event's own columns). The rest of a resource, and the scope, are
# stored once per request (see _Items.add). Texts kept on every item are cut to _SHORT characters:
# a function's name has at most 64 on AWS Lambda, Cloud Functions and Azure Functions.
_IDENTIFYING = ("faas.name", "faas.version", "faas.max_memory")
_SHORT = 64


def _short(value):
    return value[:_SHORT] if isinstance(value, str) else value if isinstance(value, (int, float, bool)) else None


@dataclass
class _Context:
    """A resource and scope as one request sends them for many items."""

    resource: dict
    scope: dict
    summary: dict  # what every item keeps of the resource and scope
    partial: bool  # whether the summary leaves something out
    service_name: str
    service_version: str | None
    digest: bytes  # of the whole resource, for the items' event ids
    holder: uuid.UUID | None = None  # the event that keeps the whole resource and scope, once stored


def _context(resource, scope) -> _Context:
    resource_attributes = attributes(resource.attributes)
    name, version = resource_attributes.get("service.name"), resource_attributes.get("service.version")
    scope_fields = {"name": _text(scope.name), "version": _text(scope.version)} if scope.name else {}
    summary = {
        "resource": {
            key: _short(resource_attributes[key])
            for key in _IDENTIFYING
            if key in resource_attributes and _short(resource_attributes[key]) is not None
        }
    }
    partial = summary["resource"] != resource_attributes or bool(scope_fields)
    return _Context(
        resource=resource_attributes,
        scope=scope_fields,
        summary=summary,
        partial=partial,
        service_name=str(name) if name is not None else "",
        service_version=str(version) if version is not None else None,
        digest=hashlib.sha256(_encode(resource_attributes)).digest(),
    )


class _Items:
    """Collects envelopes and errors with each item's place in the request.

    Stored bytes stay a small multiple of the request's: the first valid item of each resource and
    scope keeps them whole, the others keep their summary (and, when it leaves something out, the
    event id of that first item as ``resource_event_id``), so a large resource sent once with many
    items is stored once. Past ``budget`` bytes to store, ``add`` raises ``TooManyItems``."""

    def __init__(self, budget: int):
        self.envelopes: list[Envelope] = []
        self.indexes: list[int] = []
        self.errors: list[EventError] = []
        self.count = 0
        self.budget = budget

    def add(
        self, *, context: _Context, event_type: str, category: str, nanos: int, fields: dict, identity: bytes
    ) -> None:
        index, self.count = self.count, self.count + 1
        timestamp = _time(nanos)
        if timestamp is None:
            self.errors.append(
                EventError(
                    index, None, "invalid_timestamp", f"{event_type} #{index} has no valid time (unix nanoseconds)"
                )
            )
            return
        digest = hashlib.sha256(identity + context.digest).hexdigest()
        event_id = uuid.uuid5(_ID_NAMESPACE, f"{event_type}\x00{digest}")
        if context.holder is None:
            context.holder = event_id
            fields["resource"] = context.resource
            if context.scope:
                fields["scope"] = context.scope
        else:
            fields.update(context.summary)
            if context.partial:
                fields["resource_event_id"] = str(context.holder)
        data = _encode(fields)
        self.budget -= len(data) + len(context.service_name) + len(context.service_version or "") + len(category or "")
        if self.budget < 0:
            raise TooManyItems(
                f"The request's items would store over {MAX_AMPLIFICATION} times its size: "
                "texts it shares among them (resource, scope, metric) are too long for so many"
            )
        self.envelopes.append(
            envelope_make(
                source=SOURCE,
                event_type=event_type,
                data=data,
                timestamp=timestamp,
                service_name=context.service_name,
                service_version=context.service_version,
                category=category,
                event_id=event_id,
            )
        )
        self.indexes.append(index)

    def batch(self) -> CheckedBatch:
        return batch_of(self.envelopes, indexes=self.indexes, errors=self.errors)


def _span_fields(span) -> dict:
    duration = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6 if span.end_time_unix_nano else None
    return {
        "name": _text(span.name),
        "trace_id": _hex(span.trace_id),
        "span_id": _hex(span.span_id),
        "parent_span_id": _hex(span.parent_span_id),
        "kind": trace_pb2.Span.SpanKind.Name(span.kind) if span.kind in trace_pb2.Span.SpanKind.values() else span.kind,
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "duration_ms": duration,
        "status": {
            "code": trace_pb2.Status.StatusCode.Name(span.status.code)
            if span.status.code in trace_pb2.Status.StatusCode.values()
            else span.status.code,
            "message": _text(span.status.message),
        },
        "attributes": attributes(span.attributes),
        "events": [
            {
                "name": _text(event.name),
                "time_unix_nano": event.time_unix_nano,
                "attributes": attributes(event.attributes),
            }
            for event in span.events
        ],
        "links": [{"trace_id": _hex(link.trace_id), "span_id": _hex(link.span_id)} for link in span.links],
    }


def _spans(request, items: _Items) -> None:
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            context = _context(resource_spans.resource, scope_spans.scope)
            for span in scope_spans.spans:
                items.add(
                    context=context,
                    event_type="otel.span",
                    category=_text(span.name)[:255],
                    nanos=span.start_time_unix_nano,
                    fields=_span_fields(span),
                    identity=span.SerializeToString(deterministic=True),
                )


def _log_fields(record) -> dict:
    return {
        "severity_text": _text(record.severity_text),
        "severity_number": record.severity_number,
        "body": any_value(record.body) if record.HasField("body") else None,
        "attributes": attributes(record.attributes),
        "trace_id": _hex(record.trace_id),
        "span_id": _hex(record.span_id),
        "time_unix_nano": record.time_unix_nano,
        "observed_time_unix_nano": record.observed_time_unix_nano,
        "event_name": _text(record.event_name),
    }


def _logs(request, items: _Items) -> None:
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            context = _context(resource_logs.resource, scope_logs.scope)
            for record in scope_logs.log_records:
                items.add(
                    context=context,
                    event_type="otel.log",
                    category=_text(record.severity_text)[:255] or None,
                    nanos=record.time_unix_nano or record.observed_time_unix_nano,
                    fields=_log_fields(record),
                    identity=record.SerializeToString(deterministic=True),
                )


def _number(point) -> float | int | None:
    kind = point.WhichOneof("value")
    if kind == "as_int":
        return point.as_int
    if kind == "as_double":
        return point.as_double if math.isfinite(point.as_double) else None
    return None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _point_fields(kind: str, point) -> dict:
    fields = {
        "attributes": attributes(point.attributes),
        "start_time_unix_nano": point.start_time_unix_nano,
        "time_unix_nano": point.time_unix_nano,
    }
    if kind in ("gauge", "sum"):
        fields["value"] = _number(point)
    elif kind == "histogram":
        fields.update(
            count=point.count,
            sum=_finite(point.sum) if point.HasField("sum") else None,
            bucket_counts=list(point.bucket_counts),
            explicit_bounds=[_finite(bound) for bound in point.explicit_bounds],
            min=_finite(point.min) if point.HasField("min") else None,
            max=_finite(point.max) if point.HasField("max") else None,
        )
    elif kind == "exponential_histogram":
        fields.update(
            count=point.count,
            sum=_finite(point.sum) if point.HasField("sum") else None,
            scale=point.scale,
            zero_count=point.zero_count,
            positive={"offset": point.positive.offset, "bucket_counts": list(point.positive.bucket_counts)},
            negative={"offset": point.negative.offset, "bucket_counts": list(point.negative.bucket_counts)},
            min=_finite(point.min) if point.HasField("min") else None,
            max=_finite(point.max) if point.HasField("max") else None,
        )
    elif kind == "summary":
        fields.update(
            count=point.count,
            sum=_finite(point.sum),
            quantiles=[{"quantile": q.quantile, "value": _finite(q.value)} for q in point.quantile_values],
        )
    return fields


def _metrics(request, items: _Items) -> None:
    temporality = metrics_pb2.AggregationTemporality
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            context = _context(resource_metrics.resource, scope_metrics.scope)
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue  # a metric with no data has no points to store
                data = getattr(metric, kind)
                common = {
                    "name": _text(metric.name),
                    "description": _text(metric.description),
                    "unit": _text(metric.unit),
                    "type": kind,
                }
                if hasattr(data, "aggregation_temporality"):
                    common["temporality"] = (
                        temporality.Name(data.aggregation_temporality)
                        if data.aggregation_temporality in temporality.values()
                        else data.aggregation_temporality
                    )
                if kind == "sum":
                    common["is_monotonic"] = data.is_monotonic
                # Its texts whole on the metric's first point only: they are the same for every point.
                described, common = common, {**common, "name": common["name"][:_SHORT], "unit": common["unit"][:_SHORT]}
                del common["description"]
                name = hashlib.sha256(metric.name.encode()).digest()
                for number, point in enumerate(data.data_points):
                    items.add(
                        context=context,
                        event_type="otel.metric",
                        category=_text(metric.name)[:_SHORT],
                        nanos=point.time_unix_nano,
                        fields={**(common if number else described), **_point_fields(kind, point)},
                        identity=name + b"\x00" + point.SerializeToString(deterministic=True),
                    )


_COLLECT = {"traces": _spans, "metrics": _metrics, "logs": _logs}


def item_count(signal: Signal, request: Message) -> int:
    """How many spans, log records or data points the request holds, counted without reading them."""
    if signal.name == "traces":
        return sum(len(scope.spans) for group in request.resource_spans for scope in group.scope_spans)
    if signal.name == "logs":
        return sum(len(scope.log_records) for group in request.resource_logs for scope in group.scope_logs)
    return sum(
        len(getattr(metric, kind).data_points)
        for group in request.resource_metrics
        for scope in group.scope_metrics
        for metric in scope.metrics
        if (kind := metric.WhichOneof("data")) is not None
    )


def otlp_batch(signal: Signal, request: Message, *, max_items: int, body_size: int) -> CheckedBatch:
    """The request's spans, log records or metric data points as a checked batch, in request order;
    raises ``TooManyItems`` over ``max_items``, before any item is read, or as soon as its items
    would store more than MAX_AMPLIFICATION times ``body_size`` (the decompressed body's)."""
    if (total := item_count(signal, request)) > max_items:
        raise TooManyItems(f"The request has {total} {signal.name} items; the limit is {max_items}")
    items = _Items(MAX_AMPLIFICATION * body_size + AMPLIFICATION_ALLOWANCE)
    _COLLECT[signal.name](request, items)
    return items.batch()


def batch_size(batch: CheckedBatch) -> int:
    return len(batch.valid) + len(batch.errors)


def response_body(signal: Signal, media: str, *, rejected: int = 0, message: str = "") -> bytes:
    """An Export*ServiceResponse; ``partial_success`` only when something was rejected."""
    response = signal.response()
    if rejected or message:
        partial = signal.partial(error_message=message)
        setattr(partial, signal.rejected_field, rejected)
        response.partial_success.CopyFrom(partial)
    return _serialize(response, media)


# google.rpc.Code for each HTTP status the OTLP endpoints answer with.
_RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 413: 8, 415: 3, 429: 8, 503: 14}


def status_body(status: int, message: str, media: str) -> bytes:
    """A google.rpc.Status, as OTLP answers errors."""
    return _serialize(status_pb2.Status(code=_RPC_CODES.get(status, 2), message=message), media)


def _serialize(message: Message, media: str) -> bytes:
    if media == PROTOBUF:
        return message.SerializeToString()
    return json.dumps(json_format.MessageToDict(message)).encode()


# Spans, log records or data points in one export: an SDK's batch span processor sends 512 at most.
MAX_ITEMS = 10_000


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


class OtlpFamily(TokenFamily):
    """``POST /v1/otlp/{org_id}/{app_id}/v1/{traces,metrics,logs}``: OTLP/HTTP, answered as the
    OTLP specification says: Export*ServiceResponse (with ``partial_success``) or google.rpc.Status,
    in the request's encoding, outages included."""

    answers_outages = True

    def __init__(self, signal: str):
        self.signal = SIGNALS[signal]

    def decode(self, intake: Intake, caller: Caller) -> Decoded:
        meta, body = intake.meta, intake.body
        media = media_type(meta.get("CONTENT_TYPE", ""))
        if media is None:
            raise UnsupportedMediaType(f"Content-Type must be {PROTOBUF} or {JSON}")
        if media == JSON:
            body_encoding_check(meta, content_encoding=False)  # gzip is OTLP's own, handled below
        encoding = meta.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding not in ("", "identity", "gzip"):
            raise UnsupportedMediaType("Content-Encoding must be gzip or none")
        try:
            if encoding == "gzip":
                body = gunzip(body, limit=settings.INGEST_MAX_PAYLOAD_SIZE)
            checked = otlp_batch(
                self.signal, request_decode(self.signal, body, media), max_items=MAX_ITEMS, body_size=len(body)
            )
        except OtlpFormatError as exc:
            raise BadRequest(str(exc)) from None
        except (OverflowError, TooManyItems) as exc:
            raise PayloadTooLarge(str(exc)) from None
        return Decoded(checked=checked, total=batch_size(checked))

    def answer(self, intake: Intake, decoded: Decoded, accepted) -> HttpResponse:
        rejected, message = len(accepted.errors), ""
        if accepted.errors:
            reasons = Counter(error.error for error in accepted.errors)
            message = (
                f"{rejected} of {decoded.total} rejected ("
                + ", ".join(f"{code}: {count}" for code, count in sorted(reasons.items()))
                + f"); {accepted.errors[0].message}"
            )
        media = _media(intake)
        return HttpResponse(response_body(self.signal, media, rejected=rejected, message=message), content_type=media)

    def refuse(self, intake: Intake, error: ApiError) -> HttpResponse:
        media = _media(intake)
        return HttpResponse(
            status_body(error.status, error.message, media),
            status=error.status,
            content_type=media,
            headers=error.headers,
        )


def _media(intake: Intake) -> str:
    """The encoding to answer in: the request's, or JSON when it named neither of OTLP's."""
    return media_type(intake.meta.get("CONTENT_TYPE", "")) or JSON

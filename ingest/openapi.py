"""The OpenAPI description of the machine routes (drf-spectacular): documentation only.

The ingest view reads and answers its JSON itself, for speed (ingest/apis.py); the serializers here
describe that wire format for /api/schema/ and are never run on a request. Examples are real
answers, checked against the server by tests/test_api_docs.py.

The annotations are put on the views by ``views_annotate``, a preprocessing hook, when a schema is
generated (the /api/schema/ view, ``manage.py spectacular``), not where the views are defined: this
module and drf-spectacular's generator, which its annotations load, are ~20 MB that web workers
would otherwise carry without ever serving a schema.
"""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from ingest.storage.schema import FIELD_ERROR_CODES, SCHEMA_VERSION

EVENT_ERROR_CODES = sorted(
    {
        *FIELD_ERROR_CODES.values(),
        "timestamp_out_of_range",
        "missing_field",
        "invalid_text",
        "invalid_data",
        "over_quota",
    }
)
BATCH_STATUSES = ["success", "partial", "rejected"]
USER_ID_PATTERN = r"^(anon_[0-9a-fA-F]{64}|client_[0-9a-fA-F]{64})$"
INGEST_PATH = "/v1/ingest/{org_id}/{app_id}"
STREAM_PATH = "/v1/streams/{org_id}/{app_id}"


class ServiceSerializer(serializers.Serializer):
    name = serializers.CharField(min_length=1, max_length=255)
    version = serializers.CharField(max_length=255, required=False)
    language = serializers.CharField(max_length=64, required=False)
    language_version = serializers.CharField(required=False, help_text="Accepted, not stored.")


class EventBodySerializer(serializers.Serializer):
    type = serializers.CharField(min_length=1, max_length=255)
    category = serializers.CharField(max_length=255, required=False)
    data = serializers.JSONField(required=False, help_text="Any JSON; stored as sent. Default `{}`.")


class EventMetadataSerializer(serializers.Serializer):
    transmission_timestamp = serializers.DateTimeField(required=False)
    batch_size = serializers.IntegerField(min_value=0, required=False)
    retry_count = serializers.IntegerField(min_value=0, required=False)


class EventSerializer(serializers.Serializer):
    event_id = serializers.UUIDField(
        required=False,
        help_text="The event's key in its application (or `id`); a re-sent event is counted as accepted, stored once.",
    )
    id = serializers.UUIDField(required=False, help_text="The telemetry-kit server docs' name for `event_id`.")
    schema_version = serializers.ChoiceField(choices=[SCHEMA_VERSION])
    timestamp = serializers.DateTimeField(help_text="RFC 3339 with a time zone.")
    user_id = serializers.RegexField(USER_ID_PATTERN, help_text="`client_` or `anon_` and 64 hex digits.")
    session_id = serializers.CharField(min_length=1, max_length=255, required=False, help_text="`sess_` + 32 hex.")
    service = ServiceSerializer()
    event = EventBodySerializer()
    metadata = EventMetadataSerializer(required=False, help_text="Accepted, not stored.")


class BatchSerializer(serializers.Serializer):
    events = serializers.ListField(child=EventSerializer(), max_length=settings.INGEST_MAX_BATCH_SIZE)


class EventErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(min_value=0, help_text="The event's position in the batch.")
    event_id = serializers.CharField(allow_null=True)
    error = serializers.ChoiceField(choices=EVENT_ERROR_CODES)
    message = serializers.CharField()


class BatchResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=BATCH_STATUSES)
    accepted = serializers.IntegerField(min_value=0)
    rejected = serializers.IntegerField(min_value=0)
    message = serializers.CharField()
    errors = EventErrorSerializer(many=True)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Stable, for programs: bad_request, unauthorized, payload_too_large, "
        "rate_limit_exceeded, quota_exceeded, validation_error, "
        "service_unavailable, not_found, forbidden."
    )
    message = serializers.CharField(help_text="For people; may change.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class BatchRejectedSerializer(BatchResultSerializer):
    error = ErrorDetailSerializer()


def _header(
    name: str, description: str, *, required: bool = False, pattern: str | None = None, response=False, type=str
) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        type,
        OpenApiParameter.HEADER,
        required=required,
        description=description,
        pattern=pattern,
        response=response,
    )


_LIMITED = [200, 207, 422, 429]
_RATE_REMAINING = (
    "Requests that may be sent now. A minute's allowance may be spent at once; it comes back "
    "one request every 60/limit seconds."
)
_RATE_RESET = (
    "Seconds until the whole allowance is back; on a 429, until one more request is admitted (as Retry-After)."
)


def _rate_limit_headers(limited: list[int]) -> list[OpenApiParameter]:
    """The rate limit's answer headers, on the statuses ``limited`` of an endpoint, and Retry-After."""
    return [
        _header(
            "RateLimit-Limit",
            "Requests a minute allowed to the application (absent when unlimited).",
            response=limited,
            type=int,
        ),
        _header("RateLimit-Remaining", _RATE_REMAINING, response=limited, type=int),
        _header("RateLimit-Reset", _RATE_RESET, response=limited, type=int),
        _header("Retry-After", "Seconds to wait before sending again.", response=[429, 503], type=int),
    ]


_RATE_LIMIT_HEADERS = _rate_limit_headers(_LIMITED)
HEADERS = [
    _header(
        "X-Signature",
        "Lowercase hex HMAC-SHA256 of `{X-Timestamp}:{X-Nonce}:{raw body}`, keyed with the "
        "HMAC secret's UTF-8 bytes (not base64-decoded).",
        required=True,
        pattern=r"^[0-9a-fA-F]{64}$",
    ),
    _header(
        "X-Timestamp",
        "Unix time in seconds, within APP_SECURITY__TIMESTAMP_TOLERANCE of the server's.",
        required=True,
        pattern=r"^[0-9]{1,12}$",
    ),
    _header("X-Nonce", "A UUID v4, never reused for the application within APP_SECURITY__NONCE_TTL.", required=True),
    _header("X-Batch-Size", "Optional; when sent, must equal the number of events.", type=int),
    _header("X-SDK-Version", "Optional; stored with each event, e.g. `telemetry-kit-rust/0.3.0`."),
    _header("X-Schema-Version", "Optional, e.g. `1.0.0`; each event carries its own `schema_version`."),
    _header("DNT", "`1`: after authentication nothing is stored and the answer is 204 with no body.", pattern="^[01]$"),
    *_RATE_LIMIT_HEADERS,
]

EVENT = {
    "event_id": "3f2b8c1e-4d5a-4e6f-9a7b-1c2d3e4f5a6b",
    "schema_version": "1.0.0",
    "timestamp": "2026-11-20T10:30:00Z",
    "user_id": "client_" + "ab" * 32,
    "session_id": "sess_" + "c" * 32,
    "service": {"name": "my-app", "version": "1.2.3", "language": "rust", "language_version": "1.95.0"},
    "event": {"type": "command", "category": "cli", "data": {"command": "build", "success": True}},
    "metadata": {"transmission_timestamp": "2026-11-20T10:31:00Z", "batch_size": 2, "retry_count": 0},
}
SECOND_EVENT = {
    **EVENT,
    "event_id": "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
    "event": {"type": "feature", "category": "ui", "data": {"name": "dark_mode"}},
}
BAD_USER_ID = {**EVENT, "event_id": "7c6d5e4f-3a2b-4c1d-8e9f-0a1b2c3d4e5f", "user_id": "user_123"}
BAD_SCHEMA = {**EVENT, "event_id": "9d8c7b6a-5f4e-4d3c-a2b1-0f9e8d7c6b5a", "schema_version": "2.0.0"}
USER_ID_ERROR = {
    "index": 1,
    "event_id": BAD_USER_ID["event_id"],
    "error": "invalid_user_id",
    "message": f"Expected `str` matching regex '{USER_ID_PATTERN}' - at `$.user_id`",
}

# Request examples, named like the answer each one gets.
REQUEST_EXAMPLES = [
    OpenApiExample("success", summary="Two events", value={"events": [EVENT, SECOND_EVENT]}, request_only=True),
    OpenApiExample(
        "partial",
        summary="One valid event, one with a bad user_id",
        value={"events": [EVENT, BAD_USER_ID]},
        request_only=True,
    ),
    OpenApiExample(
        "rejected", summary="No valid event", value={"events": [BAD_SCHEMA, BAD_USER_ID]}, request_only=True
    ),
]


def _error(name: str, code: str, message: str, status: int) -> OpenApiExample:
    return OpenApiExample(
        name, value={"error": {"code": code, "message": message}}, response_only=True, status_codes=[status]
    )


RESPONSES = {
    200: OpenApiResponse(
        BatchResultSerializer,
        "Every event accepted (stored, or already stored).",
        examples=[
            OpenApiExample(
                "success",
                value={
                    "status": "success",
                    "accepted": 2,
                    "rejected": 0,
                    "message": "2 of 2 events accepted",
                    "errors": [],
                },
                response_only=True,
                status_codes=[200],
            ),
        ],
    ),
    204: OpenApiResponse(description="`DNT: 1`: nothing stored, empty body."),
    207: OpenApiResponse(
        BatchResultSerializer,
        "Some events accepted; `errors` names each rejected one.",
        examples=[
            OpenApiExample(
                "partial",
                value={
                    "status": "partial",
                    "accepted": 1,
                    "rejected": 1,
                    "message": "1 of 2 events accepted, 1 rejected",
                    "errors": [USER_ID_ERROR],
                },
                response_only=True,
                status_codes=[207],
            )
        ],
    ),
    400: OpenApiResponse(
        ErrorSerializer,
        '`bad_request`: not JSON, not `{"events": [...]}`, wrong '
        "Content-Type, or X-Batch-Size disagrees with the body.",
        examples=[
            _error("batch size mismatch", "bad_request", "X-Batch-Size is 3 but the body has 2 events", 400),
            _error(
                "not JSON", "bad_request", "Body is not valid JSON: JSON is malformed: invalid character (byte 4)", 400
            ),
        ],
    ),
    401: OpenApiResponse(
        ErrorSerializer,
        "`unauthorized`: signing headers missing or malformed, timestamp "
        "out of tolerance, nonce reused, bad signature or token, or unknown application.",
        examples=[
            _error("replayed nonce", "unauthorized", "X-Nonce was already used", 401),
            _error("bad signature", "unauthorized", "Invalid credentials or signature", 401),
        ],
    ),
    413: OpenApiResponse(
        ErrorSerializer,
        "`payload_too_large`: the body (refused from Content-Length, unread) or the batch is over its limit.",
        examples=[
            _error(
                "too many events",
                "payload_too_large",
                f"Batch has {settings.INGEST_MAX_BATCH_SIZE + 1} events; the limit is {settings.INGEST_MAX_BATCH_SIZE}",
                413,
            ),
        ],
    ),
    422: OpenApiResponse(
        BatchRejectedSerializer,
        "`validation_error`: no event is valid; nothing stored.",
        examples=[
            OpenApiExample(
                "rejected",
                value={
                    "status": "rejected",
                    "accepted": 0,
                    "rejected": 2,
                    "message": "All 2 events were rejected",
                    "errors": [
                        {
                            "index": 0,
                            "event_id": BAD_SCHEMA["event_id"],
                            "error": "unsupported_schema_version",
                            "message": "Unsupported schema version: 2.0.0",
                        },
                        USER_ID_ERROR,
                    ],
                    "error": {"code": "validation_error", "message": "All 2 events were rejected"},
                },
                response_only=True,
                status_codes=[422],
            )
        ],
    ),
    429: OpenApiResponse(
        ErrorSerializer,
        "`rate_limit_exceeded` (requests a minute) or `quota_exceeded` "
        "(the organization's monthly events); retry after `Retry-After` seconds.",
        examples=[
            _error("rate limited", "rate_limit_exceeded", "More than 10 requests a minute for this application", 429),
            _error("quota spent", "quota_exceeded", "The organization's monthly event quota is spent", 429),
        ],
    ),
    503: OpenApiResponse(
        ErrorSerializer,
        "`service_unavailable`: PostgreSQL or Redis unreachable; nothing stored, retry after `Retry-After` seconds.",
        examples=[
            _error("unavailable", "service_unavailable", "The service is unavailable; retry later.", 503),
        ],
    ),
}

ingest_schema = extend_schema(
    operation_id="ingest_batch",
    summary="Send a signed batch of events",
    description="Valid events are committed before the answer. A batch is answered 200, 207 or 422 with "
    "the same body, so an SDK re-sends only on 429 and 5xx.",
    tags=["ingest"],
    parameters=[
        OpenApiParameter("org_id", str, OpenApiParameter.PATH, description="The organization's public id."),
        OpenApiParameter("app_id", str, OpenApiParameter.PATH, description="The application's id, `app_` + 8 hex."),
        *HEADERS,
    ],
    request={"application/json": BatchSerializer},
    responses=RESPONSES,
    examples=REQUEST_EXAMPLES,
)

_STREAM_ERROR_HEADERS = [
    _header(
        "X-Error-Code",
        "Why the stream stopped: `invalid_json`, `payload_too_large` or `quota_exceeded`.",
        response=[400, 413, 429],
    ),
    _header("X-Error-Message", "The same, for people.", response=[400, 413]),
]


def _count(description: str, example: str) -> OpenApiResponse:
    """A stream's answer: the count stored, as text."""
    return OpenApiResponse(
        OpenApiTypes.STR, description, examples=[OpenApiExample("count", value=example, response_only=True)]
    )


_STREAM_PATH_PARAMETERS = [
    OpenApiParameter("org_id", str, OpenApiParameter.PATH, description="The organization's public id."),
    OpenApiParameter("app_id", str, OpenApiParameter.PATH, description="The application's id, `app_` + 8 hex."),
]

stream_schema = extend_schema(
    operation_id="stream_events",
    summary="Stream events (newline-delimited JSON)",
    description="Event streams: each JSON value of the body is one event, stored while the body "
    "arrives (chunked bodies welcome, no length limit). The answer is the number of events stored, "
    "as text; a stream that stops early keeps what was stored before. Authenticated by the "
    "application's API token (`Authorization: Bearer tk_...` or `X-API-Key`).\n\n"
    "**WebSocket**: the same path on the server's WebSocket listener (APP_PUBLIC_WEBSOCKET_URL; "
    "token also as `?token=`) takes one event per text or binary message and answers each run "
    "of messages with the count stored so far; an empty binary message hangs up. A GET upgrade "
    "sent here is answered 426 naming the listener.",
    tags=["streams"],
    parameters=[*_STREAM_PATH_PARAMETERS, *_STREAM_ERROR_HEADERS, *_RATE_LIMIT_HEADERS],
    request={
        "application/x-ndjson": OpenApiTypes.STR,
        "application/json": OpenApiTypes.STR,
        "text/plain": OpenApiTypes.STR,
    },
    examples=[
        OpenApiExample(
            "two values",
            value='{"time": "2026-11-25T10:00:00Z", "level": "INFO", "msg": "hi"}\n'
            '{"type": "metric", "name": "queue", "value": 3}\n',
            request_only=True,
        )
    ],
    responses={
        (200, "text/plain"): _count("Every value stored; the body is their count.", "2"),
        (400, "text/plain"): _count(
            "`invalid_json`: stopped at a malformed value; the body is the count stored before it.", "1"
        ),
        (401, "application/json"): OpenApiResponse(
            ErrorSerializer,
            "`unauthorized`: missing or invalid API token, or unknown application.",
            examples=[_error("bad token", "unauthorized", "Missing or invalid API token", 401)],
        ),
        (413, "text/plain"): _count(
            "`payload_too_large`: stopped at a value over "
            "APP_INGESTION__STREAM_MAX_VALUE_SIZE; the body is the count stored before it.",
            "0",
        ),
        (429, "text/plain"): _count("`quota_exceeded` during the stream; the body is the count stored.", "5"),
        (429, "application/json"): OpenApiResponse(
            ErrorSerializer, "`rate_limit_exceeded` or `quota_exceeded` before anything is read."
        ),
        (503, "application/json"): RESPONSES[503],
    },
)
# A WebSocket is not an HTTP operation OpenAPI can describe: the POST's description names it.
stream_upgrade_schema = extend_schema(exclude=True)
MALTI_PATH = "/api/v1/ingest"


class MaltiRecordSerializer(serializers.Serializer):
    service = serializers.CharField(
        min_length=1, max_length=255, help_text="MALTI_SERVICE_NAME; every record must name the key's service."
    )
    method = serializers.CharField(min_length=1, max_length=32)
    endpoint = serializers.CharField(max_length=1024, allow_blank=True, help_text="The route pattern.")
    status = serializers.IntegerField(min_value=100, max_value=599)
    response_time = serializers.IntegerField(min_value=0, max_value=2**31 - 1, help_text="Milliseconds.")
    consumer = serializers.CharField(max_length=255, allow_blank=True)
    node = serializers.CharField(max_length=255, allow_blank=True, allow_null=True, required=False)
    context = serializers.CharField(max_length=4096, allow_blank=True, allow_null=True, required=False)
    created_at = serializers.DateTimeField(help_text="ISO 8601 with a time zone.")


class MaltiBatchSerializer(serializers.Serializer):
    requests = serializers.ListField(
        child=MaltiRecordSerializer(), min_length=1, max_length=settings.INGEST_MAX_BATCH_SIZE
    )


class MaltiStoredSerializer(serializers.Serializer):
    message = serializers.CharField()
    count = serializers.IntegerField(min_value=1, help_text="Records stored: all of the batch.")
    service = serializers.CharField()


class MaltiRecordErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(min_value=0, help_text="The record's position in `requests`.")
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class MaltiInvalidSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
    count = serializers.IntegerField(min_value=0, help_text="Records stored: 0.")
    errors = MaltiRecordErrorSerializer(many=True, help_text="Each malformed record (the first 100).")


MALTI_RECORD = {
    "service": "orders-api",
    "method": "GET",
    "endpoint": "/orders/{order_id}",
    "status": 200,
    "response_time": 42,
    "consumer": "web-shop",
    "node": "web-01",
    "context": None,
    "created_at": "2026-11-25T10:30:00.123456+00:00",
}
_MALTI_LIMITED = [200, 400, 403, 413, 422, 429]

malti_schema = extend_schema(
    operation_id="malti_ingest",
    summary="Send a batch of Malti request records",
    description="For the Malti client (`MALTI_URL` = this server, `MALTI_API_KEY` = an application's API "
    "token issued with a service name). The batch is stored whole or not at all; 200 only once "
    "every record is stored. Each record becomes an `http_request` event.",
    tags=["ingest"],
    parameters=_rate_limit_headers(_MALTI_LIMITED),
    request={"application/json": MaltiBatchSerializer},
    examples=[OpenApiExample("batch", value={"requests": [MALTI_RECORD]}, request_only=True)],
    responses={
        200: OpenApiResponse(
            MaltiStoredSerializer,
            "Every record stored.",
            examples=[
                OpenApiExample(
                    "stored",
                    value={"message": "1 requests stored", "count": 1, "service": "orders-api"},
                    response_only=True,
                    status_codes=[200],
                )
            ],
        ),
        400: OpenApiResponse(
            ErrorSerializer,
            '`bad_request`: not JSON or not `{"requests": [...]}`; `empty_batch`: no records.',
            examples=[_error("empty", "empty_batch", "The batch has no requests", 400)],
        ),
        401: OpenApiResponse(
            ErrorSerializer,
            "`unauthorized`: X-API-Key missing, unknown, revoked or expired.",
            examples=[_error("bad key", "unauthorized", "Missing or invalid API token", 401)],
        ),
        403: OpenApiResponse(
            ErrorSerializer,
            "`service_mismatch`: a record names another service than the key's.",
            examples=[
                _error(
                    "other service",
                    "service_mismatch",
                    "Record 0 is for service 'orders-api', but this batch (and its key) is for 'billing'",
                    403,
                )
            ],
        ),
        413: OpenApiResponse(
            ErrorSerializer, "`payload_too_large`: the body or the number of records is over its limit."
        ),
        422: OpenApiResponse(MaltiInvalidSerializer, "`invalid_record`: malformed records; nothing stored."),
        429: OpenApiResponse(
            ErrorSerializer,
            "`rate_limit_exceeded`, or `quota_exceeded` when the month's quota "
            "has no room for the whole batch (nothing stored).",
        ),
        503: OpenApiResponse(ErrorSerializer, "`service_unavailable`: nothing stored; retry later."),
    },
)

_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_TIMESTAMP = {"type": "string", "format": "date-time"}
_CHECK = {"type": "string", "enum": ["ok", "down", "not configured"]}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}


def _json(schema: dict, example: dict) -> dict:
    return {"application/json": {"schema": schema, "example": example}}


MACHINE_PATHS = {
    "/health": {
        "get": {
            "operationId": "health",
            "tags": ["operations"],
            "summary": "Liveness",
            "description": "Answers without touching the database or Redis.",
            "responses": {
                "200": {
                    "description": "Alive.",
                    "content": _json(
                        {
                            "type": "object",
                            "required": ["status", "version", "timestamp"],
                            "properties": {
                                "status": {"type": "string", "enum": ["healthy"]},
                                "version": {"type": "string"},
                                "timestamp": _TIMESTAMP,
                            },
                        },
                        {"status": "healthy", "version": "0.1.0", "timestamp": "2026-11-25T06:30:00Z"},
                    ),
                }
            },
        }
    },
    "/ready": {
        "get": {
            "operationId": "ready",
            "tags": ["operations"],
            "summary": "Readiness",
            "description": "Checks the database and, when configured, Redis.",
            "responses": {
                "200": {
                    "description": "Ready.",
                    "content": _json(
                        {"$ref": "#/components/schemas/Readiness"},
                        {
                            "status": "ready",
                            "checks": {"database": "ok", "redis": "ok"},
                            "timestamp": "2026-11-25T06:30:00Z",
                        },
                    ),
                },
                "503": {
                    "description": "`service_unavailable`, naming what is down.",
                    "headers": _RETRY_AFTER,
                    "content": _json(
                        {"$ref": "#/components/schemas/Readiness"},
                        {
                            "status": "unavailable",
                            "checks": {"database": "down", "redis": "ok"},
                            "timestamp": "2026-11-25T06:30:00Z",
                            "error": {"code": "service_unavailable", "message": "Unavailable: database"},
                        },
                    ),
                },
            },
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "tags": ["operations"],
            "summary": "Prometheus metrics",
            "description": "For `Authorization: Bearer <APP_OBSERVABILITY__METRICS_TOKEN>`, or without a token set, "
            "for APP_OBSERVABILITY__METRICS_ALLOWED_NETWORKS.",
            "security": [{}, {"metricsToken": []}],
            "responses": {
                "200": {
                    "description": "Prometheus text format.",
                    "content": {
                        "text/plain; version=0.0.4; charset=utf-8": {
                            "schema": {"type": "string"},
                            "example": "events_ingested_total 42.0\n",
                        }
                    },
                },
                "403": {
                    "description": "`forbidden`.",
                    "content": _json(
                        _ERROR_REF, {"error": {"code": "forbidden", "message": "Metrics are not served to you"}}
                    ),
                },
            },
        }
    },
}

READINESS = {
    "type": "object",
    "required": ["status", "checks", "timestamp"],
    "properties": {
        "status": {"type": "string", "enum": ["ready", "unavailable"]},
        "checks": {"type": "object", "properties": {"database": _CHECK, "redis": _CHECK}},
        "timestamp": _TIMESTAMP,
        "error": {"$ref": "#/components/schemas/ErrorDetail"},
    },
}


_annotated = False


def views_annotate(endpoints):
    """Preprocessing hook: puts each view's annotation on it, once per process."""
    global _annotated
    if not _annotated:
        from ingest.apis import ErasureApi, IngestApi, LambdaTelemetryApi, MaltiIngestApi, OtlpApi, StreamApi

        for annotate, method in (
            (ingest_schema, IngestApi.post),
            (stream_schema, StreamApi.post),
            (stream_upgrade_schema, StreamApi.get),
            (malti_schema, MaltiIngestApi.post),
            (lambda_schema, LambdaTelemetryApi.post),
            (otlp_schema, OtlpApi.post),
            # an operator's tool, documented in the README, not part of the SDKs' API
            (extend_schema(exclude=True), ErasureApi.post),
        ):
            annotate(method)  # extend_schema marks the function itself
        _annotated = True
    return endpoints


def machine_routes_add(result, generator, request, public):
    """Postprocessing hook: adds the plain Django views (kept off DRF to stay cheap) and the token schemes."""
    result["paths"].update(MACHINE_PATHS)
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Readiness"] = READINESS
    components["securitySchemes"] = {
        "applicationToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "Optional: when sent, must be the application's API token (`tk_…`).",
        },
        "metricsToken": {"type": "http", "scheme": "bearer", "description": "APP_OBSERVABILITY__METRICS_TOKEN."},
        "apiToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "The application's API token (`tk_…`), for clients that do not sign.",
        },
        "apiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "The application's API token (`tk_…`) in a header of its own.",
        },
    }
    result["paths"][INGEST_PATH]["post"]["security"] = [{}, {"applicationToken": []}]
    for operation in result["paths"][STREAM_PATH].values():
        operation["security"] = [{"apiToken": []}, {"apiKey": []}]
    components["securitySchemes"]["apiToken"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The application's API token (`tk_…`); the Lambda endpoint also takes it as `X-API-Key`.",
    }
    for path in (LAMBDA_PATH, *OTLP_PATHS):
        result["paths"][path]["post"]["security"] = [{"apiToken": []}]
    components["securitySchemes"]["maltiKey"] = {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An application's API token (`tk_…`), issued with a Malti service name.",
    }
    result["paths"][MALTI_PATH]["post"]["security"] = [{"maltiKey": []}]
    return result


# AWS Lambda and OTLP (ingest/families/aws_lambda.py, otlp.py): token-authenticated, documented here the same way.
LAMBDA_PATH = "/v1/lambda/{org_id}/{app_id}"
OTLP_PATHS = [f"/v1/otlp/{{org_id}}/{{app_id}}/v1/{signal}" for signal in ("traces", "metrics", "logs")]
_IDS = [
    OpenApiParameter("org_id", str, OpenApiParameter.PATH, description="The organization's public id."),
    OpenApiParameter("app_id", str, OpenApiParameter.PATH, description="The application's id, `app_` + 8 hex."),
]
_API_KEY = _header("X-API-Key", "The application's API token, when `Authorization: Bearer` is not sent.")
LAMBDA_EXAMPLE = [
    {
        "type": "platform.start",
        "time": "2026-11-20T10:30:00.000Z",
        "record": {"requestId": "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa", "version": "$LATEST"},
    },
    {
        "type": "platform.report",
        "time": "2026-11-20T10:30:00.250Z",
        "record": {
            "requestId": "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa",
            "status": "success",
            "metrics": {"durationMs": 100.5, "billedDurationMs": 101, "memorySizeMB": 128, "maxMemoryUsedMB": 64},
        },
    },
    {"type": "function", "time": "2026-11-20T10:30:00.100Z", "record": "Hello from Lambda!"},
]

lambda_schema = extend_schema(
    operation_id="lambda_telemetry",
    summary="Send an array the AWS Lambda Telemetry API pushed",
    description="Each element becomes an event of its `type` (unknown types are kept), at its `time`, its "
    "data the element as sent. The function is named by `X-Lambda-Function-Name` (or "
    "`?function=`, or the array's `platform.initStart`); its version by `X-Lambda-Function-Version` "
    "(or `?version=`, or `platform.start`). `platform.report` elements feed the Lambda panel, and "
    "must carry numeric metrics. Answered like the signed ingest: 200, 207 or 422 with the same body.",
    tags=["lambda"],
    parameters=[
        *_IDS,
        _API_KEY,
        _header("X-Lambda-Function-Name", "The function's name (AWS_LAMBDA_FUNCTION_NAME)."),
        _header("X-Lambda-Function-Version", "The function's version (AWS_LAMBDA_FUNCTION_VERSION)."),
        OpenApiParameter(
            "function",
            str,
            OpenApiParameter.QUERY,
            required=False,
            description="The function's name, when the header is not sent.",
        ),
        OpenApiParameter(
            "version",
            str,
            OpenApiParameter.QUERY,
            required=False,
            description="The function's version, when the header is not sent.",
        ),
        *_RATE_LIMIT_HEADERS,
    ],
    request={
        "application/json": {
            "type": "array",
            "maxItems": settings.INGEST_MAX_BATCH_SIZE,
            "items": {
                "type": "object",
                "required": ["type", "time"],
                "properties": {
                    "type": {"type": "string", "minLength": 1, "maxLength": 255},
                    "time": {"type": "string", "format": "date-time"},
                    "record": {},
                },
            },
        }
    },
    responses={
        200: RESPONSES[200],
        207: RESPONSES[207],
        422: RESPONSES[422],
        400: OpenApiResponse(
            ErrorSerializer, "`bad_request`: not a JSON array, wrong Content-Type, or no function name."
        ),
        401: OpenApiResponse(
            ErrorSerializer, "`unauthorized`: a missing or wrong token, or ids that are not the token's application."
        ),
        413: OpenApiResponse(ErrorSerializer, "`payload_too_large`: the body or the array is over its limit."),
        429: RESPONSES[429],
        503: RESPONSES[503],
    },
    examples=[OpenApiExample("array", value=LAMBDA_EXAMPLE, request_only=True)],
)

_STATUS = {
    "type": "object",
    "description": "google.rpc.Status",
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "details": {"type": "array"}},
}
_BINARY = {"type": "string", "format": "binary"}


def _otlp_answers(answers: dict[int, tuple[str, dict]]) -> dict:
    """Each answer in both encodings: the request's own is the one sent."""
    responses = {}
    for status, (description, json_schema) in answers.items():
        responses[(status, "application/json")] = OpenApiResponse(json_schema, description)
        responses[(status, "application/x-protobuf")] = OpenApiResponse(_BINARY, description)
    return responses


otlp_schema = extend_schema(
    summary="OTLP/HTTP export (traces, metrics or logs)",
    description="An Export{Trace,Metrics,Logs}ServiceRequest in binary protobuf (`application/x-protobuf`) or "
    "OTLP's JSON mapping (`application/json`), optionally `Content-Encoding: gzip`. Each span, log "
    "record or metric data point becomes an `otel.span`, `otel.log` or `otel.metric` event. Answered "
    "in the request's encoding: 200 with an Export*ServiceResponse (`partialSuccess` counts what "
    "was rejected and says why), or a google.rpc.Status.",
    tags=["otlp"],
    parameters=[
        *_IDS,
        _API_KEY,
        _header("Content-Encoding", "`gzip`, or none.", pattern="^(gzip|identity)$"),
        *_RATE_LIMIT_HEADERS,
    ],
    request={"application/x-protobuf": _BINARY, "application/json": {"type": "object"}},
    responses=_otlp_answers(
        {
            200: (
                "Stored; `partialSuccess` when some items were rejected.",
                {"type": "object", "properties": {"partialSuccess": {"type": "object"}}},
            ),
            400: ("The body cannot be decoded.", _STATUS),
            401: ("A missing or wrong token, or ids that are not the token's application.", _STATUS),
            413: ("The body (inflated) or the item count is over its limit.", _STATUS),
            415: ("Content-Type or Content-Encoding not supported.", _STATUS),
            429: ("Rate limited or quota spent; retry after `Retry-After` seconds.", _STATUS),
            503: ("PostgreSQL or Redis unreachable; retry after `Retry-After` seconds.", _STATUS),
        }
    ),
)

"""Client errors of the ingest API: a stable code (docs/protocols.md#error-codes) and a human message."""

import msgspec
from django.http import HttpResponse
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    pass


class NestingTooDeep(BadRequest):
    code = "nesting_too_deep"


class UnsupportedEncoding(ApiError):
    status = 415
    code = "unsupported_encoding"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class RateLimited(ApiError):
    status = 429
    code = "rate_limit_exceeded"


class ServiceMismatch(ApiError):
    """An event or record of another service than the one its key is bound to."""

    status = 403
    code = "service_mismatch"


class TooManyStreams(ApiError):
    status = 429
    code = "too_many_connections"


class QuotaExceeded(ApiError):
    status = 429
    code = "quota_exceeded"


class StorageUnavailable(ApiError):
    status = 503
    code = "storage_unavailable"


class ServiceBusy(ApiError):
    status = 503
    code = "busy"


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


_encode = msgspec.json.Encoder().encode


def error_response(error: ApiError) -> HttpResponse:
    """``error`` answered as DRF's exception handler below answers it, without DRF's machinery."""
    return HttpResponse(
        _encode(error_body(error.code, error.message)),
        status=error.status,
        content_type="application/json",
        headers=error.headers,
    )


def api_exception_handler(exc, context):
    if isinstance(exc, ApiError):
        return Response(error_body(exc.code, exc.message), status=exc.status, headers=exc.headers)
    response = exception_handler(exc, context)
    if response is not None:
        code = getattr(exc, "default_code", "bad_request")
        response.data = error_body(code, str(getattr(exc, "detail", exc)))
    return response

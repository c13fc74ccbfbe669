"""AWS Lambda's ways in: the Telemetry API's JSON arrays from a forwarding extension, and OTLP/HTTP.

Both authenticate by the application's API token, then meet the rate limit and the monthly quota
through ``ingest.access.tokens`` and store through ``events_accept``, like every client that does not sign.
"""

from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from redis import RedisError

from accounts.ingest_targets import IngestTarget
from ingest.access import verification
from ingest.access.admission import seconds_to_month_end, utc_now
from ingest.access.tokens import (
    bearer_token,
    body_encoding_check,
    rate_limit_headers,
    request_admit_unsigned,
    token_authenticate,
)
from ingest.apis import batch_response
from ingest.errors import ApiError, BadRequest, PayloadTooLarge, QuotaExceeded
from ingest.families import aws_lambda, otlp
from ingest.models import Outcome
from ingest.negotiation import MachineApi
from ingest.storage.schema import CheckedBatch
from ingest.storage.services import Accepted, events_accept, outcomes_count
from telemetry.lib.errors import ServiceUnavailable
from telemetry.middleware import RETRY_AFTER_SECONDS

Kind = Outcome.Kind
# Spans, log records or data points in one export: an SDK's batch span processor sends 512 at most.
OTLP_MAX_ITEMS = 10_000


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


def _sdk_version(meta) -> str | None:
    return meta.get("HTTP_USER_AGENT", "")[:100] or None


def _accept(meta, target: IngestTarget, checked: CheckedBatch) -> tuple[Accepted, dict[str, str]]:
    """Admits the request for its valid events (rate limit, quota) and stores what the quota grants;
    raises ``QuotaExceeded`` when it grants none of them."""
    try:
        verification.service_binding_check(
            service=verification.bound_service(target, bearer_token(meta, "HTTP_X_API_KEY")), checked=checked
        )
    except ApiError as error:
        raise _invalid(target, error) from None
    admission = request_admit_unsigned(target=target, events=len(checked.valid))
    headers = rate_limit_headers(admission)
    accepted = events_accept(
        target=target,
        checked=checked,
        reserved=admission.reserved if admission else None,
        sdk_version=_sdk_version(meta),
    )
    if accepted.wanted and not accepted.granted:
        raise QuotaExceeded(
            "The organization's monthly event quota is spent",
            headers={**headers, "Retry-After": str(seconds_to_month_end(utc_now()))},
        )
    return accepted, headers


def _invalid(target: IngestTarget, error: ApiError) -> ApiError:
    outcomes_count(target=target, counts=Counter({(Kind.INVALID, error.code): 1}))
    return error


def _function(request, elements) -> aws_lambda.Function:
    """The function the events come from: the X-Lambda-Function-Name and -Version headers, else the
    ``function`` and ``version`` query parameters, else the array's own ``platform.initStart``."""
    meta, query = request.META, request.GET
    name = meta.get("HTTP_X_LAMBDA_FUNCTION_NAME", "").strip() or query.get("function", "").strip()
    version = meta.get("HTTP_X_LAMBDA_FUNCTION_VERSION", "").strip() or query.get("version", "").strip()
    if name:
        return aws_lambda.Function(name[:255], version[:255] or None)
    found = aws_lambda.function_from_init(elements)
    return aws_lambda.Function(found.name, version[:255] or found.version)


class LambdaTelemetryApi(MachineApi):
    """``POST /v1/lambda/{org_id}/{app_id}``: an array the Lambda Telemetry API pushed."""

    def post(self, request, org_id: str, app_id: str):
        meta = request.META
        target = token_authenticate(
            token=bearer_token(meta, "HTTP_X_API_KEY"), org_public_id=org_id, app_public_id=app_id
        )
        try:
            verification.content_length_check(meta)
            body = verification.body_read(request._request)
            verification.content_type_check(meta)
            body_encoding_check(meta)
            elements = aws_lambda.array_decode(body)
        except aws_lambda.ArrayFormatError as error:
            raise _invalid(target, BadRequest(str(error))) from None
        except ApiError as error:
            raise _invalid(target, error) from None
        if len(elements) > settings.INGEST_MAX_BATCH_SIZE:
            raise _invalid(
                target,
                PayloadTooLarge(f"The array has {len(elements)} events; the limit is {settings.INGEST_MAX_BATCH_SIZE}"),
            )
        function = _function(request, elements)
        if not function.name:
            raise _invalid(
                target, BadRequest("Name the function: X-Lambda-Function-Name header or ?function= (see the README)")
            )
        accepted, headers = _accept(
            meta,
            target,
            aws_lambda.lambda_batch(elements, function=function, max_depth=settings.INGEST_MAX_JSON_DEPTH),
        )
        response = batch_response(total=len(elements), errors=accepted.errors)
        for name, value in headers.items():
            response[name] = value
        return response


@dataclass(frozen=True)
class OtlpError:
    status: int
    message: str
    headers: dict[str, str]


_OUTAGES = (OperationalError, InterfaceError, RedisError, ServiceUnavailable)


class OtlpApi(MachineApi):
    """``POST /v1/otlp/{org_id}/{app_id}/v1/{traces,metrics,logs}``: OTLP/HTTP, answered as the
    OTLP specification says: Export*ServiceResponse (with ``partial_success``) or google.rpc.Status,
    in the request's encoding."""

    signal: otlp.Signal | None = None  # set per route by otlp_view

    def post(self, request, org_id: str, app_id: str):
        media = otlp.media_type(request.META.get("CONTENT_TYPE", ""))
        try:
            return self._export(request, org_id, app_id, media)
        except ApiError as api_error:
            error = OtlpError(api_error.status, api_error.message, api_error.headers)
        except _OUTAGES:  # as the service-wide 503, but a Status the exporter understands
            error = OtlpError(
                503, "The service is unavailable; retry later.", {"Retry-After": str(RETRY_AFTER_SECONDS)}
            )
        media = media or otlp.JSON
        response = HttpResponse(
            otlp.status_body(error.status, error.message, media), status=error.status, content_type=media
        )
        for name, value in error.headers.items():
            response[name] = value
        return response

    def _export(self, request, org_id: str, app_id: str, media: str | None) -> HttpResponse:
        meta, signal = request.META, self.signal
        target = token_authenticate(
            token=bearer_token(meta, "HTTP_X_API_KEY"), org_public_id=org_id, app_public_id=app_id
        )
        if media is None:
            raise _invalid(target, UnsupportedMediaType(f"Content-Type must be {otlp.PROTOBUF} or {otlp.JSON}"))
        limit = settings.INGEST_MAX_PAYLOAD_SIZE
        try:
            verification.content_length_check(meta)
            body = verification.body_read(request._request)
            if media == otlp.JSON:
                body_encoding_check(meta, content_encoding=False)  # gzip is OTLP's own, handled below
            encoding = meta.get("HTTP_CONTENT_ENCODING", "").strip().lower()
            if encoding == "gzip":
                try:
                    body = otlp.gunzip(body, limit=limit)
                except OverflowError as exc:
                    raise PayloadTooLarge(str(exc)) from None
            elif encoding not in ("", "identity"):
                raise UnsupportedMediaType("Content-Encoding must be gzip or none")
            checked = otlp.otlp_batch(
                signal, otlp.request_decode(signal, body, media), max_items=OTLP_MAX_ITEMS, body_size=len(body)
            )
        except otlp.OtlpFormatError as exc:
            raise _invalid(target, BadRequest(str(exc))) from None
        except otlp.TooManyItems as exc:
            raise _invalid(target, PayloadTooLarge(str(exc))) from None
        except ApiError as error:
            raise _invalid(target, error) from None
        total = otlp.batch_size(checked)
        accepted, headers = _accept(meta, target, checked) if total else (None, {})
        rejected = len(accepted.errors) if accepted else 0
        message = ""
        if accepted and accepted.errors:
            reasons = Counter(error.error for error in accepted.errors)
            first = accepted.errors[0].message
            message = (
                f"{rejected} of {total} rejected ("
                + ", ".join(f"{code}: {count}" for code, count in sorted(reasons.items()))
                + f"); {first}"
            )
        response = HttpResponse(
            otlp.response_body(signal, media, rejected=rejected, message=message), content_type=media
        )
        for name, value in headers.items():
            response[name] = value
        return response


def otlp_view(signal: str):
    return OtlpApi.as_view(signal=otlp.SIGNALS[signal])

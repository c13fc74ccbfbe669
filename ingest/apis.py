"""The ingest API's edge: thin DRF views over the intake pipeline (ingest.pipeline), streams and erasure.

Their OpenAPI annotations live in ingest.openapi, put on them only when a schema is generated."""

from functools import cache

import msgspec
from django.conf import settings
from django.http import HttpResponse
from rest_framework.exceptions import MethodNotAllowed

from accounts.ingest_targets import application_for, ingest_target_get
from accounts.services import Source, credential_touch
from ingest.access import verification
from ingest.access.admission import seconds_to_month_end, utc_now
from ingest.access.tokens import bearer_token, rate_limit_headers, request_admit_unsigned, token_authenticate
from ingest.errors import (
    ApiError,
    BadRequest,
    ServiceBusy,
    StorageUnavailable,
    TooManyStreams,
    Unauthorized,
    error_body,
)
from ingest.families import streams
from ingest.families.aws_lambda import LambdaFamily
from ingest.families.malti import MaltiFamily
from ingest.families.sdk import SdkFamily
from ingest.models import Event, Stream
from ingest.negotiation import MachineApi
from ingest.pipeline import Family, intake
from ingest.retention.archive import storage_errors
from ingest.retention.erasure import ErasureBusy, user_events_erase
from ingest.storage.services import nonce_claim_in_database, nonce_key

_encode = msgspec.json.Encoder().encode


class IntakeApi(MachineApi):
    """A client family's way in: its POST runs ``ingest.pipeline.intake`` with the view's family."""

    plain_methods = frozenset({"POST"})
    family: Family

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)

        # A function of each view's own, for its OpenAPI annotation (ingest.openapi) to mark.
        def post(self, request, **ids):
            return intake(self.family, request, **ids)

        cls.post = post


class IngestApi(IntakeApi):
    """``POST /v1/ingest/{org_id}/{app_id}``: a signed batch of telemetry-kit events."""

    family = SdkFamily()


class LambdaTelemetryApi(IntakeApi):
    family = LambdaFamily()


class MaltiIngestApi(IntakeApi):
    family = MaltiFamily()


class OtlpApi(IntakeApi):
    signal = ""  # traces, metrics or logs: one view per signal, given by for_signal

    @classmethod
    def for_signal(cls, signal: str):
        return cls.as_view(signal=signal)

    @property
    def family(self) -> Family:
        return _otlp_family(self.signal)


@cache
def _otlp_family(signal: str) -> Family:
    """The signal's family, made on the worker's first OTLP request, which waits for the import."""
    from ingest.families.otlp import OtlpFamily  # on first use: protobuf and the OTLP types take ~3 MB a worker

    return OtlpFamily(signal)


def _request_headers(meta):
    """The request's headers from WSGI's environ, where two of them lack the HTTP_ prefix."""
    for name, value in meta.items():
        if name.startswith("HTTP_"):
            yield name[5:].replace("_", "-"), value
        elif name in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            yield name.replace("_", "-"), value


# How a stream that stopped early is answered (the body is still the count stored).
_STREAM_STOP_STATUS = {
    "payload_too_large": 413,
    "quota_exceeded": 429,
    "rate_limit_exceeded": 429,
    "unauthorized": 401,
    "service_mismatch": 403,
}


class StreamApi(MachineApi):
    """``POST /v1/streams/{org_id}/{app_id}``: JSON values one per line (docs/protocols.md#event-streams),
    each stored as an event while the body arrives; the answer is the count stored, as text. Each
    ``streams.BYTES_PER_REQUEST`` past the first count once more against the rate limit. The same
    path takes WebSockets on the server's WebSocket listener (``ingest.families.sockets``)."""

    plain_methods = frozenset({"POST"})

    def post(self, request, org_id: str, app_id: str):
        meta = request.META
        token = bearer_token(meta, "HTTP_X_API_KEY")
        caller = token_authenticate(token=token, org_public_id=org_id, app_public_id=app_id)
        target = caller.target
        admission = request_admit_unsigned(target=target, events=None)
        credential_touch(credential_id=caller.credential_id)
        slot = streams.StreamSlot(token)
        if not slot.claim():
            raise TooManyStreams(
                f"{settings.STREAM_MAX_CONNECTIONS_PER_TOKEN} streams are open with this token already",
                headers={"Retry-After": "5"},
            )
        try:
            return self._stream(request, target, token, admission, slot, org_id, app_id)
        finally:
            slot.release()

    def _stream(self, request, target, token: str, admission, slot, org_id: str, app_id: str) -> HttpResponse:
        meta = request.META
        stream = streams.stream_open(
            target=target, transport=Stream.Transport.HTTP, headers=streams.headers_kept(_request_headers(meta))
        )
        stored, status, ending, headers = 0, 200, Stream.Ending.COMPLETED, rate_limit_headers(admission)
        body = streams.MeteredRead(verification.body_stream(request).read)
        admitted = streams.BYTES_PER_REQUEST  # the bytes the stream's admissions so far cover
        try:
            for values in streams.values_read(
                body.read, max_value_bytes=settings.STREAM_MAX_VALUE_SIZE, max_body_bytes=settings.STREAM_MAX_BODY_SIZE
            ):
                while body.size > admitted:
                    try:
                        request_admit_unsigned(target=target, events=None)
                    except ApiError as refused:
                        headers.update(refused.headers)
                        raise streams.StreamStopped(refused.code, refused.message) from None
                    admitted += streams.BYTES_PER_REQUEST
                if slot.due():
                    slot.claim()  # renewed, so a long stream keeps its place
                stored += streams.stream_values_store(
                    stream=stream, values=values, token=token, org_id=org_id, app_id=app_id
                )
        except streams.StreamStopped as stop:
            stored += stop.stored
            status, ending = _STREAM_STOP_STATUS.get(stop.code, 400), stop.code
            headers.update({"X-Error-Code": stop.code, "X-Error-Message": str(stop)[:200]})
            if stop.code == "quota_exceeded":
                headers["Retry-After"] = str(seconds_to_month_end(utc_now()))
        except Exception:
            streams.stream_close(stream=stream, ending=Stream.Ending.FAILED)
            raise
        streams.stream_close(stream=stream, ending=ending)
        # As stream clients read it (docs/protocols.md#event-streams): the count stored, even after a stop.
        return HttpResponse(str(stored), status=status, content_type="text/plain; charset=utf-8", headers=headers)

    # GET is here only to point a WebSocket upgrade at the WebSocket listener, not a method of the resource.
    allowed_methods = ["POST", "OPTIONS"]

    def get(self, request, org_id: str, app_id: str):
        if request.META.get("HTTP_UPGRADE", "").lower() != "websocket":
            raise MethodNotAllowed("GET")
        url = f"{settings.PUBLIC_WEBSOCKET_URL.rstrip('/')}{request.path}"
        return HttpResponse(
            _encode(
                error_body(
                    "websocket_elsewhere",
                    f"WebSocket streams are served at {url}"
                    if settings.SERVER_WEBSOCKET_PORT
                    else "WebSocket streams are not enabled on this server",
                )
            ),
            status=426,
            content_type="application/json",
            headers={"Upgrade": "websocket"} if settings.SERVER_WEBSOCKET_PORT else {},
        )


class _ErasureRequest(msgspec.Struct, forbid_unknown_fields=True):
    user_id: str


_decode_erasure = msgspec.json.Decoder(_ErasureRequest).decode


ERASURE_LOCK_WAIT_SECONDS = 10


class ErasureApi(MachineApi):
    """``POST /v1/erasure/{org_id}/{app_id}`` with ``{"user_id": "..."}``: erases that user id's
    events from the application, stored and archived. Signed as an ingest request, and the
    application's API token must come as the bearer; answers with the receipt kept in the audit log."""

    plain_methods = frozenset({"POST"})

    def post(self, request, org_id: str, app_id: str):
        meta = request.META
        verification.content_length_check(meta)
        headers = verification.signed_headers(meta)
        if headers.bearer is None:
            raise Unauthorized("Authorization: Bearer <the application's API token> is required")
        target = ingest_target_get(org_public_id=org_id, app_public_id=app_id, fresh=True)
        if target is None:
            raise Unauthorized("Invalid credentials or signature")
        body = verification.body_read(request)
        key = verification.key_verify(target, headers, body)
        if not nonce_claim_in_database(
            key=nonce_key(target.application_id, headers.replay_key), ttl=settings.SECURITY_NONCE_TTL
        ):
            raise Unauthorized("X-Nonce was already used")
        verification.content_type_check(meta)
        try:
            user_id = _decode_erasure(body).user_id
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise BadRequest(f'Body must be {{"user_id": "<user id>"}}: {error}') from None
        if not 0 < len(user_id) <= Event._meta.get_field("user_id").max_length or "\x00" in user_id:
            raise BadRequest("user_id must be 1 to 71 characters, none of them NUL")
        try:
            erasure = user_events_erase(
                application=application_for(target),
                user_id=user_id,
                via="api",
                source=Source.from_request(request),
                credential=f"#{key.credential_id}",
                lock_wait=ERASURE_LOCK_WAIT_SECONDS,
            )
        except ErasureBusy:
            # Never hold a web thread behind an hour-long archive run: the client retries.
            raise ServiceBusy("Archive work is in progress; retry later", headers={"Retry-After": "60"}) from None
        except storage_errors():
            # What was erased stays erased; the retry finishes the rest and writes the receipt.
            raise StorageUnavailable(
                "The archive storage cannot be reached; retry later", headers={"Retry-After": "60"}
            ) from None
        body = {
            "status": "erased" if not erasure.archives_unreadable else "partial",
            "receipt_id": erasure.receipt.pk,
            "erased_at": erasure.receipt.created_at.isoformat(),
            "events_erased": erasure.events,
            "archived_events_erased": erasure.archived_events,
            "archives_rewritten": erasure.archives_rewritten,
            "archives_unreadable": len(erasure.archives_unreadable),
            "export_files_to_rewrite": erasure.export_files_to_rewrite,
        }
        return HttpResponse(_encode(body), content_type="application/json")

"""The ingest API: thin views over verification, admission, the schema and the storage service.

Their OpenAPI annotations live in ingest.openapi, put on them only when a schema is generated."""

from collections import Counter
from datetime import timedelta

import msgspec
from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.exceptions import MethodNotAllowed

from accounts.ingest_targets import IngestTarget, application_for, ingest_target_get
from accounts.services import Source, credential_touch
from ingest.access import verification
from ingest.access.admission import (
    Admission,
    outcomes_record,
    quota_release,
    request_admit,
    seconds_to_month_end,
    utc_now,
)
from ingest.access.tokens import (
    admission_enforce,
    bearer_token,
    body_encoding_check,
    rate_limit_headers,
    request_admit_unsigned,
    token_authenticate,
)
from ingest.errors import (
    ApiError,
    BadRequest,
    PayloadTooLarge,
    QuotaExceeded,
    ServiceBusy,
    StorageUnavailable,
    TooManyStreams,
    Unauthorized,
    error_body,
)
from ingest.families import malti, streams
from ingest.models import Event, Outcome, Stream
from ingest.negotiation import MachineApi
from ingest.retention.archive import STORAGE_ERRORS
from ingest.retention.erasure import ErasureBusy, user_events_erase
from ingest.storage.schema import BatchFormatError, batch_check, batch_decode
from ingest.storage.services import events_accept, nonce_claim_in_database, nonce_key, nonce_release, outcomes_count

_encode = msgspec.json.Encoder().encode
Kind = Outcome.Kind


def _batch_size_header(meta) -> int | None:
    value = meta.get("HTTP_X_BATCH_SIZE")
    if value is None:
        return None
    count = verification.count_header(value)
    if count is None:
        raise BadRequest("X-Batch-Size must be a non-negative integer")
    return count


def _declared_events(meta) -> int:
    """How many events a request refused before parsing carried, by its own account (bounded)."""
    count = verification.count_header(meta.get("HTTP_X_BATCH_SIZE"))
    return 1 if count is None else min(count, settings.INGEST_MAX_BATCH_SIZE)


class IngestApi(MachineApi):
    """``POST /v1/ingest/{org_id}/{app_id}``: a signed batch of telemetry-kit events."""

    plain_methods = frozenset({"POST"})

    def post(self, request, org_id: str, app_id: str):
        meta = request.META
        try:
            verification.content_length_check(meta)
            headers = verification.signed_headers(meta)
            target = ingest_target_get(org_public_id=org_id, app_public_id=app_id)
            if target is None:
                raise Unauthorized("Invalid credentials or signature")
            body = verification.body_read(request)
            key = verification.key_verify(target, headers, body)
        except ApiError as error:
            outcomes_record(organization_id=0, application_id=0, counts=Counter({(Kind.REFUSED, error.code): 1}))
            raise

        replay_key = nonce_key(target.application_id, headers.replay_key)
        do_not_track = meta.get("HTTP_DNT", "").strip() == "1"
        declared = verification.count_header(meta.get("HTTP_X_BATCH_SIZE"))
        admission = request_admit(
            target=target,
            nonce_key=replay_key,
            nonce_ttl=settings.SECURITY_NONCE_TTL,
            reserve=None if do_not_track or declared is None else min(declared, settings.INGEST_MAX_BATCH_SIZE),
        )
        fresh = (
            admission.nonce_fresh
            if admission
            else nonce_claim_in_database(key=replay_key, ttl=settings.SECURITY_NONCE_TTL)
        )
        if not fresh:
            outcomes_count(target=target, counts=Counter({(Kind.REFUSED, "nonce_reused"): 1}))
            raise Unauthorized("X-Nonce was already used")
        if admission and admission.credentials_generation != target.generation:
            # Credentials changed somewhere since this process cached them: verify against the database.
            fresh_target = ingest_target_get(org_public_id=org_id, app_public_id=app_id, fresh=True)
            try:
                if fresh_target is None:
                    raise Unauthorized("Invalid credentials or signature")
                key = verification.key_verify(fresh_target, headers, body)
            except Unauthorized:
                quota_release(target=target, unused=admission.reserved or 0)
                raise
            target = fresh_target
        credential_touch(credential_id=key.credential_id)

        limit_headers = rate_limit_headers(admission)
        admission_enforce(target=target, admission=admission, refused=_declared_events(meta))
        try:
            response = self._ingest(meta, target, body, admission, do_not_track, key.service_name)
        except ApiError as error:
            error.headers = {**limit_headers, **error.headers}
            raise
        except Exception:
            # A server-side failure: the client will resend, so give back its nonce.
            nonce_release(key=replay_key)
            raise
        for name, value in limit_headers.items():
            response[name] = value
        return response

    def _ingest(
        self,
        meta,
        target: IngestTarget,
        body: bytes,
        admission: Admission | None,
        do_not_track: bool,
        bound_service: str,
    ):
        if do_not_track:
            outcomes_count(target=target, counts=Counter({(Kind.DNT, ""): _declared_events(meta)}))
            return HttpResponse(status=204)
        reserved = admission.reserved if admission else None
        try:
            verification.content_type_check(meta)
            body_encoding_check(meta)
            events = _batch_decode(body)
            if len(events) > settings.INGEST_MAX_BATCH_SIZE:
                raise PayloadTooLarge(f"Batch has {len(events)} events; the limit is {settings.INGEST_MAX_BATCH_SIZE}")
            declared = _batch_size_header(meta)
            if declared is not None and declared != len(events):
                raise BadRequest(f"X-Batch-Size is {declared} but the body has {len(events)} events")
            max_age_days = settings.INGEST_MAX_EVENT_AGE_DAYS
            checked = batch_check(
                events,
                now=timezone.now(),
                max_age=timedelta(days=max_age_days) if max_age_days else None,
                max_depth=settings.INGEST_MAX_JSON_DEPTH,
            )
            verification.service_binding_check(service=bound_service, checked=checked)
        except ApiError as error:
            outcomes_count(
                target=target,
                counts=Counter({(Kind.INVALID, error.code): _declared_events(meta)}),
                quota_unused=reserved or 0,
            )
            raise
        except Exception:
            if reserved:
                quota_release(target=target, unused=reserved)
            raise
        accepted = events_accept(
            target=target,
            checked=checked,
            reserved=reserved,
            sdk_version=meta.get("HTTP_X_SDK_VERSION", "")[:100] or None,
        )
        if accepted.wanted and not accepted.granted:
            raise QuotaExceeded(
                "The organization's monthly event quota is spent",
                headers={"Retry-After": str(seconds_to_month_end(utc_now()))},
            )
        return batch_response(total=len(events), errors=accepted.errors)


def _batch_decode(body: bytes):
    try:
        return batch_decode(body)
    except BatchFormatError as error:
        raise BadRequest(str(error)) from None


def batch_response(*, total: int, errors: list) -> HttpResponse:
    rejected = len(errors)
    accepted = total - rejected
    if rejected == 0:
        status, code, message = "success", 200, f"{accepted} of {total} events accepted"
    elif accepted:
        status, code, message = "partial", 207, f"{accepted} of {total} events accepted, {rejected} rejected"
    else:
        status, code, message = "rejected", 422, f"All {total} events were rejected"
    body = {
        "status": status,
        "accepted": accepted,
        "rejected": rejected,
        "message": message,
        "errors": [error.as_dict() for error in errors],
    }
    if code == 422:
        body.update(error_body("validation_error", message))
    # Rendered here rather than by DRF's renderer: the same JSON, at a fraction of the cost per request.
    return HttpResponse(_encode(body), status=code, content_type="application/json")


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

    def post(self, request, org_id: str, app_id: str):
        meta = request.META
        token = bearer_token(meta, "HTTP_X_API_KEY")
        target = token_authenticate(token=token, org_public_id=org_id, app_public_id=app_id)
        admission = request_admit_unsigned(target=target, events=None)
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
        body = streams.MeteredRead(verification.body_stream(request._request).read)
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

    def post(self, request, org_id: str, app_id: str):
        meta = request.META
        verification.content_length_check(meta)
        headers = verification.signed_headers(meta)
        if headers.bearer is None:
            raise Unauthorized("Authorization: Bearer <the application's API token> is required")
        target = ingest_target_get(org_public_id=org_id, app_public_id=app_id, fresh=True)
        if target is None:
            raise Unauthorized("Invalid credentials or signature")
        body = verification.body_read(request._request)
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
        except STORAGE_ERRORS:
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


class MaltiIngestApi(MachineApi):
    """``POST /api/v1/ingest``: a batch of Malti request records, by ``X-API-Key`` (COMPAT.md section 4).

    The Malti client drops a batch on any answer but 200, and never resends it: so a batch is stored
    whole or not at all, and 200 comes only once every record is committed. A batch that the
    month's quota admits only in part is refused whole (429), since a 200 would tell the client
    that records we did not store were delivered.
    """

    def post(self, request):
        meta = request.META
        token = bearer_token(meta, "HTTP_X_API_KEY")
        target = token_authenticate(token=token)
        admission = request_admit_unsigned(target=target, events=None)
        limit_headers = rate_limit_headers(admission)
        try:
            response = self._ingest(request, target, verification.bound_service(target, token))
        except ApiError as error:
            error.headers = {**limit_headers, **error.headers}
            raise
        for name, value in limit_headers.items():
            response[name] = value
        return response

    def _ingest(self, request, target: IngestTarget, key_service: str) -> HttpResponse:
        meta = request.META
        records = None
        try:
            verification.content_length_check(meta)
            body = verification.body_read(request._request)
            body_encoding_check(meta)
            max_age_days = settings.INGEST_MAX_EVENT_AGE_DAYS
            records = malti.records_decode(
                body,
                max_records=settings.INGEST_MAX_BATCH_SIZE,
                now=timezone.now(),
                max_age=timedelta(days=max_age_days) if max_age_days else None,
            )
            service = malti.batch_service(records, key_service=key_service)
        except malti.InvalidRecords as error:  # every record of the batch is refused, not the bad ones alone
            outcomes_count(target=target, counts=Counter({(Kind.INVALID, error.code): error.total}))
            return _malti_invalid(error)
        except ApiError as error:
            refused = len(records) if records else 1  # an unread batch counts as one
            outcomes_count(target=target, counts=Counter({(Kind.INVALID, error.code): refused}))
            raise
        wanted = len(records)
        accepted = malti.records_store(
            target=target, records=records, sdk_version=meta.get("HTTP_USER_AGENT", "")[:100] or None
        )
        if accepted.errors:  # refused by the database although well formed: say which, never 200
            return _malti_invalid(
                malti.InvalidRecords([malti.RecordError(e.index, None, e.message) for e in accepted.errors], wanted),
                stored=accepted.stored,
            )
        return HttpResponse(
            _encode({"message": f"{wanted} requests stored", "count": wanted, "service": service}),
            content_type="application/json",
        )


def _malti_invalid(error, *, stored: int = 0) -> HttpResponse:
    body = {
        **error_body(error.code, error.message),
        "count": stored,
        "errors": [record_error.as_dict() for record_error in error.errors[:100]],
    }
    return HttpResponse(_encode(body), status=error.status, content_type="application/json")

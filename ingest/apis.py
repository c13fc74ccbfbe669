"""The ingest API: thin views over verification, the schema and the storage service."""

from datetime import timedelta

import msgspec
from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import ingest_target_get
from accounts.services import credential_touch
from ingest import verification
from ingest.negotiation import JsonOnly
from ingest.errors import BadRequest, PayloadTooLarge, Unauthorized, error_body
from ingest.schema import BatchFormatError, batch_check, batch_decode
from ingest.services import events_store, nonce_claim, nonce_release

_encode = msgspec.json.Encoder().encode


def _batch_size_header(meta) -> int | None:
    value = meta.get("HTTP_X_BATCH_SIZE")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise BadRequest("X-Batch-Size must be a non-negative integer")
    return int(value)


class IngestApi(APIView):
    """``POST /v1/ingest/{org_id}/{app_id}``: a signed batch of telemetry-kit events."""

    content_negotiation_class = JsonOnly

    def post(self, request, org_id: str, app_id: str):
        meta = request.META
        verification.content_length_check(meta)
        headers = verification.signed_headers(meta)
        target = ingest_target_get(org_public_id=org_id, app_public_id=app_id)
        if target is None:
            raise Unauthorized("Invalid credentials or signature")
        body = verification.body_read(request._request)
        key = verification.key_verify(target, headers, body)
        claim = nonce_claim(application_id=target.application_id, nonce=headers.replay_key,
                            ttl=settings.SECURITY_NONCE_TTL)
        if not claim.fresh:
            raise Unauthorized("X-Nonce was already used")
        if claim.credentials_generation != target.generation:
            # Credentials changed somewhere since this process cached them: verify against the database.
            target = ingest_target_get(org_public_id=org_id, app_public_id=app_id, fresh=True)
            if target is None:
                raise Unauthorized("Invalid credentials or signature")
            key = verification.key_verify(target, headers, body)
        credential_touch(credential_id=key.credential_id)
        try:
            return self._ingest(meta, target, body)
        except Exception:
            nonce_release(application_id=target.application_id, nonce=headers.replay_key)
            raise

    def _ingest(self, meta, target, body):
        if meta.get("HTTP_DNT", "").strip() == "1":
            return Response(status=204)
        verification.content_type_check(meta)
        try:
            raw_events = batch_decode(body)
        except BatchFormatError as exc:
            raise BadRequest(str(exc)) from None
        if len(raw_events) > settings.INGEST_MAX_BATCH_SIZE:
            raise PayloadTooLarge(
                f"Batch has {len(raw_events)} events; the limit is {settings.INGEST_MAX_BATCH_SIZE}")
        declared = _batch_size_header(meta)
        if declared is not None and declared != len(raw_events):
            raise BadRequest(f"X-Batch-Size is {declared} but the body has {len(raw_events)} events")

        max_age_days = settings.INGEST_MAX_EVENT_AGE_DAYS
        checked = batch_check(raw_events, now=timezone.now(),
                              max_age=timedelta(days=max_age_days) if max_age_days else None)
        result = events_store(target=target, events=checked.valid, indexes=checked.indexes,
                              sdk_version=meta.get("HTTP_X_SDK_VERSION", "")[:100] or None)
        errors = sorted(checked.errors + result.errors, key=lambda error: error.index)
        return _batch_response(total=len(raw_events), errors=errors)


def _batch_response(*, total: int, errors: list) -> Response:
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

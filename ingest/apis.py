"""The ingest API: thin views over verification, admission, the schema and the storage service."""

from collections import Counter
from datetime import timedelta

import msgspec
from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from accounts.selectors import IngestTarget, application_for, ingest_target_get
from accounts.services import Source, credential_touch
from ingest import verification
from ingest.admission import (Admission, outcomes_record, quota_release, quota_reserve, request_admit,
                              seconds_to_month_end, utc_now)
from ingest.errors import (ApiError, BadRequest, PayloadTooLarge, QuotaExceeded, RateLimited, StorageUnavailable,
                           Unauthorized, error_body)
from ingest.archive import STORAGE_ERRORS
from ingest.erasure import user_events_erase
from ingest.models import Event, Outcome
from ingest.negotiation import JsonOnly
from ingest.openapi import ingest_schema
from ingest.schema import BatchFormatError, EventError, batch_check, batch_decode
from ingest.services import events_store, nonce_claim_in_database, nonce_key, nonce_release
from telemetry.metrics import EVENTS_FAILED, EVENTS_INGESTED

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


class IngestApi(APIView):
    """``POST /v1/ingest/{org_id}/{app_id}``: a signed batch of telemetry-kit events."""

    content_negotiation_class = JsonOnly

    @ingest_schema  # sets an attribute for /api/schema/; the method runs as it is
    def post(self, request, org_id: str, app_id: str):
        meta = request.META
        try:
            verification.content_length_check(meta)
            headers = verification.signed_headers(meta)
            target = ingest_target_get(org_public_id=org_id, app_public_id=app_id)
            if target is None:
                raise Unauthorized("Invalid credentials or signature")
            body = verification.body_read(request._request)
            key = verification.key_verify(target, headers, body)
        except ApiError as error:
            outcomes_record(organization_id=0, application_id=0, counts=Counter({(Kind.REFUSED, error.code): 1}))
            raise

        replay_key = nonce_key(target.application_id, headers.replay_key)
        do_not_track = meta.get("HTTP_DNT", "").strip() == "1"
        declared = verification.count_header(meta.get("HTTP_X_BATCH_SIZE"))
        admission = request_admit(
            target=target, nonce_key=replay_key, nonce_ttl=settings.SECURITY_NONCE_TTL,
            reserve=None if do_not_track or declared is None else min(declared, settings.INGEST_MAX_BATCH_SIZE))
        fresh = admission.nonce_fresh if admission else nonce_claim_in_database(
            key=replay_key, ttl=settings.SECURITY_NONCE_TTL)
        if not fresh:
            self._count(target, Counter({(Kind.REFUSED, "nonce_reused"): 1}))
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

        limit_headers = _rate_limit_headers(admission)
        if admission and admission.verdict == "rate_limited":
            self._count(target, Counter({(Kind.RATE_LIMITED, ""): _declared_events(meta)}))
            raise RateLimited(f"More than {admission.rate_limit} requests a minute for this application",
                              headers={**limit_headers, "Retry-After": str(admission.rate_reset)})
        if admission and admission.verdict == "quota_spent":
            self._count(target, Counter({(Kind.OVER_QUOTA, ""): _declared_events(meta)}))
            raise QuotaExceeded("The organization's monthly event quota is spent",
                                headers={**limit_headers, "Retry-After": str(admission.quota_reset)})
        try:
            response = self._ingest(meta, target, body, admission, do_not_track)
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

    def _count(self, target: IngestTarget, counts: Counter, quota_unused: int = 0) -> None:
        for (outcome, reason), count in counts.items():
            if count:
                EVENTS_FAILED.labels(outcome, reason).inc(count)
        outcomes_record(organization_id=target.organization_id, application_id=target.application_id,
                        counts=counts, quota_unused=quota_unused, target=target)

    def _ingest(self, meta, target: IngestTarget, body: bytes, admission: Admission | None, do_not_track: bool):
        if do_not_track:
            self._count(target, Counter({(Kind.DNT, ""): _declared_events(meta)}))
            return HttpResponse(status=204)
        # Quota reserved and not yet settled; given back if this request fails on the server's side,
        # so the client's retry finds it. (A view instance serves one request.)
        self._unsettled = admission.reserved or 0 if admission else 0
        try:
            return self._store(meta, target, body, admission.reserved if admission else None)
        except Exception:
            if self._unsettled:
                quota_release(target=target, unused=self._unsettled)
            raise

    def _settle(self, target: IngestTarget, counts: Counter, reserved: int, stored: int) -> None:
        self._unsettled = 0
        # Quota is spent only by events stored: what was reserved for others is given back.
        self._count(target, counts, quota_unused=reserved - stored)

    def _store(self, meta, target: IngestTarget, body: bytes, reserved: int | None):
        try:
            verification.content_type_check(meta)
            events = _batch_decode(body)
            if len(events) > settings.INGEST_MAX_BATCH_SIZE:
                raise PayloadTooLarge(
                    f"Batch has {len(events)} events; the limit is {settings.INGEST_MAX_BATCH_SIZE}")
            declared = _batch_size_header(meta)
            if declared is not None and declared != len(events):
                raise BadRequest(f"X-Batch-Size is {declared} but the body has {len(events)} events")
        except ApiError as error:
            self._settle(target, Counter({(Kind.INVALID, error.code): _declared_events(meta)}), reserved or 0, 0)
            raise

        max_age_days = settings.INGEST_MAX_EVENT_AGE_DAYS
        checked = batch_check(events, now=timezone.now(),
                              max_age=timedelta(days=max_age_days) if max_age_days else None)
        wanted = len(checked.valid)
        if reserved is None:
            reserved = granted = self._unsettled = quota_reserve(target=target, wanted=wanted)
        else:
            granted = min(wanted, reserved)
        over_quota = [EventError(index, str(event.event_id), "over_quota",
                                 "The organization's monthly event quota is spent")
                      for index, event in zip(checked.indexes[granted:], checked.valid[granted:])]
        result = events_store(target=target, events=checked.valid[:granted], indexes=checked.indexes[:granted],
                              sdk_version=meta.get("HTTP_X_SDK_VERSION", "")[:100] or None)

        EVENTS_INGESTED.inc(result.stored)
        # Accepted events are counted from the events table (rollups_update), not here.
        counts = Counter({(Kind.OVER_QUOTA, ""): len(over_quota),
                          (Kind.DUPLICATE, ""): granted - result.stored - len(result.errors) + checked.duplicates})
        for error in checked.errors + result.errors:
            counts[(Kind.INVALID, error.error)] += 1
        self._settle(target, counts, reserved, result.stored)
        if wanted and not granted:
            raise QuotaExceeded("The organization's monthly event quota is spent",
                                headers={"Retry-After": str(seconds_to_month_end(utc_now()))})
        errors = sorted(checked.errors + result.errors + over_quota, key=lambda error: error.index)
        return _batch_response(total=len(events), errors=errors)


def _batch_decode(body: bytes):
    try:
        return batch_decode(body)
    except BatchFormatError as error:
        raise BadRequest(str(error)) from None


def _rate_limit_headers(admission: Admission | None) -> dict[str, str]:
    if admission is None or admission.rate_limit is None:
        return {}
    return {"RateLimit-Limit": str(admission.rate_limit), "RateLimit-Remaining": str(admission.rate_remaining),
            "RateLimit-Reset": str(admission.rate_reset)}


def _batch_response(*, total: int, errors: list) -> HttpResponse:
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


class _ErasureRequest(msgspec.Struct, forbid_unknown_fields=True):
    user_id: str


_decode_erasure = msgspec.json.Decoder(_ErasureRequest).decode


class ErasureApi(APIView):
    """``POST /v1/erasure/{org_id}/{app_id}`` with ``{"user_id": "..."}``: erases that user id's
    events from the application, stored and archived. Signed as an ingest request, and the
    application's API token must come as the bearer; answers with the receipt kept in the audit log."""

    content_negotiation_class = JsonOnly

    @extend_schema(exclude=True)  # an operator's tool, documented in the README, not part of the SDKs' API
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
        if not nonce_claim_in_database(key=nonce_key(target.application_id, headers.replay_key),
                                       ttl=settings.SECURITY_NONCE_TTL):
            raise Unauthorized("X-Nonce was already used")
        verification.content_type_check(meta)
        try:
            user_id = _decode_erasure(body).user_id
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise BadRequest(f'Body must be {{"user_id": "<user id>"}}: {error}') from None
        if not 0 < len(user_id) <= Event._meta.get_field("user_id").max_length or "\x00" in user_id:
            raise BadRequest("user_id must be 1 to 71 characters, none of them NUL")
        try:
            erasure = user_events_erase(application=application_for(target), user_id=user_id, via="api",
                                        source=Source.from_request(request), credential=f"#{key.credential_id}")
        except STORAGE_ERRORS:
            # What was erased stays erased; the retry finishes the rest and writes the receipt.
            raise StorageUnavailable("The archive storage cannot be reached; retry later",
                                     headers={"Retry-After": "60"}) from None
        body = {"status": "erased" if not erasure.archives_unreadable else "partial",
                "receipt_id": erasure.receipt.pk, "erased_at": erasure.receipt.created_at.isoformat(),
                "events_erased": erasure.events, "archived_events_erased": erasure.archived_events,
                "archives_rewritten": erasure.archives_rewritten,
                "archives_unreadable": len(erasure.archives_unreadable)}
        return HttpResponse(_encode(body), content_type="application/json")

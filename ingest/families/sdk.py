"""The telemetry-kit SDKs: signed batches of events (``POST /v1/ingest/{org_id}/{app_id}``)."""

from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone

from accounts.ingest_targets import ingest_target_get
from ingest.access import verification
from ingest.access.tokens import body_encoding_check
from ingest.access.verification import Caller
from ingest.errors import BadRequest, PayloadTooLarge, Unauthorized
from ingest.models import Outcome
from ingest.pipeline import Decoded, Family, Intake
from ingest.storage.schema import BatchFormatError, batch_check, batch_decode
from ingest.storage.services import nonce_key, outcomes_count


class SdkFamily(Family):
    def declared_events(self, intake: Intake) -> int | None:
        if _do_not_track(intake):
            return None  # nothing is stored, so nothing is reserved or refused for the quota
        return verification.count_header(intake.meta.get("HTTP_X_BATCH_SIZE"))

    def authenticate(self, intake: Intake) -> Caller:
        headers = verification.signed_headers(intake.meta)
        target = ingest_target_get(
            org_public_id=intake.ids["org_id"], app_public_id=intake.ids["app_id"], fresh=intake.ids.get("fresh", False)
        )
        if target is None:
            raise Unauthorized("Invalid credentials or signature")
        key = verification.key_verify(target, headers, intake.body)
        return Caller(
            target=target,
            credential_id=key.credential_id,
            bound_service=key.service_name,
            replay_key=nonce_key(target.application_id, headers.replay_key),
        )

    def skip(self, intake: Intake, caller: Caller) -> HttpResponse | None:
        if not _do_not_track(intake):
            return None
        declared = verification.count_header(intake.meta.get("HTTP_X_BATCH_SIZE"))
        events = 1 if declared is None else min(declared, settings.INGEST_MAX_BATCH_SIZE)
        outcomes_count(target=caller.target, counts=Counter({(Outcome.Kind.DNT, ""): events}))
        return HttpResponse(status=204)

    def decode(self, intake: Intake, caller: Caller) -> Decoded:
        meta = intake.meta
        verification.content_type_check(meta)
        body_encoding_check(meta)
        try:
            events = batch_decode(intake.body)
        except BatchFormatError as error:
            raise BadRequest(str(error)) from None
        if len(events) > settings.INGEST_MAX_BATCH_SIZE:
            raise PayloadTooLarge(f"Batch has {len(events)} events; the limit is {settings.INGEST_MAX_BATCH_SIZE}")
        if "HTTP_X_BATCH_SIZE" in meta:
            if intake.declared is None:
                raise BadRequest("X-Batch-Size must be a non-negative integer")
            if intake.declared != len(events):
                raise BadRequest(f"X-Batch-Size is {intake.declared} but the body has {len(events)} events")
        max_age_days = settings.INGEST_MAX_EVENT_AGE_DAYS
        checked = batch_check(
            events,
            now=timezone.now(),
            max_age=timedelta(days=max_age_days) if max_age_days else None,
            max_depth=settings.INGEST_MAX_JSON_DEPTH,
        )
        return Decoded(checked=checked, total=len(events))

    def sdk_version(self, intake: Intake) -> str | None:
        return intake.meta.get("HTTP_X_SDK_VERSION", "")[:100] or None


def _do_not_track(intake: Intake) -> bool:
    return intake.meta.get("HTTP_DNT", "").strip() == "1"

"""The one intake path: every client family's batch goes through the same steps, in this order.

1. length: a declared body over the payload limit is refused before any of it is read
2. body: read whole, at most the payload limit
3. authentication: the family's (a signature, or an API token), giving the ``Caller``
4. admission: the nonce (signed families), the rate limit, the month's quota
5. decode: the family's, into a ``CheckedBatch``, then the key's service binding
6. ``events_accept`` (or the family's ``store``, which ends there)
7. answer: the family's, with the rate-limit headers; a credential is marked used only by a
   request that was accepted
8. outcomes: a refusal at steps 1–3 counts as refused for no application, at step 4 as rate
   limited or over quota, at step 5 as invalid; accepted and duplicate events are counted by
   ``events_accept`` and the rollups

A family is a ``Family`` subclass (ingest/families/): how it authenticates, how it decodes a body,
how it answers and how it words a refusal. Streams (ingest/families/streams.py) read an open-ended
body as many small batches, so they run steps 3–7 once per batch with the same functions.
"""

from collections import Counter
from dataclasses import dataclass

import msgspec
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from accounts.services import credential_touch
from ingest.access import verification
from ingest.access.admission import (
    Admission,
    outcomes_record,
    quota_release,
    request_admit,
    seconds_to_month_end,
    utc_now,
)
from ingest.access.tokens import admission_enforce, bearer_token, rate_limit_headers, token_authenticate
from ingest.access.verification import Caller
from ingest.errors import ApiError, QuotaExceeded, Unauthorized, error_body, error_response
from ingest.models import Outcome
from ingest.storage.schema import CheckedBatch, EventError
from ingest.storage.services import Accepted, events_accept, nonce_claim_in_database, nonce_release, outcomes_count
from telemetry.middleware import OUTAGE_MESSAGE, RETRY_AFTER_SECONDS, is_outage

Kind = Outcome.Kind
_encode = msgspec.json.Encoder().encode


@dataclass
class Intake:
    """One request on its way through ``intake``: what the steps so far found."""

    request: HttpRequest
    ids: dict  # the URL's ids (org_id, app_id), and fresh=True when credentials must be read again
    body: bytes = b""
    declared: int | None = None  # the events the request says it carries (the SDK's X-Batch-Size)

    @property
    def meta(self) -> dict:
        return self.request.META


@dataclass
class Decoded:
    """A decoded request: its checked events and how many items it carried in all."""

    checked: CheckedBatch
    total: int
    context: object = None  # what the family's answer needs beyond the events (Malti: the service)


class Family:
    """One client family's part in ``intake``. The defaults suit a JSON API answering ``error_body``."""

    def declared_events(self, intake: Intake) -> int | None:
        """Events the request says it carries (read once), reserved from the quota at admission;
        None: reserve once they are decoded."""
        return None

    def authenticate(self, intake: Intake) -> Caller:
        raise NotImplementedError

    def skip(self, intake: Intake, caller: Caller) -> HttpResponse | None:
        """An answer that ends the request once admitted, before decoding (the SDK's Do Not Track)."""
        return None

    def decode(self, intake: Intake, caller: Caller) -> Decoded:
        raise NotImplementedError

    def store(self, intake: Intake, caller: Caller, decoded: Decoded, reserved: int | None) -> Accepted:
        return events_accept(
            target=caller.target, checked=decoded.checked, reserved=reserved, sdk_version=self.sdk_version(intake)
        )

    def sdk_version(self, intake: Intake) -> str | None:
        return intake.meta.get("HTTP_USER_AGENT", "")[:100] or None

    def answer(self, intake: Intake, decoded: Decoded, accepted: Accepted) -> HttpResponse:
        return batch_response(total=decoded.total, errors=accepted.errors)

    def refuse(self, intake: Intake, error: ApiError) -> HttpResponse:
        return error_response(error)

    def invalid_events(self, intake: Intake, error: ApiError) -> int:
        """How many events a request refused at decoding is counted as: as many as it declared, or
        as the error says it carried, else one."""
        if (events := getattr(error, "events", None)) is not None:
            return events
        return 1 if intake.declared is None else min(intake.declared, settings.INGEST_MAX_BATCH_SIZE)

    # OTLP's exporters read an outage only from the protocol's own error body.
    answers_outages = False


class TokenFamily(Family):
    """A family whose clients send an application's API token (``Authorization: Bearer`` or
    ``X-API-Key``); with ids in the URL, the token must be that application's."""

    def authenticate(self, intake: Intake) -> Caller:
        return token_authenticate(
            token=bearer_token(intake.meta, "HTTP_X_API_KEY"),
            org_public_id=intake.ids.get("org_id"),
            app_public_id=intake.ids.get("app_id"),
            fresh=intake.ids.get("fresh", False),
            check_generation=False,  # admission reads the credentials generation
        )


def batch_response(*, total: int, errors: list[EventError]) -> HttpResponse:
    """The batch answer of the SDK and Lambda families: 200, 207 (some refused) or 422 (all)."""
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
    return HttpResponse(_encode(body), status=code, content_type="application/json")


class Outage(ApiError):
    status = 503
    code = "service_unavailable"


def intake(family: Family, request: HttpRequest, **ids) -> HttpResponse:
    """Runs one request of ``family`` through the steps above; every refusal is the family's answer."""
    intake = Intake(request=request, ids=ids)
    limit_headers: dict[str, str] = {}
    caller = None
    try:
        try:
            verification.content_length_check(request.META)
            intake.body = verification.body_read(request)
            caller = family.authenticate(intake)
        except ApiError as error:
            outcomes_record(organization_id=0, application_id=0, counts=Counter({(Kind.REFUSED, error.code): 1}))
            raise
        intake.declared = family.declared_events(intake)
        admission, caller = _admit(family, intake, caller)
        limit_headers = rate_limit_headers(admission)
        response = _accept(family, intake, caller, admission)
    except ApiError as error:
        error.headers = {**limit_headers, **error.headers}
        return family.refuse(intake, error)
    except Exception as exc:
        if caller is not None and caller.replay_key:
            nonce_release(key=caller.replay_key)  # a failure of ours: the client resends with this nonce
        # An outage is answered by the service-wide 503 middleware, or by a family that words it.
        if not (family.answers_outages and is_outage(exc)):
            raise
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return family.refuse(intake, Outage(OUTAGE_MESSAGE, headers=retry))
    if response.status_code < 400:  # the credential signed a request that was accepted
        credential_touch(credential_id=caller.credential_id)
    for name, value in limit_headers.items():
        response[name] = value
    return response


def _admit(family: Family, intake: Intake, caller: Caller) -> tuple[Admission | None, Caller]:
    """Admission; raises, with the request's events counted, when it is refused. A signed caller's
    nonce is claimed here, and every caller is authenticated again from the database if
    credentials changed anywhere since this process cached them (a revocation takes effect at once)."""
    reserve = None if intake.declared is None else min(intake.declared, settings.INGEST_MAX_BATCH_SIZE)
    admission = request_admit(
        target=caller.target,
        nonce_key=caller.replay_key or "",
        nonce_ttl=settings.SECURITY_NONCE_TTL if caller.replay_key else 0,
        reserve=reserve,
    )
    if caller.replay_key:
        fresh = (
            admission.nonce_fresh
            if admission
            else nonce_claim_in_database(key=caller.replay_key, ttl=settings.SECURITY_NONCE_TTL)
        )
        if not fresh:
            outcomes_count(target=caller.target, counts=Counter({(Kind.REFUSED, "nonce_reused"): 1}))
            raise Unauthorized("X-Nonce was already used")
    if admission and admission.credentials_generation != caller.target.generation:
        intake.ids = {**intake.ids, "fresh": True}
        try:
            caller = family.authenticate(intake)
        except ApiError:
            quota_release(target=caller.target, unused=admission.reserved or 0)
            raise
    admission_enforce(target=caller.target, admission=admission, refused=reserve or 1)
    return admission, caller


def _accept(family: Family, intake: Intake, caller: Caller, admission: Admission | None) -> HttpResponse:
    target, reserved = caller.target, admission.reserved if admission else None
    if (answer := family.skip(intake, caller)) is not None:
        if reserved:
            quota_release(target=target, unused=reserved)
        return answer
    try:
        decoded = family.decode(intake, caller)
        verification.service_binding_check(service=caller.bound_service, checked=decoded.checked)
    except ApiError as error:
        outcomes_count(
            target=target,
            counts=Counter({(Kind.INVALID, error.code): family.invalid_events(intake, error)}),
            quota_unused=reserved or 0,
        )
        raise
    except Exception:
        if reserved:
            quota_release(target=target, unused=reserved)
        raise
    accepted = family.store(intake, caller, decoded, reserved)
    if accepted.wanted and not accepted.granted:
        raise QuotaExceeded(
            "The organization's monthly event quota is spent",
            headers={"Retry-After": str(seconds_to_month_end(utc_now()))},
        )
    return family.answer(intake, decoded, accepted)

"""API tokens, for the clients that do not sign their requests (streams, AWS Lambda, OTLP, Malti),
and the admission helpers they share with the intake pipeline: rate-limit headers, refusals."""

from collections import Counter

from django.utils import timezone

from accounts.ingest_targets import IngestTarget, credentials_generation, ingest_target_get, token_owner
from ingest.access.admission import Admission, outcomes_record, request_admit
from ingest.access.verification import Caller
from ingest.errors import QuotaExceeded, RateLimited, Unauthorized, UnsupportedEncoding
from ingest.models import Outcome
from ingest.storage.services import outcomes_count
from telemetry.lib.crypto import token_hash

Kind = Outcome.Kind


def bearer_token(meta, *header_names: str) -> str | None:
    """The token of ``Authorization: Bearer ...`` or, failing that, of the first given header present
    (``"HTTP_X_API_KEY"`` and the like)."""
    authorization = meta.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for name in header_names:
        if value := meta.get(name, "").strip():
            return value
    return None


def body_encoding_check(meta, *, content_encoding: bool = True) -> None:
    """Refuses (415) a JSON body in another charset than UTF-8, the only one JSON has (RFC 8259),
    and with ``content_encoding`` a compressed one, which would otherwise be read as JSON as it is."""
    for parameter in meta.get("CONTENT_TYPE", "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedEncoding("JSON bodies must be UTF-8 (charset=utf-8 or none)")
    if content_encoding and meta.get("HTTP_CONTENT_ENCODING", "").strip().lower() not in ("", "identity"):
        raise UnsupportedEncoding("Content-Encoding must be identity or none")


def token_authenticate(
    *,
    token: str | None,
    org_public_id: str | None = None,
    app_public_id: str | None = None,
    fresh: bool = False,
    check_generation: bool = True,
) -> Caller:
    """The caller whose active credential has ``token``; with the ids given (a per-application
    URL), of that application only. Unknown ids, a wrong token and a missing one are answered alike,
    so ids cannot be probed; each refusal is counted as an outcome. A credential changed anywhere is
    seen at once: by the intake path's admission, which reads the credentials generation in its
    round trip, or here (``check_generation``, one GET) for callers that are not admitted first.
    Without Redis, within the target cache's seconds."""
    target = None
    if token:
        if org_public_id is None or app_public_id is None:
            owner = token_owner(token=token)
            if owner is not None:
                org_public_id, app_public_id = owner
        if org_public_id is not None and app_public_id is not None:
            target = ingest_target_get(org_public_id=org_public_id, app_public_id=app_public_id, fresh=fresh)
            if not fresh and check_generation and target is not None and target.generation != credentials_generation():
                target = ingest_target_get(org_public_id=org_public_id, app_public_id=app_public_id, fresh=True)
    if target is not None:
        digest = token_hash(token)
        for key in target.active_keys(timezone.now()):
            if key.token_hash == digest:
                return Caller(target=target, credential_id=key.credential_id, bound_service=key.service_name)
    error = Unauthorized("Missing or invalid API token" if token else "An API token is required")
    outcomes_record(organization_id=0, application_id=0, counts=Counter({(Kind.REFUSED, error.code): 1}))
    raise error


def rate_limit_headers(admission: Admission | None) -> dict[str, str]:
    if admission is None or admission.rate_limit is None:
        return {}
    return {
        "RateLimit-Limit": str(admission.rate_limit),
        "RateLimit-Remaining": str(admission.rate_remaining),
        "RateLimit-Reset": str(admission.rate_reset),
    }


def admission_enforce(*, target: IngestTarget, admission: Admission | None, refused: int) -> None:
    """Raises ``RateLimited`` or ``QuotaExceeded`` (with ``Retry-After``) when admission refused the
    request, after counting its ``refused`` events in the outcomes."""
    if admission is None or admission.verdict == "admitted":
        return
    headers = rate_limit_headers(admission)
    if admission.verdict == "rate_limited":
        outcomes_count(target=target, counts=Counter({(Kind.RATE_LIMITED, ""): refused}))
        raise RateLimited(
            f"More than {admission.rate_limit} requests a minute for this application",
            headers={**headers, "Retry-After": str(admission.rate_reset)},
        )
    outcomes_count(target=target, counts=Counter({(Kind.OVER_QUOTA, ""): refused}))
    raise QuotaExceeded(
        "The organization's monthly event quota is spent",
        headers={**headers, "Retry-After": str(admission.quota_reset)},
    )


def request_admit_unsigned(*, target: IngestTarget, events: int | None) -> Admission | None:
    """Applies the rate limit and reserves quota for ``events`` (None: reserve once they are known,
    through ``events_accept``); raises as ``admission_enforce`` does. None on the embedded default,
    which enforces neither."""
    admission = request_admit(target=target, reserve=events)
    admission_enforce(target=target, admission=admission, refused=events or 1)
    return admission

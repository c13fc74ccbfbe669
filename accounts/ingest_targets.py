"""The ingest target: what the ingest path knows of an application (its organization's limits and
its active keys), read from the accounts tables through a short per-process cache."""

import time
from dataclasses import dataclass
from datetime import datetime

from cryptography.fernet import InvalidToken
from django.utils import timezone

from accounts.models import Application, Credential
from accounts.selectors import credentials_in_force
from telemetry.lib import crypto
from telemetry.lib.errors import ServiceUnavailable
from telemetry.lib.redis import get_redis

# Each server process keeps what it read for this long, so ingest costs no query per request. With
# Redis, every credential change also bumps a generation counter that ingest reads in the same round
# trip as its nonce, so other processes drop a stale entry at once; the time limit is the backstop
# (and the only bound on the embedded default).
TARGET_CACHE_SECONDS = 5.0
CREDENTIALS_GENERATION_KEY = "tk:credentials:generation"
_TARGET_CACHE_MAX = 10_000
_target_cache: dict[tuple[str, str], tuple[float, "IngestTarget | None"]] = {}


class CredentialsKeyError(ServiceUnavailable):
    """Stored secrets cannot be decrypted: the server's key changed. An operator must fix it."""


@dataclass(frozen=True)
class IngestKey:
    credential_id: int
    token_hash: str
    hmac_secret: str
    expires_at: datetime | None
    service_name: str = ""  # Malti: the service this token's batches must name; "": any


@dataclass(frozen=True)
class IngestTarget:
    """What the ingest path needs to know about an application, with its active keys."""

    organization_id: int
    application_id: int
    keys: tuple[IngestKey, ...]
    generation: int | None  # the credentials generation when read; None without Redis
    requests_per_minute: int | None  # None: unlimited
    monthly_quota: int | None  # events accepted per calendar month (UTC), extra grant included; None: unlimited
    quota_refuses: bool  # False in monitor-only mode: counted, never refused

    def active_keys(self, now: datetime) -> tuple[IngestKey, ...]:
        return tuple(key for key in self.keys if key.expires_at is None or key.expires_at > now)


def ingest_targets_forget() -> None:
    """Drops this process's cached ingest targets, after a credential change made here."""
    _target_cache.clear()
    _token_cache.clear()


def credentials_generation() -> int | None:
    """The credentials generation counter in Redis, or None on the embedded default."""
    client = get_redis()
    return int(client.get(CREDENTIALS_GENERATION_KEY) or 0) if client is not None else None


def _ingest_target_read(org_public_id: str, app_public_id: str) -> "IngestTarget | None":
    # Read before the rows: a change that lands in between leaves an older number, never a newer one.
    generation = credentials_generation()
    credentials = list(
        credentials_in_force(
            Credential.objects.filter(
                application__public_id=app_public_id,
                application__organization__public_id=org_public_id,
            )
        ).select_related("application__organization__tier")
    )
    if not credentials:
        return None
    try:
        keys = tuple(
            IngestKey(
                credential_id=credential.pk,
                token_hash=credential.token_hash,
                hmac_secret=crypto.decrypt(credential.secret_encrypted),
                expires_at=credential.expires_at,
                service_name=credential.service_name,
            )
            for credential in credentials
        )
    except InvalidToken:
        raise CredentialsKeyError(
            f"Cannot decrypt the HMAC secrets of application {app_public_id}: APP_SECURITY__CREDENTIALS_KEYS "
            "(or SECRET_KEY, which it defaults to) is not the key they were encrypted with"
        ) from None
    organization = credentials[0].application.organization
    return IngestTarget(
        application_id=credentials[0].application_id,
        organization_id=organization.pk,
        keys=keys,
        generation=generation,
        requests_per_minute=None if organization.tier.is_unlimited else organization.tier.requests_per_minute,
        monthly_quota=organization.monthly_quota(timezone.now()),
        quota_refuses=not organization.quota_monitor_only,
    )


def _read_through(cache: dict, key, read, *, fresh: bool = False):
    """``read()``, kept in ``cache`` for ``TARGET_CACHE_SECONDS`` (a bounded per-process cache, emptied
    whole when full); ``fresh`` reads again whatever is kept."""
    now = time.monotonic()
    cached = cache.get(key)
    if cached is not None and cached[0] > now and not fresh:
        return cached[1]
    value = read()
    if len(cache) >= _TARGET_CACHE_MAX:
        cache.clear()
    cache[key] = (now + TARGET_CACHE_SECONDS, value)
    return value


def ingest_target_get(*, org_public_id: str, app_public_id: str, fresh: bool = False) -> IngestTarget | None:
    """The application ``app_public_id`` of organization ``org_public_id`` with its active credentials.

    None when either id is unknown, they do not belong together, or no credential is active: the
    caller answers all of these alike, so ids cannot be probed. Read through a short per-process
    cache (``TARGET_CACHE_SECONDS``) unless ``fresh``.
    """
    return _read_through(
        _target_cache,
        (org_public_id, app_public_id),
        lambda: _ingest_target_read(org_public_id, app_public_id),
        fresh=fresh,
    )


_token_cache: dict[str, tuple[float, tuple[str, str] | None]] = {}


def token_owner(*, token: str) -> tuple[str, str] | None:
    """The (organization, application) public ids whose active credential has this API token, for
    clients that name no application in their URL; None for an unknown, revoked or expired token.
    Read through the same short per-process cache as ``ingest_target_get``."""
    digest = crypto.token_hash(token)
    return _read_through(
        _token_cache,
        digest,
        lambda: (
            credentials_in_force(Credential.objects.filter(token_hash=digest))
            .values_list("application__organization__public_id", "application__public_id")
            .first()
        ),
    )


def application_for(target: IngestTarget) -> Application:
    """The application a verified request is for, with its organization."""
    return Application.objects.select_related("organization").get(pk=target.application_id)

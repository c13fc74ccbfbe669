"""Reads for organizations, applications and credentials."""

import time
from dataclasses import dataclass
from datetime import datetime

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import Application, Credential, Invitation, Organization, ReadToken, User
from telemetry.lib import crypto, ids
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


def _active_q(prefix: str = "") -> Q:
    return Q(**{f"{prefix}revoked_at__isnull": True}) & (
        Q(**{f"{prefix}expires_at__isnull": True}) | Q(**{f"{prefix}expires_at__gt": timezone.now()})
    )


def _active(credentials):
    return credentials.filter(_active_q())


def credentials_active(*, application: Application):
    """Credentials of ``application`` that verify requests now."""
    return _active(application.credentials.all())


def applications_with_active_credential_counts(applications):
    """``applications`` with ``active_credential_count``, as ``credentials_active`` counts them, in the same query."""
    return applications.annotate(active_credential_count=Count("credentials", filter=_active_q("credentials__")))


def ingest_targets_forget() -> None:
    """Drops this process's cached ingest targets, after a credential change made here."""
    _target_cache.clear()
    _token_cache.clear()


def application_deletion_summary(*, application: Application) -> dict[str, int]:
    """What deleting an application takes with it."""
    return {"credentials": application.credentials.count(), "events": application.events.count()}


def organization_deletion_summary(*, organization: Organization) -> dict[str, int]:
    """What deleting an organization takes with it."""
    return {
        "applications": organization.applications.count(),
        "members": organization.memberships.count(),
        "credentials": Credential.objects.filter(application__organization=organization).count(),
        "events": organization.events.count(),
    }


def ingest_url(org_public_id: str, app_public_id: str) -> str:
    """Where an application's SDK sends its batches, as clients reach this service."""
    return f"{settings.PUBLIC_URL.rstrip('/')}/v1/ingest/{org_public_id}/{app_public_id}"


def credentials_generation() -> int | None:
    """The credentials generation counter in Redis, or None on the embedded default."""
    client = get_redis()
    return int(client.get(CREDENTIALS_GENERATION_KEY) or 0) if client is not None else None


def _ingest_target_read(org_public_id: str, app_public_id: str) -> "IngestTarget | None":
    # Read before the rows: a change that lands in between leaves an older number, never a newer one.
    generation = credentials_generation()
    rows = list(
        _active(
            Credential.objects.filter(
                application__public_id=app_public_id,
                application__organization__public_id=org_public_id,
            )
        ).values_list(
            "application_id",
            "application__organization_id",
            "token_hash",
            "secret_encrypted",
            "expires_at",
            "pk",
            "application__organization__tier__is_unlimited",
            "application__organization__tier__requests_per_minute",
            "application__organization__tier__monthly_event_quota",
            "application__organization__extra_quota",
            "application__organization__extra_quota_month",
            "application__organization__quota_monitor_only",
            "service_name",
        )
    )
    if not rows:
        return None
    try:
        keys = tuple(
            IngestKey(
                credential_id=row[5],
                token_hash=row[2],
                hmac_secret=crypto.decrypt(row[3]),
                expires_at=row[4],
                service_name=row[12],
            )
            for row in rows
        )
    except InvalidToken:
        raise CredentialsKeyError(
            f"Cannot decrypt the HMAC secrets of application {app_public_id}: APP_SECURITY__CREDENTIALS_KEYS "
            "(or SECRET_KEY, which it defaults to) is not the key they were encrypted with"
        ) from None
    unlimited, per_minute, quota, extra, extra_month, monitor_only = rows[0][6:12]
    if extra_month == timezone.now().strftime("%Y-%m"):
        quota += extra
    return IngestTarget(
        application_id=rows[0][0],
        organization_id=rows[0][1],
        keys=keys,
        generation=generation,
        requests_per_minute=None if unlimited else per_minute,
        monthly_quota=None if unlimited else quota,
        quota_refuses=not monitor_only,
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
            _active(Credential.objects.filter(token_hash=digest))
            .values_list("application__organization__public_id", "application__public_id")
            .first()
        ),
    )


MANAGE_ROLES = ("owner", "admin")


def organizations_of(*, user, roles: tuple[str, ...] | None = None):
    """Organizations ``user`` may see (or, with ``roles``, holds one of those roles in); all for superusers."""
    if user.is_superuser:
        return Organization.objects.all()
    memberships = user.memberships.all()
    if roles is not None:
        memberships = memberships.filter(role__in=roles)
    return Organization.objects.filter(pk__in=memberships.values("organization_id"))


def admin_access(*, user) -> bool:
    """Whether ``user`` may enter the admin: superusers and members of any organization."""
    return user.is_superuser or user.memberships.exists()


def member_candidates(*, user):
    """Accounts ``user`` may add to an organization: anyone for a superuser, else the members of their
    own organizations, so that adding cannot probe which other accounts exist."""
    if user.is_superuser:
        return User.objects.all()
    return User.objects.filter(memberships__organization__in=organizations_of(user=user)).distinct()


def role_in(*, user, organization_id: int) -> str | None:
    """The role ``user`` holds in the organization (superusers count as owners), or None."""
    if user.is_superuser:
        return "owner"
    return user.memberships.filter(organization_id=organization_id).values_list("role", flat=True).first()


def application_for(target: IngestTarget) -> Application:
    """The application a verified request is for, with its organization."""
    return Application.objects.select_related("organization").get(pk=target.application_id)


def read_token_find(*, token: str) -> ReadToken | None:
    """The unrevoked read token with this plaintext; None for anything else, an ingest token included."""
    if not token.startswith(ids.READ_TOKEN_PREFIX):
        return None
    return (
        ReadToken.objects.filter(token_hash=crypto.token_hash(token), revoked_at__isnull=True)
        .select_related("organization")
        .first()
    )


def read_token_application(*, read_token: ReadToken, org_public_id: str, app_public_id: str) -> Application | None:
    """The application the token may read under these public ids; None when it belongs to another
    organization or lies outside the token's applications, so the caller answers both alike."""
    if read_token.organization.public_id != org_public_id:
        return None
    applications = Application.objects.filter(organization_id=read_token.organization_id, public_id=app_public_id)
    if not read_token.every_application:
        applications = applications.filter(read_tokens=read_token)
    return applications.select_related("organization").first()


def read_token_applications(*, read_token: ReadToken, org_public_id: str) -> list[Application] | None:
    """The applications an organization-wide read adds up: None for a token of every application
    (read by organization, later ones included), its applications for a limited one. Raises
    ``LookupError`` for another organization's id, which callers answer as 404."""
    if read_token.organization.public_id != org_public_id:
        raise LookupError(org_public_id)
    if read_token.every_application:
        return None
    return list(read_token.applications.order_by("pk"))


def organization_find(*, ref: str) -> Organization | None:
    """An organization by public id or, failing that, by name (case-insensitive), as the commands take it."""
    return (
        Organization.objects.filter(public_id=ref).first()
        or Organization.objects.filter(name__iexact=ref).order_by("pk").first()
    )


def invitation_usable(*, invitation: Invitation) -> bool:
    """Whether an invitation's link may still be accepted: not used, not revoked, not expired."""
    return invitation.accepted_at is None and invitation.revoked_at is None and invitation.expires_at > timezone.now()


def invitation_by_token(*, token: str) -> Invitation | None:
    """The invitation a link names if it may still be accepted, else None (whatever the reason)."""
    invitation = Invitation.objects.select_related("organization").filter(token_hash=crypto.token_hash(token)).first()
    return invitation if invitation is not None and invitation_usable(invitation=invitation) else None


def two_factor_required(*, user) -> bool:
    """Whether ``user`` must have a second factor: a superuser when the settings say so, or a member
    of any organization that asks it of its members."""
    if user.is_superuser and settings.SECURITY_SUPERUSERS_REQUIRE_TWO_FACTOR:
        return True
    return user.memberships.filter(organization__require_two_factor=True).exists()


def two_factor_enabled(*, user) -> bool:
    from allauth.mfa.utils import is_mfa_enabled

    return is_mfa_enabled(user)

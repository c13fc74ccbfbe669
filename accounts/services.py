"""Writes for organizations, memberships, applications, credentials and the audit log."""

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Model, Q
from django.utils import timezone

from accounts import ingest_targets, selectors
from accounts.models import (
    Application,
    AuditEntry,
    Credential,
    Invitation,
    Membership,
    Organization,
    QuotaNotice,
    ReadToken,
    SignOnRule,
    Tier,
    User,
)
from telemetry.lib import crypto, ids
from telemetry.lib.addresses import client_address
from telemetry.lib.redis import get_redis

DEFAULT_TIER = "self-hosted"
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)
Action = AuditEntry.Action


@dataclass(frozen=True)
class Source:
    """Where a change came from, for the audit log."""

    ip: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request) -> "Source":
        return cls(ip=client_address(request) or None, user_agent=request.META.get("HTTP_USER_AGENT", "")[:300])


COMMAND_LINE = Source(user_agent="manage.py")


@dataclass(frozen=True)
class IssuedCredential:
    """A credential with its plaintext token and secret: shown once, never stored in the clear."""

    credential: Credential
    api_token: str
    hmac_secret: str
    expired_previous: list[Credential] = field(default_factory=list)


def _credentials_changed() -> None:
    """Makes every server process drop its cached credentials: this one now, the others at their next
    request (through the generation counter in Redis) once the change is committed."""
    ingest_targets.ingest_targets_forget()
    transaction.on_commit(_credentials_generation_bump)


def _credentials_generation_bump() -> None:
    client = get_redis()
    if client is not None:
        client.incr(ingest_targets.CREDENTIALS_GENERATION_KEY)


def audit_record(
    *,
    action: str,
    actor=None,
    organization: Organization | None = None,
    target: str = "",
    source: Source = COMMAND_LINE,
    details: dict | None = None,
) -> AuditEntry:
    """Appends an entry to the audit log."""
    return AuditEntry.objects.create(
        action=action,
        actor=actor if actor is not None and actor.pk else None,
        actor_name=actor.get_username() if actor is not None else "",
        organization_id=organization.pk if organization else None,
        organization_name=organization.name if organization else "",
        target=target[:300],
        source_ip=source.ip,
        user_agent=source.user_agent,
        details=details or {},
    )


@transaction.atomic
def organization_create(
    *,
    name: str,
    tier: Tier,
    contact_email: str = "",
    quota_monitor_only: bool = False,
    extra_quota: int = 0,
    extra_quota_month: str = "",
    by=None,
    source: Source = COMMAND_LINE,
) -> Organization:
    organization = Organization.objects.create(
        name=name,
        tier=tier,
        contact_email=contact_email,
        quota_monitor_only=quota_monitor_only,
        extra_quota=extra_quota,
        extra_quota_month=extra_quota_month,
    )
    audit_record(
        action=Action.ORGANIZATION_CREATED,
        actor=by,
        organization=organization,
        target=str(organization),
        source=source,
        details={
            "tier": tier.slug,
            "quota_monitor_only": quota_monitor_only,
            "extra_quota": extra_quota,
            "extra_quota_month": extra_quota_month,
        },
    )
    return organization


def organization_get_or_create(*, ref: str, tier_slug: str = DEFAULT_TIER) -> tuple[Organization, bool]:
    """Finds an organization by public id or name (case-insensitive), else creates one named ``ref``."""
    existing = selectors.organization_find(ref=ref)
    if existing:
        return existing, False
    return organization_create(name=ref, tier=Tier.objects.get(slug=tier_slug)), True


@transaction.atomic
def organization_update(
    *, organization: Organization, changes: dict, by=None, source: Source = COMMAND_LINE
) -> Organization:
    """Saves changed fields (``changes`` maps field name to its old value) and records them."""
    organization.save()
    described = _diff(organization, changes)
    if "tier" in described:
        audit_record(
            action=Action.TIER_CHANGED,
            actor=by,
            organization=organization,
            target=str(organization),
            source=source,
            details={"tier": described.pop("tier")},
        )
    if described:
        audit_record(
            action=Action.ORGANIZATION_CHANGED,
            actor=by,
            organization=organization,
            target=str(organization),
            source=source,
            details=described,
        )
    return organization


@transaction.atomic
def organization_delete(*, organization: Organization, by=None, source: Source = COMMAND_LINE) -> None:
    """Deletes an organization with its applications, credentials and events."""
    counts = selectors.organization_deletion_summary(organization=organization)
    audit_record(
        action=Action.ORGANIZATION_DELETED,
        actor=by,
        organization=organization,
        target=str(organization),
        source=source,
        details=counts,
    )
    organization.delete()
    _credentials_changed()


@transaction.atomic
def tier_update(*, tier: Tier, changes: dict, by=None, source: Source = COMMAND_LINE) -> Tier:
    tier.save()
    audit_record(action=Action.TIER_CHANGED, actor=by, target=str(tier), source=source, details=_diff(tier, changes))
    return tier


@transaction.atomic
def membership_save(
    *, membership: Membership, changes: dict | None = None, by=None, source: Source = COMMAND_LINE
) -> Membership:
    """Adds a member or changes a role."""
    created = membership.pk is None
    membership.save()
    details = {"user": membership.user.get_username(), "role": membership.role}
    if not created and changes and "role" in changes:
        details["previous_role"] = changes["role"]
    audit_record(
        action=Action.MEMBERSHIP_CHANGED,
        actor=by,
        organization=membership.organization,
        target=str(membership),
        source=source,
        details=details,
    )
    return membership


@dataclass(frozen=True)
class SentInvitation:
    """An invitation with its link: the token in it is never stored in the clear."""

    invitation: Invitation
    url: str


class InvitationUnusable(Exception):
    """The link was used, revoked or has expired (one answer for all three)."""


def _invitation_link(invitation: Invitation) -> str:
    """Gives the invitation a new token and validity, and mails its link once the change is committed."""
    from django.urls import reverse

    token = secrets.token_urlsafe(32)
    now = timezone.now()
    invitation.token_hash = crypto.token_hash(token)
    invitation.sent_at = now
    invitation.expires_at = now + timedelta(days=settings.INVITATION_VALID_DAYS)
    url = settings.PUBLIC_URL.rstrip("/") + reverse("accounts:invitation", args=[token])
    subject = f"You are invited to {invitation.organization.name} on Telemetry"
    body = (
        f"You are invited to join {invitation.organization.name} as {invitation.get_role_display().lower()}.\n\n"
        f"Open this link to accept: {url}\n\n"
        f"It works once, until {invitation.expires_at:%Y-%m-%d %H:%M} UTC.\n"
    )
    transaction.on_commit(lambda: send_mail(subject, body, None, [invitation.email]))
    return url


@transaction.atomic
def invitation_send(
    *, organization: Organization, email: str, role: str, by=None, source: Source = COMMAND_LINE
) -> SentInvitation:
    """Invites an address to an organization with a role. Nothing here looks at existing accounts, so
    inviting tells the inviter nothing about who already has one."""
    invitation = Invitation(
        organization=organization, email=email.strip(), role=role, created_by=by if by is not None and by.pk else None
    )
    url = _invitation_link(invitation)
    invitation.save()
    audit_record(
        action=Action.INVITATION_SENT,
        actor=by,
        organization=organization,
        target=invitation.email,
        source=source,
        details={"role": role},
    )
    return SentInvitation(invitation=invitation, url=url)


@transaction.atomic
def invitation_resend(*, invitation: Invitation, by=None, source: Source = COMMAND_LINE) -> SentInvitation:
    """Sends a fresh link, valid for the full period again; the previous link stops working."""
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None:
        raise InvitationUnusable
    invitation.revoked_at = None
    url = _invitation_link(invitation)
    invitation.save()
    audit_record(
        action=Action.INVITATION_SENT,
        actor=by,
        organization=invitation.organization,
        target=invitation.email,
        source=source,
        details={"role": invitation.role, "resent": True},
    )
    return SentInvitation(invitation=invitation, url=url)


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, by=None, source: Source = COMMAND_LINE) -> Invitation:
    """Stops an invitation's link from working; an accepted one stays as it was."""
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit_record(
            action=Action.INVITATION_REVOKED,
            actor=by,
            organization=invitation.organization,
            target=invitation.email,
            source=source,
            details={"role": invitation.role},
        )
    return invitation


@transaction.atomic
def invitation_accept(
    *, token: str, user=None, username: str = "", password: str = "", source: Source = COMMAND_LINE
) -> Membership:
    """Makes the invited person a member: ``user`` when they are signed in, else a new account with
    ``username`` and ``password`` and the invited address. The link then never works again. A
    membership is all it grants: the account is never staff or superuser through it."""
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("organization")
        .filter(token_hash=crypto.token_hash(token))
        .first()
    )
    if invitation is None or not selectors.invitation_usable(invitation=invitation):
        raise InvitationUnusable
    if user is None:
        user = User(username=username, email=invitation.email)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save()
        _address_verified(user=user, email=invitation.email)
    membership = Membership.objects.filter(user=user, organization=invitation.organization).first()
    if membership is None:
        membership = Membership.objects.create(user=user, organization=invitation.organization, role=invitation.role)
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(
        action=Action.INVITATION_ACCEPTED,
        actor=user,
        organization=invitation.organization,
        target=invitation.email,
        source=source,
        details={"user": user.get_username(), "role": membership.role},
    )
    return membership


def _address_verified(*, user, email: str) -> None:
    """The invited address reached this person: allauth may trust it (single sign-on matches on it)."""
    from allauth.account.models import EmailAddress

    EmailAddress.objects.update_or_create(
        user=user, email__iexact=email, defaults={"email": email, "verified": True, "primary": True}
    )


@transaction.atomic
def sign_on_memberships_apply(
    *, user, email: str, groups: list[str], source: Source = COMMAND_LINE
) -> list[Membership]:
    """Makes a person who signed in through single sign-on a member of each organization whose rules
    match their address's domain or a group of theirs; a membership they already hold stays as it is."""
    domain = email.rpartition("@")[2].lower()
    added = []
    for rule in SignOnRule.objects.select_related("organization").order_by("pk"):
        if rule.email_domain and rule.email_domain.lower() != domain:
            continue
        if rule.group and rule.group not in groups:
            continue
        membership, created = Membership.objects.get_or_create(
            user=user, organization=rule.organization, defaults={"role": rule.role}
        )
        if created:
            audit_record(
                action=Action.MEMBERSHIP_CHANGED,
                actor=user,
                organization=rule.organization,
                target=str(membership),
                source=source,
                details={"user": user.get_username(), "role": rule.role, "via": "single sign-on"},
            )
            added.append(membership)
    return added


@transaction.atomic
def sessions_end(*, user, by=None, source: Source = COMMAND_LINE) -> int:
    """Signs ``user`` out of every session they signed in to; returns how many were ended."""
    from allauth.usersessions.models import UserSession

    sessions = list(UserSession.objects.filter(user=user))
    for session in sessions:
        session.end()
    audit_record(
        action=Action.SIGNED_OUT_EVERYWHERE,
        actor=by,
        target=user.get_username(),
        source=source,
        details={"sessions": len(sessions)},
    )
    return len(sessions)


@transaction.atomic
def user_sessions_end(*, sessions, by=None, source: Source = COMMAND_LINE) -> int:
    """Ends these sessions, each with an entry in the audit log saying whose it was and where it began:
    a person's others from their session list, or anyone's by a superuser in the admin."""
    ended = 0
    for session in sessions:
        audit_record(
            action=Action.SESSION_ENDED,
            actor=by,
            target=session.user.get_username(),
            source=source,
            details={
                "ip": session.ip,
                "user_agent": session.user_agent[:200],
                "started": session.created_at.isoformat(),
            },
        )
        session.end()
        ended += 1
    return ended


@transaction.atomic
def membership_remove(*, membership: Membership, by=None, source: Source = COMMAND_LINE) -> None:
    audit_record(
        action=Action.MEMBERSHIP_REMOVED,
        actor=by,
        organization=membership.organization,
        target=str(membership),
        source=source,
        details={"user": membership.user.get_username(), "role": membership.role},
    )
    membership.delete()


def _credential_create(application: Application, by, service_name: str = "") -> IssuedCredential:
    token, secret = ids.api_token(), ids.hmac_secret()
    credential = Credential.objects.create(
        application=application,
        service_name=service_name,
        token_hash=crypto.token_hash(token),
        token_prefix=token[:11],
        secret_encrypted=crypto.encrypt(secret),
        created_by=by if by is not None and by.pk else None,
    )
    return IssuedCredential(credential=credential, api_token=token, hmac_secret=secret)


@transaction.atomic
def credential_issue(
    *, application: Application, service_name: str = "", by=None, source: Source = COMMAND_LINE
) -> IssuedCredential:
    """Issues a new active credential; the existing ones stay active. ``service_name`` makes its token
    a Malti key, whose batches must all name that service."""
    issued = _credential_create(application, by, service_name)
    audit_record(
        action=Action.CREDENTIAL_ISSUED,
        actor=by,
        organization=application.organization,
        target=f"{application} {issued.credential}",
        source=source,
        details={"service_name": service_name} if service_name else None,
    )
    _credentials_changed()
    return issued


@transaction.atomic
def credential_rotate(
    *, application: Application, overlap: timedelta = DEFAULT_ROTATION_OVERLAP, by=None, source: Source = COMMAND_LINE
) -> IssuedCredential:
    """Issues a new credential; the active ones keep working for ``overlap``, then stop."""
    until = timezone.now() + overlap
    previous = list(selectors.credentials_active(application=application).select_for_update())
    for credential in previous:
        if credential.expires_at is None or credential.expires_at > until:
            credential.expires_at = until
            credential.save(update_fields=["expires_at"])
    issued = _credential_create(application, by)
    audit_record(
        action=Action.CREDENTIAL_ROTATED,
        actor=by,
        organization=application.organization,
        target=f"{application} {issued.credential}",
        source=source,
        details={
            "previous": [c.token_prefix for c in previous],
            "overlap_hours": overlap / timedelta(hours=1),
            "previous_expire_at": until.isoformat(),
        },
    )
    _credentials_changed()
    return IssuedCredential(
        credential=issued.credential,
        api_token=issued.api_token,
        hmac_secret=issued.hmac_secret,
        expired_previous=previous,
    )


@transaction.atomic
def credential_revoke(*, credential: Credential, by=None, source: Source = COMMAND_LINE) -> Credential:
    """Stops a credential at once: with Redis, every server process refuses it from its next request
    on, on every endpoint (without, within the target cache's seconds); a credential already revoked
    is left as it is."""
    if credential.revoked_at is not None:
        return credential
    credential.revoked_at = timezone.now()
    credential.save(update_fields=["revoked_at"])
    audit_record(
        action=Action.CREDENTIAL_REVOKED,
        actor=by,
        organization=credential.application.organization,
        target=f"{credential.application} {credential}",
        source=source,
    )
    _credentials_changed()
    return credential


@dataclass(frozen=True)
class IssuedReadToken:
    """A read token with its plaintext: shown once, never stored in the clear."""

    read_token: ReadToken
    token: str


@transaction.atomic
def read_token_issue(
    *, organization: Organization, name: str = "", applications=(), by=None, source: Source = COMMAND_LINE
) -> IssuedReadToken:
    """Issues a token that reads the organization's numbers: of ``applications`` only (which must be
    the organization's), or of all of them, today's and future ones, when none are given."""
    applications = list(applications)
    if any(application.organization_id != organization.pk for application in applications):
        raise ValueError("a read token may only be limited to applications of its own organization")
    token = ids.read_token()
    read_token = ReadToken.objects.create(
        organization=organization,
        name=name,
        token_hash=crypto.token_hash(token),
        token_prefix=token[:11],
        every_application=not applications,
        created_by=by if by is not None and by.pk else None,
    )
    read_token.applications.set(applications)
    audit_record(
        action=Action.READ_TOKEN_ISSUED,
        actor=by,
        organization=organization,
        target=str(read_token),
        source=source,
        details={"applications": sorted(a.public_id for a in applications)},
    )
    return IssuedReadToken(read_token=read_token, token=token)


@transaction.atomic
def read_token_revoke(*, read_token: ReadToken, by=None, source: Source = COMMAND_LINE) -> ReadToken:
    """Stops a read token at once (it is looked up on every request); one already revoked is left as it is."""
    if read_token.revoked_at is not None:
        return read_token
    read_token.revoked_at = timezone.now()
    read_token.save(update_fields=["revoked_at"])
    audit_record(
        action=Action.READ_TOKEN_REVOKED,
        actor=by,
        organization=read_token.organization,
        target=str(read_token),
        source=source,
    )
    return read_token


@transaction.atomic
def application_create(
    *, organization: Organization, name: str, service_name: str = "", by=None, source: Source = COMMAND_LINE
) -> IssuedCredential:
    """Creates an application with its first credential (a Malti key for ``service_name``, if given)."""
    application = Application.objects.create(organization=organization, name=name)
    audit_record(
        action=Action.APPLICATION_CREATED, actor=by, organization=organization, target=str(application), source=source
    )
    return credential_issue(application=application, service_name=service_name, by=by, source=source)


@transaction.atomic
def application_update(
    *, application: Application, changes: dict, by=None, source: Source = COMMAND_LINE
) -> Application:
    application.save()
    audit_record(
        action=Action.APPLICATION_CHANGED,
        actor=by,
        organization=application.organization,
        target=str(application),
        source=source,
        details=_diff(application, changes),
    )
    return application


@transaction.atomic
def application_delete(*, application: Application, by=None, source: Source = COMMAND_LINE) -> None:
    """Deletes an application with its credentials and events."""
    counts = selectors.application_deletion_summary(application=application)
    audit_record(
        action=Action.APPLICATION_DELETED,
        actor=by,
        organization=application.organization,
        target=str(application),
        source=source,
        details=counts,
    )
    application.delete()
    _credentials_changed()


@transaction.atomic
def quota_notice_send(*, organization_id: int, month: str, level: int) -> bool:
    """E-mails the owners (and contact address) that the organization reached ``level``% of its
    monthly quota; False when that notice was already sent. Sending fails the transaction, so a
    retried task tries again rather than recording a notice nobody received."""
    organization = Organization.objects.select_related("tier").get(pk=organization_id)
    recipients = sorted(
        set(
            filter(
                None,
                [
                    organization.contact_email,
                    *organization.memberships.filter(role=Membership.Role.OWNER).values_list("user__email", flat=True),
                ],
            )
        )
    )
    _, created = QuotaNotice.objects.get_or_create(
        organization=organization, month=month, level=level, defaults={"recipients": ", ".join(recipients)}
    )
    if not created:
        return False
    quota = organization.monthly_quota(datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC))
    if level >= 100:
        subject = f"{organization.name} has used its monthly event quota"
        consequence = (
            "New events are refused until the month ends."
            if not organization.quota_monitor_only
            else "The organization is monitor-only: events are still accepted."
        )
    else:
        subject = f"{organization.name} has used {level}% of its monthly event quota"
        consequence = "Events past the quota will be refused until the month ends."
    body = (
        f"{organization.name} ({organization.public_id}) has accepted {level}% of its {quota:,} events for "
        f"{month} (tier {organization.tier.name}). {consequence}\n\nA superuser can grant extra quota for "
        "the month, or move the organization to another tier, in the admin."
    )
    if recipients:
        send_mail(subject, body, None, recipients)
    return True


def user_time_zone_set(*, user, time_zone: str):
    """Sets the time zone the dashboards show a user's times in (an IANA name, validated by the form)."""
    user.time_zone = time_zone
    user.save(update_fields=["time_zone"])
    return user


# A credential's "last used" is written at most this often per process, never on every request.
LAST_USED_WRITE_SECONDS = 60.0
_last_used_written: dict[int, float] = {}


def credential_touch(*, credential_id: int) -> None:
    """Records that a credential signed an accepted request (a write at most once a minute per process)."""
    now = time.monotonic()
    if now - _last_used_written.get(credential_id, float("-inf")) < LAST_USED_WRITE_SECONDS:
        return
    _last_used_written[credential_id] = now
    Credential.objects.filter(pk=credential_id).update(last_used_at=timezone.now())


_read_token_used_written: dict[int, float] = {}


def read_token_touch(*, read_token_id: int) -> None:
    """Records that a read token answered a request: a write at most once a minute per process, and
    none when another process wrote within the minute."""
    now = time.monotonic()
    if now - _read_token_used_written.get(read_token_id, float("-inf")) < LAST_USED_WRITE_SECONDS:
        return
    _read_token_used_written[read_token_id] = now
    moment = timezone.now()
    ReadToken.objects.filter(pk=read_token_id).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=moment - timedelta(seconds=LAST_USED_WRITE_SECONDS))
    ).update(last_used_at=moment)


def _plain(value):
    if isinstance(value, Tier):
        return value.slug
    if hasattr(value, "pk"):
        return str(value)
    return value


def _diff(instance: Model, changes: dict) -> dict:
    """Each changed field of ``instance`` as [old, new] in the audit log's plain terms; a form gives a
    foreign key's old value as an id, which is read back so both sides name the object alike."""
    described = {}
    for name, old in changes.items():
        field = instance._meta.get_field(name)
        if field.many_to_one and old is not None and not isinstance(old, Model):
            old = field.related_model._default_manager.filter(pk=old).first()
        described[name] = [_plain(old), _plain(getattr(instance, name))]
    return described

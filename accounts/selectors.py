"""Reads for organizations, applications and credentials."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import Application, Credential, Invitation, Organization, ReadToken, User
from telemetry.lib import crypto, ids


def _active_q(prefix: str = "") -> Q:
    return Q(**{f"{prefix}revoked_at__isnull": True}) & (
        Q(**{f"{prefix}expires_at__isnull": True}) | Q(**{f"{prefix}expires_at__gt": timezone.now()})
    )


def credentials_in_force(credentials):
    """``credentials`` narrowed to those neither revoked nor expired."""
    return credentials.filter(_active_q())


def credentials_active(*, application: Application):
    """Credentials of ``application`` that verify requests now."""
    return credentials_in_force(application.credentials.all())


def applications_with_active_credential_counts(applications):
    """``applications`` with ``active_credential_count``, as ``credentials_active`` counts them, in the same query."""
    return applications.annotate(active_credential_count=Count("credentials", filter=_active_q("credentials__")))


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


MANAGE_ROLES = ("owner", "admin")


def organizations_of(*, user, roles: tuple[str, ...] | None = None):
    """Organizations ``user`` may see (or, with ``roles``, holds one of those roles in); all for superusers.
    Those that require two-factor of a session without it are left out (``two_factor_locked_organizations``)."""
    if user.is_superuser:
        return Organization.objects.all()
    memberships = user.memberships.all()
    if roles is not None:
        memberships = memberships.filter(role__in=roles)
    organizations = Organization.objects.filter(pk__in=memberships.values("organization_id"))
    locked = _two_factor_locked_ids(user)
    return organizations.exclude(pk__in=locked) if locked else organizations


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
    if organization_id in _two_factor_locked_ids(user):
        return None
    return user.memberships.filter(organization_id=organization_id).values_list("role", flat=True).first()


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


def two_factor_locked_organizations(*, user, session_two_factor: bool = False) -> list[Organization]:
    """The organizations of ``user`` that require two-factor of members while they have none: no
    factor set up here, and (``session_two_factor``) no provider's two-factor sign-in for this
    session. Their pages stay closed; the person's other organizations do not. Superusers answer to
    APP_SECURITY__SUPERUSERS_REQUIRE_TWO_FACTOR instead, as they see every organization anyway."""
    if user.is_superuser:
        return []
    requiring = list(Organization.objects.filter(require_two_factor=True, memberships__user=user).order_by("name"))
    if not requiring or session_two_factor or two_factor_enabled(user=user):
        return []
    return requiring


def _two_factor_locked_ids(user) -> set[int]:
    # accounts.middleware works them out once a request, with the session, and keeps them on the user;
    # without a request (or before it) only a factor set up here counts.
    ids = getattr(user, "two_factor_locked_ids", None)
    return ids if ids is not None else {o.pk for o in two_factor_locked_organizations(user=user)}


def organization_id_of(*, model, object_id: str, path: str) -> int | None:
    """The id of the organization an admin object belongs to (``path`` leads there from ``model``; ""
    for an organization itself); None when there is no such object or the id is malformed."""
    try:
        return (
            model._default_manager.filter(pk=object_id).values_list(f"{path}__pk" if path else "pk", flat=True).first()
        )
    except (ValueError, ValidationError):
        return None


def two_factor_required(*, user) -> bool:
    """Whether ``user`` must have a second factor: a superuser when the settings say so, or a member
    of any organization that asks it of its members."""
    if user.is_superuser and settings.SECURITY_SUPERUSERS_REQUIRE_TWO_FACTOR:
        return True
    return user.memberships.filter(organization__require_two_factor=True).exists()


def two_factor_enabled(*, user) -> bool:
    from allauth.mfa.utils import is_mfa_enabled

    return is_mfa_enabled(user)

"""Writes for organizations, applications and credentials."""

from dataclasses import dataclass

from django.db import transaction

from accounts.models import Application, Credential, Organization, Tier
from telemetry.lib import crypto, ids

DEFAULT_TIER = "self-hosted"


@dataclass(frozen=True)
class IssuedCredential:
    """A credential with its plaintext token and secret: shown once, never stored in the clear."""

    credential: Credential
    api_token: str
    hmac_secret: str


def organization_get_or_create(*, ref: str, tier_slug: str = DEFAULT_TIER) -> tuple[Organization, bool]:
    """Finds an organization by public id or name (case-insensitive), else creates one named ``ref``."""
    existing = (
        Organization.objects.filter(public_id=ref).first()
        or Organization.objects.filter(name__iexact=ref).order_by("pk").first()
    )
    if existing:
        return existing, False
    tier = Tier.objects.get(slug=tier_slug)
    return Organization.objects.create(name=ref, tier=tier), True


def credential_issue(*, application: Application, created_by=None) -> IssuedCredential:
    """Issues a new active credential; existing ones stay active (rotation overlaps them)."""
    token, secret = ids.api_token(), ids.hmac_secret()
    credential = Credential.objects.create(
        application=application,
        token_hash=crypto.token_hash(token),
        token_prefix=token[:11],
        secret_encrypted=crypto.encrypt(secret),
        created_by=created_by,
    )
    return IssuedCredential(credential=credential, api_token=token, hmac_secret=secret)


@transaction.atomic
def application_create(*, organization: Organization, name: str, created_by=None) -> IssuedCredential:
    """Creates an application with its first credential."""
    application = Application.objects.create(organization=organization, name=name)
    return credential_issue(application=application, created_by=created_by)

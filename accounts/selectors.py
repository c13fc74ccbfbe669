"""Reads for organizations, applications and credentials."""

from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from accounts.models import Credential
from telemetry.lib import crypto


@dataclass(frozen=True)
class IngestKey:
    token_hash: str
    hmac_secret: str


@dataclass(frozen=True)
class IngestTarget:
    """What the ingest path needs to know about an application, with its active keys."""

    organization_id: int
    application_id: int
    keys: tuple[IngestKey, ...]


def ingest_target_get(*, org_public_id: str, app_public_id: str) -> IngestTarget | None:
    """The application ``app_public_id`` of organization ``org_public_id`` with its active credentials.

    One query. None when either id is unknown, they do not belong together, or no credential is
    active: the caller answers all of these alike, so ids cannot be probed.
    """
    now = timezone.now()
    rows = list(
        Credential.objects.filter(
            application__public_id=app_public_id,
            application__organization__public_id=org_public_id,
            revoked_at__isnull=True,
        )
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values_list("application_id", "application__organization_id", "token_hash", "secret_encrypted")
    )
    if not rows:
        return None
    return IngestTarget(
        application_id=rows[0][0],
        organization_id=rows[0][1],
        keys=tuple(IngestKey(token_hash=row[2], hmac_secret=crypto.decrypt(row[3])) for row in rows),
    )

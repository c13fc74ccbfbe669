from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q

from telemetry.lib import ids


class User(AbstractUser):
    """The operator account; custom from the first migration so it can grow without pain."""

    time_zone = models.CharField(max_length=64, default="UTC", help_text="Times on the dashboards are shown in it.")


class Tier(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    monthly_event_quota = models.PositiveBigIntegerField(help_text="Accepted events per calendar month (UTC).")
    requests_per_minute = models.PositiveIntegerField()
    retention_days = models.PositiveIntegerField()
    is_unlimited = models.BooleanField(default=False, help_text="Quota and rate limit do not apply.")

    class Meta:
        ordering = ["monthly_event_quota"]

    def __str__(self):
        return self.name


class Organization(models.Model):
    public_id = models.CharField(max_length=32, unique=True, default=ids.organization_public_id, editable=False)
    name = models.CharField(max_length=200)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="organizations")
    contact_email = models.EmailField(blank=True)
    quota_monitor_only = models.BooleanField(
        default=False, help_text="Count events against the monthly quota but never refuse them."
    )
    extra_quota = models.PositiveBigIntegerField(default=0, help_text="Events granted on top of the tier's quota...")
    extra_quota_month = models.CharField(max_length=7, blank=True, help_text="...in this month (YYYY-MM, UTC).")
    require_two_factor = models.BooleanField(
        "members must use two-factor",
        default=False,
        help_text="Members without a second factor are sent to set one up before they see any page.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.public_id})"

    def monthly_quota(self, now: datetime) -> int | None:
        """The events this organization may have accepted in ``now``'s calendar month (UTC): its
        tier's quota, plus the extra grant when the grant is for that month. None: unlimited."""
        if self.tier.is_unlimited:
            return None
        month = now.astimezone(UTC).strftime("%Y-%m")
        return self.tier.monthly_event_quota + (self.extra_quota if self.extra_quota_month == month else 0)


class Application(models.Model):
    public_id = models.CharField(max_length=32, unique=True, default=ids.application_public_id, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="applications")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    # Secret: a user id's hash can be tied back to it only with this and a guess of the id.
    user_hash_seed = models.BigIntegerField(default=ids.user_hash_seed, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.public_id})"


class Credential(models.Model):
    """An API token and HMAC secret of an application; several may be active during a rotation."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="credentials")
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=16, help_text="Enough of the token to recognise it.")
    secret_encrypted = models.TextField(help_text="The HMAC secret, encrypted with the credentials key.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    service_name = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="Malti clients: the one service this token's batches may name; blank: any service.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["application"], condition=Q(revoked_at__isnull=True), name="credential_active_idx"),
        ]

    def __str__(self):
        return f"{self.token_prefix}…"


class ReadToken(models.Model):
    """A bearer token that reads an organization's numbers through the stats API, never writes."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="read_tokens")
    name = models.CharField(max_length=200, blank=True)
    applications = models.ManyToManyField(
        Application,
        blank=True,
        related_name="read_tokens",
        help_text="The applications it may read; none: every application of the organization.",
    )
    # Fixed when issued: a limited token whose applications are all deleted reads nothing, rather
    # than, its list now empty, every application.
    every_application = models.BooleanField(default=True)
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=16, help_text="Enough of the token to recognise it.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.token_prefix}…)" if self.name else f"{self.token_prefix}…"


class Membership(models.Model):
    """A user's role in an organization: owners and admins manage it, viewers only look."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="membership_unique")]
        ordering = ["organization__name", "user__username"]

    def __str__(self):
        return f"{self.user} – {self.get_role_display()} of {self.organization.name}"


class Invitation(models.Model):
    """An e-mail address asked to join an organization with a role. Its link (only the hash of its
    token is kept) works once, until it expires or is revoked; re-sending replaces the link."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.VIEWER)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sent_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.email} as {self.get_role_display()} of {self.organization.name}"


class SignOnRule(models.Model):
    """Places a person who signs in through single sign-on in an organization with a role, when their
    address is of a domain or the provider lists them in a group."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="sign_on_rules")
    email_domain = models.CharField(max_length=253, blank=True, help_text="e.g. acme.example; blank: any.")
    group = models.CharField(max_length=200, blank=True, help_text="A name in the provider's groups claim; blank: any.")
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.VIEWER)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(email_domain="", group=""), name="sign_on_rule_matches_something")
        ]
        verbose_name = "single sign-on rule"

    def __str__(self):
        what = " and ".join(
            filter(None, [self.email_domain and f"@{self.email_domain}", self.group and f"group {self.group}"])
        )
        return f"{what} → {self.get_role_display()}"


class AuditEntry(models.Model):
    """Who did what, when and from where: written by services, read-only everywhere."""

    class Action(models.TextChoices):
        SIGN_IN = "sign_in", "Signed in"
        SIGN_IN_FAILED = "sign_in_failed", "Failed to sign in"
        ORGANIZATION_CREATED = "organization_created", "Organization created"
        ORGANIZATION_CHANGED = "organization_changed", "Organization changed"
        ORGANIZATION_DELETED = "organization_deleted", "Organization deleted"
        APPLICATION_CREATED = "application_created", "Application created"
        APPLICATION_CHANGED = "application_changed", "Application changed"
        APPLICATION_DELETED = "application_deleted", "Application deleted"
        CREDENTIAL_ISSUED = "credential_issued", "Credential issued"
        CREDENTIAL_ROTATED = "credential_rotated", "Credential rotated"
        CREDENTIAL_REVOKED = "credential_revoked", "Credential revoked"
        MEMBERSHIP_CHANGED = "membership_changed", "Membership changed"
        MEMBERSHIP_REMOVED = "membership_removed", "Membership removed"
        TIER_CHANGED = "tier_changed", "Tier changed"
        EVENTS_ERASED = "events_erased", "A user's events erased"
        READ_TOKEN_ISSUED = "read_token_issued", "Read token issued"
        READ_TOKEN_REVOKED = "read_token_revoked", "Read token revoked"
        INVITATION_SENT = "invitation_sent", "Invitation sent"
        INVITATION_REVOKED = "invitation_revoked", "Invitation revoked"
        INVITATION_ACCEPTED = "invitation_accepted", "Invitation accepted"
        SECOND_FACTOR_ADDED = "second_factor_added", "Second factor added"
        SECOND_FACTOR_REMOVED = "second_factor_removed", "Second factor removed"
        RECOVERY_CODES_RENEWED = "recovery_codes_renewed", "Recovery codes renewed"
        SECOND_FACTOR_FAILED = "second_factor_failed", "Wrong second-factor code"
        SIGNED_OUT_EVERYWHERE = "signed_out_everywhere", "Signed out everywhere"
        SESSION_ENDED = "session_ended", "Session signed out"
        PROVIDER_TWO_FACTOR = "provider_two_factor", "Provider's two-factor counted"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted.")
    action = models.CharField(max_length=40, choices=Action.choices)
    # Plain ids and names, not foreign keys: an entry outlives what it describes.
    organization_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    organization_name = models.CharField(max_length=200, blank=True)
    target = models.CharField(max_length=300, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log entries"

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name or 'system'} {self.get_action_display()}"


class QuotaNotice(models.Model):
    """An e-mail sent to an organization's owners about its monthly quota: at most one per level."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="quota_notices")
    month = models.CharField(max_length=7, help_text="YYYY-MM (UTC)")
    level = models.PositiveSmallIntegerField(help_text="Percent of the quota reached.")
    recipients = models.TextField(blank=True)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "month", "level"], name="quota_notice_once")]

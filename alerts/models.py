"""Alert rules, the channels they notify, and the record of every notification and delivery attempt."""

from django.conf import settings
from django.db import models


class Channel(models.Model):
    """Where an organization's alerts go: e-mail, a Slack-compatible incoming webhook, or a signed webhook."""

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        SLACK = "slack", "Slack-compatible webhook"
        WEBHOOK = "webhook", "Signed webhook (Standard Webhooks)"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="alert_channels")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    url = models.URLField(max_length=2000, blank=True, help_text="Slack and signed webhooks: where to POST.")
    email_roles = models.JSONField(
        default=list, blank=True, help_text="E-mail: the members of the organization with these roles."
    )
    email_addresses = models.TextField(blank=True, help_text="E-mail: further addresses, one a line.")
    secret_encrypted = models.TextField(blank=True, help_text="Signed webhooks: the whsec_ secret, encrypted.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__name", "name"]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"


class AlertRule(models.Model):
    """A condition on an application's (or, with no application, all of an organization's) numbers.

    ``version`` goes up by one with every notification the rule makes; each is claimed by a
    conditional UPDATE on it, so concurrent evaluations notify once.
    """

    class Kind(models.TextChoices):
        SILENCE = "silence", "No events for a while"
        RATE = "rate", "Events a minute above or below a threshold"
        CHANGE = "change", "Change against an earlier window"
        OUTCOMES = "outcomes", "Share of refused events"
        QUOTA = "quota", "Monthly quota"
        LAMBDA = "lambda", "Lambda errors or duration"
        API = "api", "API errors or latency"
        EXPORTS = "exports", "Failed scheduled exports"

    class State(models.TextChoices):
        OK = "ok", "OK"
        FIRING = "firing", "Firing"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="alert_rules")
    application = models.ForeignKey(
        "accounts.Application",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_rules",
        help_text="Blank: every application of the organization together.",
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    parameters = models.JSONField(default=dict, blank=True)
    event_type = models.CharField(max_length=255, blank=True, help_text="Count only events of this type.")
    service_version = models.CharField(
        max_length=255, blank=True, help_text="Count only events of this service version."
    )
    channels = models.ManyToManyField(Channel, blank=True, related_name="rules")
    renotify_minutes = models.PositiveIntegerField(
        default=0, help_text="While firing, notify again this often; 0: only when the state changes."
    )
    muted_until = models.DateTimeField(null=True, blank=True, help_text="No notifications before this time.")
    state = models.CharField(max_length=6, choices=State.choices, default=State.OK)
    state_since = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=0)
    last_value = models.FloatField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True, help_text="Set while firing: no reminders.")
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__name", "name"]
        indexes = [models.Index(fields=["organization", "state"], name="alert_rule_org_state_idx")]

    def __str__(self):
        return self.name


class Notification(models.Model):
    """One transition (or reminder) of a rule, made once: ``key`` is the rule and its new version.
    Test sends of a channel have no rule."""

    class Type(models.TextChoices):
        FIRING = "alert.firing", "Firing"
        RESOLVED = "alert.resolved", "Resolved"
        TEST = "alert.test", "Test"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=20, choices=Type.choices)
    reminder = models.BooleanField(default=False, help_text="Sent again while the rule stayed firing.")
    muted = models.BooleanField(default=False, help_text="Recorded while the rule was muted: not sent.")
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    payload = models.JSONField()
    channel_ids = models.JSONField(default=list, blank=True, help_text="The channels it goes to, as they were.")
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When its deliveries were handed to the workers."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(dispatched_at__isnull=True, muted=False),
                name="notification_undispatched_idx",
            )
        ]

    def __str__(self):
        return f"{self.get_type_display()} {self.key}"


class Delivery(models.Model):
    """One attempt to send a notification to a channel."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=6, choices=Status.choices)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"

    def __str__(self):
        return f"{self.channel} attempt {self.attempt}: {self.get_status_display()}"

"""Writes of alerting: evaluating rules into notifications (each exactly once), channels and their
secrets, acknowledging and muting, and one delivery attempt at a time."""

import base64
import http.client
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import F, prefetch_related_objects
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Organization
from alerts import outbound
from alerts.kinds import KINDS, Measurement
from alerts.models import AlertRule, Channel, Delivery, Notification
from telemetry.lib import crypto

logger = logging.getLogger(__name__)
WEBHOOK_SECRET_PREFIX = "whsec_"
ERROR_LENGTH = 500


@dataclass(frozen=True)
class IssuedChannel:
    channel: Channel
    webhook_secret: str  # the whsec_ secret of a signed webhook, shown once; "" for other kinds


def webhook_secret_new() -> str:
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


@transaction.atomic
def channel_create(
    *,
    organization: Organization,
    name: str,
    kind: str,
    url: str = "",
    email_roles: list[str] = (),
    email_addresses: str = "",
) -> IssuedChannel:
    """A channel of the organization; a signed webhook gets a fresh secret, returned here only."""
    secret = webhook_secret_new() if kind == Channel.Kind.WEBHOOK else ""
    channel = Channel.objects.create(
        organization=organization,
        name=name,
        kind=kind,
        url=url,
        email_roles=list(email_roles),
        email_addresses=email_addresses,
        secret_encrypted=crypto.encrypt(secret) if secret else "",
    )
    return IssuedChannel(channel=channel, webhook_secret=secret)


@transaction.atomic
def channel_secrets_reencrypt() -> int:
    """Every webhook secret encrypted again with the first (newest) credentials key; returns how many."""
    done = 0
    for channel in Channel.objects.select_for_update().exclude(secret_encrypted="").only("pk", "secret_encrypted"):
        channel.secret_encrypted = crypto.reencrypt(channel.secret_encrypted)
        channel.save(update_fields=["secret_encrypted"])
        done += 1
    return done


@transaction.atomic
def rule_create(
    *,
    organization: Organization,
    name: str,
    kind: str,
    parameters: dict | None = None,
    application=None,
    event_type: str = "",
    service_version: str = "",
    channels=(),
    renotify_minutes: int = 0,
) -> AlertRule:
    """A rule, its parameters checked and completed by its kind (``ValueError`` names a bad one)."""
    if application is not None and application.organization_id != organization.pk:
        raise ValueError("the application belongs to another organization")
    if any(channel.organization_id != organization.pk for channel in channels):
        raise ValueError("a channel belongs to another organization")
    rule = AlertRule.objects.create(
        organization=organization,
        application=application,
        name=name,
        kind=kind,
        parameters=KINDS[kind].clean(parameters or {}),
        event_type=event_type,
        service_version=service_version,
        renotify_minutes=renotify_minutes,
    )
    rule.channels.set(channels)
    return rule


# What an operator edits; the rest is the evaluation's, which may have moved on since the form was read.
RULE_SETTINGS = [
    "organization",
    "application",
    "name",
    "kind",
    "parameters",
    "event_type",
    "service_version",
    "renotify_minutes",
    "muted_until",
]


def rule_save(*, rule: AlertRule) -> AlertRule:
    """Saves a rule edited in the admin, its parameters completed by its kind. An existing rule's
    settings only: writing back the state and version read with the form would undo a transition
    made meanwhile, and its next notification would take a key already used."""
    rule.parameters = KINDS[rule.kind].clean(rule.parameters or {})
    if rule.pk is None:
        rule.save()
    else:
        rule.save(update_fields=RULE_SETTINGS)
    return rule


def rule_delete(*, rule: AlertRule) -> None:
    """Deletes a rule with its notifications and their deliveries."""
    rule.delete()


def channel_update(*, channel: Channel) -> Channel:
    """Saves a channel's name and where it sends; its kind and secret stay."""
    channel.save(update_fields=["name", "url", "email_roles", "email_addresses"])
    return channel


def channel_delete(*, channel: Channel) -> None:
    """Deletes a channel with its deliveries; rules keep their other channels."""
    channel.delete()


def rule_acknowledge(*, rule: AlertRule, by=None) -> bool:
    """Stops the reminders of a firing rule until it resolves; False when it is not firing."""
    return bool(
        AlertRule.objects.filter(pk=rule.pk, state=AlertRule.State.FIRING).update(
            acknowledged_at=timezone.now(), acknowledged_by=by
        )
    )


def rule_mute(*, rule: AlertRule, until: datetime | None) -> None:
    """No notifications of the rule before ``until`` (None: from now on again); its state is still kept."""
    AlertRule.objects.filter(pk=rule.pk).update(muted_until=until)


def _dashboard_url(organization: Organization, application) -> str:
    if application is None:
        path = reverse("dashboards:organization", args=[organization.public_id])
    else:
        path = reverse("dashboards:application", args=[organization.public_id, application.public_id])
    return settings.PUBLIC_URL.rstrip("/") + path


def _payload(rule: AlertRule, type_: str, state: str, since: datetime, measurement: Measurement) -> dict:
    application = rule.application
    return {
        "type": type_,
        "timestamp": timezone.now().astimezone(UTC).isoformat(),
        "alert": {
            "id": rule.pk,
            "name": rule.name,
            "kind": rule.kind,
            "state": state,
            "since": since.astimezone(UTC).isoformat(),
            "value": measurement.value,
            "threshold": measurement.threshold,
            "subject": measurement.subject,
            "event_type": rule.event_type,
            "service_version": rule.service_version,
        },
        "organization": {"id": rule.organization.public_id, "name": rule.organization.name},
        "application": None if application is None else {"id": application.public_id, "name": application.name},
        "url": _dashboard_url(rule.organization, application),
    }


def _notify(
    rule: AlertRule, *, now: datetime, measurement: Measurement, state: str, reminder: bool
) -> Notification | None:
    """Claims the rule's next version and records its notification, in one transaction: a conditional
    UPDATE on the version read, so of concurrent evaluations (workers, a restarted beat) one wins and
    the others change nothing; the notification's unique key is a second guard. Deliveries are
    enqueued once the transaction commits."""
    changes = {
        "version": F("version") + 1,
        "last_notified_at": now,
        "last_value": measurement.value,
        "last_evaluated_at": now,
    }
    if not reminder:
        changes.update(state=state, state_since=now, acknowledged_at=None, acknowledged_by=None)
    since = rule.state_since if reminder and rule.state_since else now
    muted = rule.muted_until is not None and rule.muted_until > now
    type_ = Notification.Type.FIRING if state == AlertRule.State.FIRING else Notification.Type.RESOLVED
    try:
        with transaction.atomic():
            if not AlertRule.objects.filter(pk=rule.pk, version=rule.version, state=rule.state).update(**changes):
                return None
            notification = Notification.objects.create(
                rule=rule,
                organization_id=rule.organization_id,
                key=f"rule-{rule.pk}-{rule.version + 1}",
                type=type_,
                reminder=reminder,
                muted=muted,
                value=measurement.value,
                threshold=measurement.threshold,
                payload=_payload(rule, type_, state, since, measurement),
                channel_ids=list(rule.channels.values_list("pk", flat=True)),
            )
    except IntegrityError:
        return None
    if not muted:
        transaction.on_commit(lambda: _dispatch(notification), robust=True)
    return notification


def _dispatch(notification: Notification) -> None:
    """Hands the notification's deliveries to the workers, then marks it dispatched. Marked after, so
    a process that stops in between leaves it for ``notifications_redispatch``: a delivery may be
    enqueued twice, never lost, and ``delivery_attempt`` sends it once. Run after commit as a robust
    hook: a broker that is down is logged and leaves the rest of an evaluation pass going."""
    from alerts.tasks import delivery_send

    for channel_id in notification.channel_ids:
        delivery_send.delay(notification_id=notification.pk, channel_id=channel_id)
    Notification.objects.filter(pk=notification.pk, dispatched_at__isnull=True).update(dispatched_at=timezone.now())


# Notifications not dispatched this long after they were made were left by a stopped process (or a
# broker outage); older than a day, they are no longer news.
REDISPATCH_AFTER = timedelta(minutes=2)
REDISPATCH_WITHIN = timedelta(days=1)


def notifications_redispatch(*, now: datetime | None = None) -> int:
    """Dispatches the notifications whose dispatch did not happen; returns how many."""
    now = now or timezone.now()
    stale = list(
        Notification.objects.filter(
            dispatched_at__isnull=True,
            muted=False,
            created_at__lt=now - REDISPATCH_AFTER,
            created_at__gte=now - REDISPATCH_WITHIN,
        ).order_by("pk")[:1000]
    )
    for notification in stale:
        _dispatch(notification)
    return len(stale)


def _due(rule: AlertRule, measurement: Measurement, now: datetime) -> tuple[str, bool] | None:
    """The (state, reminder) the rule must notify now, if any: a transition, or a reminder of a firing
    rule every ``renotify_minutes`` unless acknowledged."""
    wanted = AlertRule.State.FIRING if measurement.firing else AlertRule.State.OK
    if wanted != rule.state:
        return wanted, False
    if (
        rule.state == AlertRule.State.FIRING
        and rule.renotify_minutes
        and rule.acknowledged_at is None
        and rule.last_notified_at is not None
        and now >= rule.last_notified_at + timedelta(minutes=rule.renotify_minutes)
    ):
        return wanted, True
    return None


def rule_step(*, rule: AlertRule, measurement: Measurement, now: datetime) -> Notification | None:
    """Moves the rule to the state its measurement asks for, notifying once per transition or
    reminder; None when nothing was due or another evaluation made the notification first."""
    due = _due(rule, measurement, now)
    if due is None:
        return None
    return _notify(rule, now=now, measurement=measurement, state=due[0], reminder=due[1])


@dataclass(frozen=True)
class EvaluationResult:
    evaluated: int
    notifications: int


# Notifications claimed in one transaction (a savepoint each): one commit, not hundreds, when many
# rules change at once.
CLAIM_BATCH = 500


def rules_evaluate(*, now: datetime | None = None, rules=None) -> EvaluationResult:
    """Measures every rule (or ``rules``) from the rollups and outcomes, kind by kind in a few bulk
    reads each, then records what changed. Safe to run concurrently: see ``_notify``."""
    now = now or timezone.now()
    rules = list(rules if rules is not None else AlertRule.objects.all())
    by_kind: dict[str, list[AlertRule]] = {}
    for rule in rules:
        try:
            KINDS[rule.kind].clean(rule.parameters)
        except (KeyError, ValueError, TypeError, AttributeError):
            # Written around the form and the services (a shell, SQL): that rule waits, the others go on.
            logger.warning("alert rule %s skipped: kind %r with parameters %r", rule.pk, rule.kind, rule.parameters)
            continue
        by_kind.setdefault(rule.kind, []).append(rule)
    pending = []
    for kind_name, kind in KINDS.items():
        members = by_kind.get(kind_name)
        if not members:
            continue
        measurements = kind.measure(members, now)
        for rule in members:
            due = _due(rule, measurements[rule.pk], now)
            if due is None:
                rule.last_value, rule.last_evaluated_at = measurements[rule.pk].value, now
            else:
                pending.append((rule, measurements[rule.pk], due))
    # In id order, so concurrent evaluations lock rules in the same order and cannot deadlock.
    pending.sort(key=lambda item: item[0].pk)
    notified = 0
    for start in range(0, len(pending), CLAIM_BATCH):
        batch = pending[start : start + CLAIM_BATCH]
        # What a payload names is read for the rules that notify only, in two queries a batch.
        prefetch_related_objects([rule for rule, _, _ in batch], "organization", "application")
        with transaction.atomic():
            for rule, measurement, (state, reminder) in batch:
                if _notify(rule, now=now, measurement=measurement, state=state, reminder=reminder) is not None:
                    notified += 1
    _measured_values_store([rule for rule in rules if rule.last_evaluated_at == now], now)
    return EvaluationResult(evaluated=sum(map(len, by_kind.values())), notifications=notified)


def _measured_values_store(rules: list[AlertRule], now: datetime) -> None:
    """The measured values of the rules that did not notify, for the admin. On PostgreSQL one UPDATE
    from two arrays: Django's bulk_update builds a CASE of every row, three quarters of a pass over
    10,000 rules (benchmarks/alerts.py)."""
    if connection.vendor != "postgresql":
        AlertRule.objects.bulk_update(rules, ["last_value", "last_evaluated_at"], batch_size=500)
        return
    table = AlertRule._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_value = measured.value, last_evaluated_at = %s "
            "FROM unnest(%s::bigint[], %s::double precision[]) AS measured(id, value) "
            f"WHERE {table}.id = measured.id",
            [
                now,
                [rule.pk for rule in rules],
                [None if rule.last_value is None else float(rule.last_value) for rule in rules],
            ],
        )


@transaction.atomic
def channel_test_send(*, channel: Channel) -> Notification:
    """A test notification to the channel, delivered like any other once this transaction commits."""
    organization = channel.organization
    notification = Notification.objects.create(
        organization=organization,
        key=f"test-{uuid.uuid4().hex}",
        type=Notification.Type.TEST,
        payload={
            "type": Notification.Type.TEST,
            "timestamp": timezone.now().astimezone(UTC).isoformat(),
            "alert": None,
            "organization": {"id": organization.public_id, "name": organization.name},
            "application": None,
            "url": _dashboard_url(organization, None),
            "message": f"A test of the channel {channel.name}.",
        },
        channel_ids=[channel.pk],
    )
    transaction.on_commit(lambda: _dispatch(notification), robust=True)
    return notification


def _headline(payload: dict) -> str:
    """One line for people: the e-mail subject, and the start of a chat message."""
    alert = payload.get("alert")
    if alert is None:
        return f"Test from Telemetry for {payload['organization']['name']}: this channel works"
    where = payload["application"]["name"] if payload["application"] else payload["organization"]["name"]
    subject = f" ({alert['subject']})" if alert.get("subject") else ""
    verb = "FIRING" if alert["state"] == AlertRule.State.FIRING else "resolved"
    return (
        f"[{verb}] {alert['name']} on {where}{subject}: {alert['kind']} value {alert['value']}, "
        f"threshold {alert['threshold']}"
    )


def _text(payload: dict) -> str:
    return f"{_headline(payload)}. {payload['url']}"


def email_addresses_split(text: str) -> list[str]:
    """The addresses an e-mail channel is given, one a line or separated by commas."""
    return [address for address in (part.strip() for part in text.replace(",", "\n").splitlines()) if address]


def email_recipients(channel: Channel) -> list[str]:
    """The channel's given addresses and the e-mail of each member holding one of its roles."""
    members = Membership.objects.filter(organization_id=channel.organization_id, role__in=channel.email_roles)
    given = email_addresses_split(channel.email_addresses)
    return sorted(set(filter(None, [*given, *members.values_list("user__email", flat=True)])))


class _Permanent(Exception):
    """A failure no retry can fix."""


def _send(channel: Channel, notification: Notification) -> int | None:
    """Sends once; the HTTP status for webhooks. Raises on failure."""
    if channel.kind == Channel.Kind.EMAIL:
        recipients = email_recipients(channel)
        if not recipients:
            raise _Permanent("no recipients: no member has the channel's roles and no address is given")
        send_mail(
            _headline(notification.payload),
            f"{_text(notification.payload)}\n\n{json.dumps(notification.payload, indent=2)}",
            None,
            recipients,
        )
        return None
    if channel.kind == Channel.Kind.SLACK:
        body = json.dumps({"text": _text(notification.payload)}).encode()
        headers = {}
    else:
        body_text = json.dumps(notification.payload, separators=(",", ":"))
        body = body_text.encode()
        # The same id on every attempt, as the specification asks, so receivers can drop a repeat.
        message_id = f"msg_{notification.key}_{channel.pk}"
        sent_at = datetime.now(UTC).replace(microsecond=0)
        import standardwebhooks  # on use: deliveries run in the Celery worker; web workers need not load it

        signature = standardwebhooks.Webhook(crypto.decrypt(channel.secret_encrypted)).sign(
            msg_id=message_id, timestamp=sent_at, data=body_text
        )
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature,
        }
    try:
        response = outbound.post(channel.url, body, headers)
    except outbound.RefusedUrl as refused:
        raise _Permanent(str(refused)) from None
    if not 200 <= response.status < 300:
        raise _HttpStatus(response.status, response.body[:200].decode("utf-8", "replace"))
    return response.status


class _HttpStatus(Exception):
    def __init__(self, status: int, excerpt: str):
        super().__init__(f"HTTP {status}: {excerpt}".strip())
        self.status = status


@dataclass(frozen=True)
class AttemptResult:
    delivery: Delivery
    retry: bool  # a later attempt may succeed


@transaction.atomic
def delivery_attempt(*, notification_id: int, channel_id: int, attempt: int) -> AttemptResult:
    """Sends the notification to the channel once and records the attempt. The notification's row is
    locked meanwhile, so a delivery enqueued twice (a redelivered task, a redispatch) waits for the
    other and then finds it sent."""
    notification = Notification.objects.select_for_update().get(pk=notification_id)
    channel = Channel.objects.get(pk=channel_id)
    done = Delivery.objects.filter(notification=notification, channel=channel, status=Delivery.Status.SENT).first()
    if done is not None:
        return AttemptResult(done, retry=False)
    import smtplib  # on use: deliveries run in the Celery worker; web workers need not load it

    started = time.monotonic()
    status_code, error, retry = None, "", False
    try:
        status_code = _send(channel, notification)
    except _Permanent as failure:
        error = str(failure)
    except _HttpStatus as failure:
        status_code, error, retry = failure.status, str(failure), True
    except (OSError, smtplib.SMTPException, http.client.HTTPException) as failure:
        error, retry = f"{type(failure).__name__}: {failure}", True
    delivery = Delivery.objects.create(
        notification=notification,
        channel=channel,
        attempt=attempt,
        status_code=status_code,
        status=Delivery.Status.FAILED if error else Delivery.Status.SENT,
        error=error[:ERROR_LENGTH],
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return AttemptResult(delivery, retry=retry)

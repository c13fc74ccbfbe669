"""Deliveries: signed webhooks per the Standard Webhooks specification, Slack messages, e-mail,
retries against a receiver that fails first, and a Delivery row for every attempt."""

import base64
import hashlib
import hmac
import ipaddress
import json
from datetime import timedelta

import pytest
import standardwebhooks
from django.core import mail
from django.db import connection
from django.utils import timezone

from accounts.models import Membership
from alerts import outbound
from alerts.models import Delivery, Notification
from alerts.services import (
    channel_create,
    channel_test_send,
    delivery_attempt,
    notifications_redispatch,
    rule_create,
    rules_evaluate,
)
from alerts.tasks import DELIVERY_RETRIES, delivery_send
from tests.alerts.conftest import NOW, at_once
from tests.factories import ApplicationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def application():
    return ApplicationFactory(name="checkout")


def webhook(application, url):
    return channel_create(organization=application.organization, name="hook", kind="webhook", url=url)


def firing_notification(application, channel) -> Notification:
    rule = rule_create(
        organization=application.organization,
        application=application,
        name="checkout is quiet",
        kind="silence",
        parameters={"minutes": 5},
        channels=[channel],
    )
    rules_evaluate(now=NOW)
    return Notification.objects.get(rule=rule)


def send(notification, channel):
    delivery_send.apply(kwargs={"notification_id": notification.pk, "channel_id": channel.pk})


def attempts(channel):
    return list(
        Delivery.objects.filter(channel=channel).order_by("attempt").values_list("attempt", "status", "status_code")
    )


def test_a_webhook_is_signed_as_the_specification_says(application, receiver):
    issued = webhook(application, receiver.url)
    notification = firing_notification(application, issued.channel)

    send(notification, issued.channel)

    headers, body = receiver.received[0]
    key = base64.b64decode(issued.webhook_secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == expected
    assert standardwebhooks.Webhook(issued.webhook_secret).verify(body, headers)["type"] == "alert.firing"


def test_a_webhook_body_names_the_alert_its_organization_and_application(application, receiver):
    issued = webhook(application, receiver.url)
    notification = firing_notification(application, issued.channel)

    send(notification, issued.channel)

    body = json.loads(receiver.received[0][1])
    assert body["type"] == "alert.firing"
    assert {key: body["alert"][key] for key in ("name", "kind", "state", "value", "threshold")} == {
        "name": "checkout is quiet",
        "kind": "silence",
        "state": "firing",
        "value": 0,
        "threshold": 5,
    }
    assert body["application"] == {"id": application.public_id, "name": "checkout"}
    assert body["organization"]["id"] == application.organization.public_id
    assert body["url"].endswith(f"/orgs/{application.organization.public_id}/apps/{application.public_id}/")


def test_the_webhook_secret_is_stored_encrypted(application, receiver):
    issued = webhook(application, receiver.url)

    assert issued.webhook_secret.startswith("whsec_")
    assert issued.webhook_secret.removeprefix("whsec_") not in issued.channel.secret_encrypted
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_encrypted FROM alerts_channel WHERE id = %s", [issued.channel.pk])
        assert "whsec_" not in cursor.fetchone()[0]


def test_a_failed_delivery_is_retried_and_every_attempt_recorded(application, receiver):
    receiver.script = [500, 503]
    issued = webhook(application, receiver.url)
    notification = firing_notification(application, issued.channel)

    send(notification, issued.channel)

    assert attempts(issued.channel) == [(1, "failed", 500), (2, "failed", 503), (3, "sent", 200)]
    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1


def test_a_delivery_already_sent_is_not_sent_again(application, receiver):
    issued = webhook(application, receiver.url)
    notification = firing_notification(application, issued.channel)

    send(notification, issued.channel)
    send(notification, issued.channel)

    assert len(receiver.received) == 1
    assert attempts(issued.channel) == [(1, "sent", 200)]


def test_an_unreachable_receiver_is_tried_until_the_retries_run_out(application):
    issued = webhook(application, "http://127.0.0.1:9/closed")
    notification = firing_notification(application, issued.channel)

    send(notification, issued.channel)

    failures = Delivery.objects.filter(channel=issued.channel)
    assert failures.count() == DELIVERY_RETRIES + 1 and not failures.filter(status="sent").exists()
    assert "ConnectionRefusedError" in failures.first().error


def test_a_url_other_than_http_is_refused_without_retries(application):
    issued = webhook(application, "file:///etc/passwd")
    notification = firing_notification(application, issued.channel)

    send(notification, issued.channel)

    delivery = Delivery.objects.get(channel=issued.channel)
    assert delivery.status == "failed" and "only http and https" in delivery.error


@pytest.mark.parametrize(
    "url", ["http://localhost:{port}/hook", "http://127.0.0.1:{port}/hook", "http://[::ffff:127.0.0.1]:{port}/hook"]
)
def test_a_private_address_is_refused_without_retries_unless_its_network_is_allowed(
    application, receiver, settings, url
):
    settings.ALERTS_PRIVATE_NETWORKS = []
    issued = webhook(application, url.format(port=receiver.port))
    notification = firing_notification(application, issued.channel)

    send(notification, issued.channel)

    delivery = Delivery.objects.get(channel=issued.channel)
    assert delivery.status == "failed" and "private, loopback or reserved" in delivery.error
    assert receiver.received == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00::1]/hook",
        "http://0.0.0.0:6379/",
    ],
)
def test_private_and_reserved_addresses_are_refused_before_any_connection(url, settings):
    settings.ALERTS_PRIVATE_NETWORKS = []

    with pytest.raises(outbound.RefusedUrl):
        outbound.post(url, b"{}", {})


def test_an_allowed_private_network_admits_only_itself(settings):
    settings.ALERTS_PRIVATE_NETWORKS = [ipaddress.ip_network("10.1.0.0/16")]

    outbound.url_check("http://10.1.2.3/hook")
    with pytest.raises(outbound.RefusedUrl):
        outbound.url_check("http://10.2.0.1/hook")


def test_a_slack_channel_gets_one_line_of_text(application, receiver):
    slack = channel_create(organization=application.organization, name="ops", kind="slack", url=receiver.url).channel
    notification = firing_notification(application, slack)

    send(notification, slack)

    message = json.loads(receiver.received[0][1])
    assert list(message) == ["text"]
    assert message["text"].startswith("[FIRING] checkout is quiet on checkout")


def test_an_email_goes_to_the_members_of_the_roles_and_the_given_addresses(application):
    for role, email in (("owner", "owner@example.com"), ("viewer", "viewer@example.com")):
        Membership.objects.create(user=UserFactory(email=email), organization=application.organization, role=role)
    channel = channel_create(
        organization=application.organization,
        name="mail",
        kind="email",
        email_roles=["owner"],
        email_addresses="oncall@example.com",
    ).channel
    notification = firing_notification(application, channel)

    send(notification, channel)

    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["oncall@example.com", "owner@example.com"]
    assert "checkout is quiet" in mail.outbox[0].subject
    assert attempts(channel) == [(1, "sent", None)]


def test_a_firing_rule_reaches_its_channels_once_the_transition_commits(
    application, receiver, eager_celery, django_capture_on_commit_callbacks
):
    issued = webhook(application, receiver.url)
    rule_create(
        organization=application.organization,
        application=application,
        name="quiet",
        kind="silence",
        channels=[issued.channel],
    )

    with django_capture_on_commit_callbacks(execute=True):
        rules_evaluate(now=NOW)
    with django_capture_on_commit_callbacks(execute=True):
        rules_evaluate(now=NOW)

    assert len(receiver.received) == 1
    assert attempts(issued.channel) == [(1, "sent", 200)]


def test_a_channel_test_is_delivered_like_an_alert(
    application, receiver, eager_celery, django_capture_on_commit_callbacks
):
    issued = webhook(application, receiver.url)

    with django_capture_on_commit_callbacks(execute=True):
        channel_test_send(channel=issued.channel)

    headers, body = receiver.received[0]
    assert standardwebhooks.Webhook(issued.webhook_secret).verify(body, headers)["type"] == "alert.test"


def test_a_notification_whose_dispatch_was_lost_is_dispatched_by_a_later_pass(application, receiver, eager_celery):
    issued = webhook(application, receiver.url)
    # Outside django_capture_on_commit_callbacks the commit hooks never run: as if the process had
    # stopped between recording the transition and handing its deliveries over.
    notification = firing_notification(application, issued.channel)
    assert receiver.received == []

    assert notifications_redispatch(now=timezone.now() + timedelta(minutes=3)) == 1
    assert notifications_redispatch(now=timezone.now() + timedelta(minutes=4)) == 0

    assert len(receiver.received) == 1
    notification.refresh_from_db()
    assert notification.dispatched_at is not None


def test_a_notification_is_not_redispatched_before_its_own_dispatch_had_time(application, receiver):
    firing_notification(application, webhook(application, receiver.url).channel)

    assert notifications_redispatch() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_delivery_enqueued_twice_is_sent_once(application, receiver):
    receiver.pause = 0.5
    issued = webhook(application, receiver.url)
    notification = firing_notification(application, issued.channel)
    errors = at_once(lambda: delivery_attempt(notification_id=notification.pk, channel_id=issued.channel.pk, attempt=1))

    assert errors == []
    assert len(receiver.received) == 1
    assert attempts(issued.channel) == [(1, "sent", 200)]


def test_an_email_refused_by_the_mail_server_is_retried_until_it_is_accepted(application, smtp_server):
    smtp_server.refusals = 1
    channel = channel_create(
        organization=application.organization, name="mail", kind="email", email_addresses="oncall@example.com"
    ).channel
    notification = firing_notification(application, channel)

    send(notification, channel)

    assert attempts(channel) == [(1, "failed", None), (2, "sent", None)]
    assert "451" in Delivery.objects.get(channel=channel, attempt=1).error
    recipients, content = smtp_server.messages[0]
    assert recipients == ["oncall@example.com"]
    assert b"Subject: [FIRING] checkout is quiet on checkout" in content

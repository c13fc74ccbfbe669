"""create_alert: the contract scripts and tests rely on."""

import json
from io import StringIO

import pytest
import standardwebhooks
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from alerts.models import AlertRule, Channel
from alerts.services import rules_evaluate
from alerts.tasks import delivery_send
from telemetry.lib import crypto
from tests.alerts.conftest import NOW
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db


def create_alert(*args) -> dict:
    out = StringIO()
    call_command("create_alert", *args, stdout=out)
    return json.loads(out.getvalue())


def test_create_alert_prints_one_object_with_the_rule_and_its_webhook_secret(receiver):
    application = ApplicationFactory()

    result = create_alert(
        "--org",
        application.organization.public_id,
        "--app",
        application.public_id,
        "--kind",
        "silence",
        "--minutes",
        "3",
        "--webhook",
        receiver.url,
        "--json",
    )

    assert set(result) == {"alert_id", "webhook_secret"}
    rule = AlertRule.objects.get(pk=result["alert_id"])
    assert (rule.application, rule.parameters) == (application, {"minutes": 3})
    assert list(rule.channels.values_list("kind", "url")) == [("webhook", receiver.url)]
    rules_evaluate(now=NOW)
    delivery_send.apply(kwargs={"notification_id": rule.notifications.get().pk, "channel_id": rule.channels.get().pk})
    headers, body = receiver.received[0]
    assert standardwebhooks.Webhook(result["webhook_secret"]).verify(body, headers)["alert"]["id"] == rule.pk


def test_create_alert_takes_other_kinds_parameters_by_name():
    application = ApplicationFactory(name="shop")

    result = create_alert(
        "--org",
        application.organization.name,
        "--kind",
        "rate",
        "--param",
        "threshold=250",
        "--param",
        "direction=below",
        "--slack",
        "https://chat.example.com/hook",
        "--json",
    )

    rule = AlertRule.objects.get(pk=result["alert_id"])
    assert rule.application is None and result["webhook_secret"] == ""
    assert rule.parameters == {"window_minutes": 5, "threshold": 250.0, "direction": "below"}
    assert Channel.objects.get().kind == "slack"


def test_create_alert_refuses_a_bad_parameter_and_creates_nothing():
    application = ApplicationFactory()

    with pytest.raises(CommandError, match="minutes must be at least 1"):
        create_alert(
            "--org",
            application.organization.public_id,
            "--kind",
            "silence",
            "--minutes",
            "0",
            "--webhook",
            "https://example.com/hook",
            "--json",
        )
    assert not AlertRule.objects.exists() and not Channel.objects.exists()


def test_rotate_alert_secrets_key_moves_webhook_secrets_to_the_new_key(settings, receiver):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CREDENTIALS_ENCRYPTION_KEYS = [old_key]
    application = ApplicationFactory()
    secret = create_alert(
        "--org", application.organization.public_id, "--kind", "silence", "--webhook", receiver.url, "--json"
    )["webhook_secret"]

    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_alert_secrets_key", stdout=StringIO())
    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key]

    assert crypto.decrypt(Channel.objects.get().secret_encrypted) == secret

"""Alert rules, channels and deliveries in the admin: each organization sees only its own, owners
and admins manage them, and the buttons do what they say."""

import json

import pytest
import standardwebhooks
from django.urls import reverse

from accounts.models import Membership
from alerts.models import AlertRule, Channel, Delivery
from alerts.services import channel_create, rule_create, rules_evaluate
from tests.alerts.conftest import NOW
from tests.factories import ApplicationFactory, UserFactory

pytestmark = pytest.mark.django_db

ROLES = ["owner", "admin", "viewer"]
NO_INLINES = {
    "notifications-TOTAL_FORMS": "0",
    "notifications-INITIAL_FORMS": "0",
    "deliveries-TOTAL_FORMS": "0",
    "deliveries-INITIAL_FORMS": "0",
}


@pytest.fixture
def world():
    found = {}
    for side in ("own", "other"):
        application = ApplicationFactory(name=f"{side}-app")
        channel = channel_create(
            organization=application.organization, name=f"{side}-channel", kind="slack", url="http://127.0.0.1:9/"
        ).channel
        found[side] = {
            "organization": application.organization,
            "application": application,
            "channel": channel,
            "rule": rule_create(
                organization=application.organization,
                application=application,
                name=f"{side}-rule",
                kind="silence",
                channels=[channel],
            ),
        }
    return found


def member(client, world, role):
    user = UserFactory()
    Membership.objects.create(user=user, organization=world["own"]["organization"], role=role)
    client.force_login(user)
    return user


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("model", ["alertrule", "channel"])
def test_lists_show_only_the_members_organization(client, world, role, model):
    member(client, world, role)

    response = client.get(reverse(f"admin:alerts_{model}_changelist"))

    assert response.status_code == 200
    assert b"own-" in response.content
    assert b"other-" not in response.content


@pytest.mark.parametrize("model", ["rule", "channel"])
def test_another_organizations_rule_or_channel_answers_404(client, world, model):
    member(client, world, "owner")
    name = "alertrule" if model == "rule" else "channel"

    assert client.get(reverse(f"admin:alerts_{name}_change", args=[world["own"][model].pk])).status_code == 200
    assert client.get(reverse(f"admin:alerts_{name}_change", args=[world["other"][model].pk])).status_code == 404


def test_the_delivery_log_shows_only_the_members_organization(client, world):
    for side in ("own", "other"):
        rules_evaluate(now=NOW, rules=AlertRule.objects.filter(pk=world[side]["rule"].pk))
        notification = world[side]["rule"].notifications.get()
        Delivery.objects.create(
            notification=notification, channel=world[side]["channel"], attempt=1, status="failed", error=f"{side}-error"
        )
    member(client, world, "viewer")

    response = client.get(reverse("admin:alerts_delivery_changelist"))

    assert b"own-error" in response.content
    assert b"other-error" not in response.content


def rule_form(world, side="own", **overrides):
    return {
        "organization": world[side]["organization"].pk,
        "application": world[side]["application"].pk,
        "name": "spike",
        "kind": "rate",
        "parameters": json.dumps({"threshold": 100}),
        "channels": [world[side]["channel"].pk],
        "renotify_minutes": "30",
        **NO_INLINES,
        **overrides,
    }


@pytest.mark.parametrize("role", ROLES)
def test_owners_and_admins_add_rules_and_viewers_cannot(client, world, role):
    member(client, world, role)

    response = client.post(reverse("admin:alerts_alertrule_add"), rule_form(world))

    assert response.status_code == (302 if role != "viewer" else 403)
    created = AlertRule.objects.filter(name="spike").first()
    if role == "viewer":
        assert created is None
    else:
        assert created.parameters == {"window_minutes": 5, "threshold": 100.0, "direction": "above"}
        assert list(created.channels.all()) == [world["own"]["channel"]]


def test_a_rule_with_bad_parameters_is_refused_with_the_reason(client, world):
    member(client, world, "owner")

    response = client.post(
        reverse("admin:alerts_alertrule_add"), rule_form(world, parameters=json.dumps({"direction": "sideways"}))
    )

    assert response.status_code == 200
    assert b"direction must be one of above, below" in response.content
    assert not AlertRule.objects.filter(name="spike").exists()


def test_a_rule_cannot_notify_another_organizations_channel(client, world):
    member(client, world, "owner")

    response = client.post(
        reverse("admin:alerts_alertrule_add"), rule_form(world, channels=[world["other"]["channel"].pk])
    )

    assert response.status_code == 200
    assert not AlertRule.objects.filter(name="spike").exists()


def test_acknowledge_and_mute_actions_change_only_the_members_rules(client, world):
    rules_evaluate(now=NOW)
    user = member(client, world, "admin")
    changelist = reverse("admin:alerts_alertrule_changelist")
    selected = [world["own"]["rule"].pk, world["other"]["rule"].pk]

    client.post(changelist, {"action": "acknowledge_selected", "_selected_action": selected})
    client.post(changelist, {"action": "mute_hour_selected", "_selected_action": selected})

    own, other = (AlertRule.objects.get(pk=pk) for pk in selected)
    assert (own.acknowledged_by, own.muted_until is not None) == (user, True)
    assert (other.acknowledged_at, other.muted_until) == (None, None)


def test_a_new_signed_webhook_shows_its_secret_once(client, world, receiver):
    member(client, world, "owner")

    response = client.post(
        reverse("admin:alerts_channel_add"),
        {
            "organization": world["own"]["organization"].pk,
            "name": "pager",
            "kind": "webhook",
            "url": receiver.url,
            **NO_INLINES,
        },
    )

    channel = Channel.objects.get(name="pager")
    secret = response.context["secret"]
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert secret.startswith("whsec_") and secret.encode() in response.content
    assert secret.encode() not in client.get(reverse("admin:alerts_channel_change", args=[channel.pk])).content


def test_a_webhook_into_a_private_network_is_refused_by_the_form(client, world, settings):
    settings.ALERTS_PRIVATE_NETWORKS = []
    member(client, world, "owner")

    response = client.post(
        reverse("admin:alerts_channel_add"),
        {
            "organization": world["own"]["organization"].pk,
            "name": "inside",
            "kind": "slack",
            "url": "http://192.168.1.20:8065/hooks/abc",
            **NO_INLINES,
        },
    )

    assert response.status_code == 200
    assert "APP_ALERTS__PRIVATE_NETWORKS" in str(response.context["adminform"].form.errors["url"])
    assert not Channel.objects.filter(name="inside").exists()


def test_send_a_test_delivers_to_the_channel_and_logs_it(
    client, world, receiver, eager_celery, django_capture_on_commit_callbacks
):
    member(client, world, "owner")
    issued = channel_create(organization=world["own"]["organization"], name="pager", kind="webhook", url=receiver.url)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:alerts_channel_test", args=[issued.channel.pk]))

    assert response.status_code == 302
    headers, body = receiver.received[0]
    assert standardwebhooks.Webhook(issued.webhook_secret).verify(body, headers)["type"] == "alert.test"
    assert Delivery.objects.get(channel=issued.channel).status == "sent"


def test_a_viewer_cannot_send_a_test(client, world):
    member(client, world, "viewer")

    response = client.post(reverse("admin:alerts_channel_test", args=[world["own"]["channel"].pk]))

    assert response.status_code == 403
    assert not Delivery.objects.exists()


def test_another_organizations_channel_cannot_be_tested(client, world):
    member(client, world, "owner")

    assert client.post(reverse("admin:alerts_channel_test", args=[world["other"]["channel"].pk])).status_code == 404

"""Alerts on the dashboards: the firing rules in scope as a banner and their transitions marked on the
charts of the organization and application pages, and the organization's alert history."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from alerts.kinds import Measurement
from alerts.models import AlertRule, Delivery, Notification
from alerts.selectors import firing_rules
from alerts.services import channel_create, rule_acknowledge, rule_create, rule_mute, rule_step, rules_evaluate
from tests.alerts.conftest import NOW
from tests.factories import ApplicationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    """Two applications of one organization and one of another; a silence rule on each application
    and one organization-wide, all firing (no events), and one rule that stays ok."""
    shop = ApplicationFactory(name="shop")
    organization = shop.organization
    blog = ApplicationFactory(name="blog", organization=organization)
    elsewhere = ApplicationFactory(name="elsewhere")
    rules = {
        "shop": rule_create(
            organization=organization, application=shop, name="shop is quiet", kind="silence", parameters={"minutes": 5}
        ),
        "blog": rule_create(organization=organization, application=blog, name="blog is quiet", kind="silence"),
        "all": rule_create(organization=organization, name="everything is quiet", kind="silence"),
        "elsewhere": rule_create(
            organization=elsewhere.organization, application=elsewhere, name="elsewhere is quiet", kind="silence"
        ),
        "calm": rule_create(
            organization=organization, application=shop, name="shop spikes", kind="rate", parameters={"threshold": 1000}
        ),
    }
    rules_evaluate(now=NOW)
    return {"organization": organization, "shop": shop, "blog": blog, "elsewhere": elsewhere, "rules": rules}


def member(client, organization, role="viewer"):
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=organization, role=role)
    client.force_login(user)
    return user


def test_firing_rules_of_an_organization_are_its_own_firing_ones_in_one_query(world, django_assert_num_queries):
    with django_assert_num_queries(1):
        names = [rule.name for rule in firing_rules(organization=world["organization"])]

    assert sorted(names) == ["blog is quiet", "everything is quiet", "shop is quiet"]


def test_firing_rules_of_an_application_add_the_organization_wide_ones(world):
    rules = firing_rules(organization=world["organization"], application=world["shop"])

    assert sorted(rule.name for rule in rules) == ["everything is quiet", "shop is quiet"]


def test_a_firing_rule_carries_its_value_and_the_threshold_it_fired_at(world):
    rule = next(
        r
        for r in firing_rules(organization=world["organization"], application=world["shop"])
        if r.name == "shop is quiet"
    )

    assert (rule.state, rule.state_since, rule.last_value, rule.threshold) == ("firing", NOW, 0, 5)


def test_the_application_page_shows_the_firing_alerts_in_scope(client, world):
    member(client, world["organization"])

    response = client.get(
        reverse("dashboards:application", args=[world["organization"].public_id, world["shop"].public_id])
    )

    assert response.status_code == 200
    banner = response.content.decode().split('class="card alerts-banner"')[1].split("</section>")[0]
    assert "2 alerts firing" in banner
    assert "shop is quiet" in banner and "everything is quiet" in banner
    assert "blog is quiet" not in banner and "elsewhere is quiet" not in banner and "shop spikes" not in banner
    assert "No events for a while" in banner
    assert "value 0 against threshold 5" in banner
    assert "not acknowledged" in banner


def test_the_organization_page_shows_all_its_firing_alerts_and_none_of_others(client, world):
    member(client, world["organization"])

    response = client.get(reverse("dashboards:organization", args=[world["organization"].public_id]))

    assert [rule.name for rule in response.context["firing"]] == [
        "blog is quiet",
        "everything is quiet",
        "shop is quiet",
    ]
    assert b"3 alerts firing" in response.content
    assert b"elsewhere is quiet" not in response.content


def test_an_acknowledged_alert_says_so(client, world):
    user = member(client, world["organization"])
    rule_acknowledge(rule=AlertRule.objects.get(pk=world["rules"]["shop"].pk), by=user)

    response = client.get(
        reverse("dashboards:application", args=[world["organization"].public_id, world["shop"].public_id])
    )

    shop_item = response.content.decode().split("shop is quiet")[1].split("</li>")[0]
    assert '<span class="ack">acknowledged</span>' in shop_item


@pytest.mark.parametrize(("role", "linked"), [("owner", True), ("admin", True), ("viewer", False)])
def test_only_those_who_may_manage_get_a_link_to_the_rule_in_the_admin(client, world, role, linked):
    member(client, world["organization"], role)

    response = client.get(reverse("dashboards:organization", args=[world["organization"].public_id]))

    link = reverse("admin:alerts_alertrule_change", args=[world["rules"]["shop"].pk]).encode()
    assert (link in response.content) is linked


def test_no_banner_without_firing_alerts(client):
    application = ApplicationFactory()
    member(client, application.organization)

    response = client.get(reverse("dashboards:organization", args=[application.organization.public_id]))

    assert response.context["firing"] == []
    assert b"alerts-banner" not in response.content


def test_the_charts_mark_the_transitions_of_the_rules_in_scope_within_the_range(client, world):
    member(client, world["organization"])
    Notification.objects.filter(rule=world["rules"]["all"]).update(created_at=timezone.now() - timedelta(days=3))
    rules_evaluate(now=NOW + timedelta(minutes=1))  # still firing: no new transition
    shop = Notification.objects.get(rule=world["rules"]["shop"])

    response = client.get(
        reverse("dashboards:application", args=[world["organization"].public_id, world["shop"].public_id])
        + "?range=24h"
    )

    assert response.context["charts"]["marks"] == [
        {"t": int(shop.created_at.timestamp()), "type": "firing", "rule": "shop is quiet"}
    ]
    assert b"1 alert transition in this range" in response.content


def test_the_charts_mark_resolutions_and_leave_out_reminders(client, world):
    member(client, world["organization"])
    rule = world["rules"]["blog"]
    AlertRule.objects.filter(pk=rule.pk).update(renotify_minutes=1)
    rules_evaluate(now=NOW + timedelta(minutes=2), rules=AlertRule.objects.filter(pk=rule.pk))
    rule.refresh_from_db()
    measurement = Measurement(firing=False, value=3, threshold=5)
    rule_step(rule=rule, measurement=measurement, now=NOW + timedelta(minutes=3))

    response = client.get(
        reverse("dashboards:application", args=[world["organization"].public_id, world["blog"].public_id])
    )

    kinds = [(mark["rule"], mark["type"]) for mark in response.context["charts"]["marks"]]
    assert sorted(kinds) == [
        ("blog is quiet", "firing"),
        ("blog is quiet", "resolved"),
        ("everything is quiet", "firing"),
    ]
    assert Notification.objects.filter(rule=rule, reminder=True).count() == 1


def test_marks_are_drawn_by_the_static_chart_script_not_an_inline_one(client, world):
    member(client, world["organization"])

    response = client.get(reverse("dashboards:organization", args=[world["organization"].public_id]))

    assert len(response.context["charts"]["marks"]) == 3
    data = response.content.decode().split('<script id="chart-data" type="application/json">')[1]
    assert '"marks": [{"t": ' in data.split("</script>")[0]
    assert "<script>" not in response.content.decode()


def history(client, organization, query=""):
    return client.get(reverse("dashboards:alert_history", args=[organization.public_id]) + query)


def test_the_history_lists_transitions_newest_first_with_their_deliveries(client, world):
    member(client, world["organization"])
    rule, channel = (
        world["rules"]["shop"],
        channel_create(
            organization=world["organization"], name="ops hook", kind="slack", url="http://127.0.0.1:9/"
        ).channel,
    )
    rule_step(
        rule=AlertRule.objects.get(pk=rule.pk),
        measurement=Measurement(value=7, threshold=5, firing=False),
        now=NOW + timedelta(minutes=1),
    )
    fired, resolved = Notification.objects.filter(rule=rule).order_by("pk")
    Delivery.objects.create(
        notification=fired, channel=channel, attempt=1, status="failed", status_code=503, error="receiver answered 503"
    )
    Delivery.objects.create(notification=fired, channel=channel, attempt=2, status="sent", status_code=200)

    response = history(client, world["organization"], f"?rule={rule.pk}")

    assert response.status_code == 200
    assert list(response.context["page"]) == [resolved, fired]
    text = response.content.decode()
    assert text.index("Resolved") < text.index("Firing")
    row = text.split('<span class="type-firing">')[1].split("</tr>")[0]
    assert (
        "ops hook" in row
        and "attempt 2" in row
        and "attempt 1" in row
        and row.index("attempt 2") < row.index("attempt 1")
    )
    assert "HTTP 503" in row and "receiver answered 503" in row and "sent" in row


def test_the_history_shows_reminders_and_muted_notifications_as_such(client, world):
    member(client, world["organization"])
    rule = AlertRule.objects.get(pk=world["rules"]["blog"].pk)
    rule_mute(rule=rule, until=NOW + timedelta(days=1))
    rule.refresh_from_db()
    rule_step(rule=rule, measurement=Measurement(value=2, threshold=1, firing=False), now=NOW + timedelta(minutes=1))

    response = history(client, world["organization"], f"?rule={rule.pk}")

    resolved = response.content.decode().split('<span class="type-resolved">')[1].split("</tr>")[0]
    assert "muted, not sent" in resolved and "none: muted" in resolved


def test_the_history_of_the_organization_holds_only_its_own_rules(client, world):
    member(client, world["organization"])

    response = history(client, world["organization"])

    assert sorted(n.rule.name for n in response.context["page"]) == [
        "blog is quiet",
        "everything is quiet",
        "shop is quiet",
    ]
    assert b"elsewhere is quiet" not in response.content


@pytest.mark.parametrize("role", ["owner", "admin", "viewer"])
def test_every_member_may_see_the_history(client, world, role):
    member(client, world["organization"], role)

    assert history(client, world["organization"]).status_code == 200


def test_another_organizations_history_or_rule_answers_404(client, world):
    member(client, world["organization"])

    assert history(client, world["elsewhere"].organization).status_code == 404
    assert history(client, world["organization"], f"?rule={world['rules']['elsewhere'].pk}").status_code == 404


def test_the_history_is_paginated(client, world):
    member(client, world["organization"])
    rule = AlertRule.objects.get(pk=world["rules"]["shop"].pk)
    for minute in range(1, 30):
        rule.refresh_from_db()
        rule_step(
            rule=rule,
            measurement=Measurement(value=minute % 2, threshold=1, firing=minute % 2 == 0),
            now=NOW + timedelta(minutes=minute),
        )

    first, last = history(client, world["organization"]), history(client, world["organization"], "?page=2")

    assert first.context["page"].paginator.count == 32
    assert (len(first.context["page"]), len(last.context["page"])) == (25, 7)
    assert b"page=2" in first.content
    assert set(first.context["page"]).isdisjoint(last.context["page"])


def test_the_organization_page_and_the_banner_link_to_the_history(client, world):
    member(client, world["organization"])

    response = client.get(reverse("dashboards:organization", args=[world["organization"].public_id]))

    url = reverse("dashboards:alert_history", args=[world["organization"].public_id])
    assert f'href="{url}"'.encode() in response.content
    assert f'href="{url}?rule={world["rules"]["shop"].pk}"'.encode() in response.content

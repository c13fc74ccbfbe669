"""A transition notifies once, however many evaluations see it; reminders come at the rule's
interval; acknowledged and muted rules stay quiet."""

from datetime import timedelta

import pytest

from alerts.kinds import Measurement
from alerts.models import AlertRule, Notification
from alerts.services import rule_acknowledge, rule_create, rule_mute, rule_save, rule_step, rules_evaluate
from tests.alerts.conftest import NOW, at_once
from tests.factories import ApplicationFactory, UserFactory


def silence_rule(**fields):
    application = ApplicationFactory()
    return rule_create(
        organization=application.organization,
        application=application,
        name="quiet",
        kind="silence",
        parameters={"minutes": 5},
        **fields,
    )


def notifications(rule):
    return list(Notification.objects.filter(rule=rule).order_by("pk").values_list("type", "reminder", "muted"))


@pytest.mark.django_db
def test_a_rule_that_stays_firing_notifies_once_without_an_interval():
    rule = silence_rule()

    for minutes in range(5):
        rules_evaluate(now=NOW + timedelta(minutes=minutes))

    assert notifications(rule) == [("alert.firing", False, False)]


@pytest.mark.django_db
def test_a_firing_rule_reminds_at_its_interval_only():
    rule = silence_rule(renotify_minutes=10)

    rules_evaluate(now=NOW)
    rules_evaluate(now=NOW + timedelta(minutes=9))
    assert len(notifications(rule)) == 1

    rules_evaluate(now=NOW + timedelta(minutes=10))
    rules_evaluate(now=NOW + timedelta(minutes=11))
    assert notifications(rule) == [("alert.firing", False, False), ("alert.firing", True, False)]


@pytest.mark.django_db
def test_an_acknowledged_rule_sends_no_reminders_until_it_fires_again():
    rule = silence_rule(renotify_minutes=10)
    rules_evaluate(now=NOW)
    rule.refresh_from_db()

    assert rule_acknowledge(rule=rule, by=UserFactory())
    rules_evaluate(now=NOW + timedelta(minutes=30))

    assert len(notifications(rule)) == 1


@pytest.mark.django_db
def test_acknowledging_a_rule_that_is_not_firing_does_nothing():
    rule = silence_rule()

    assert not rule_acknowledge(rule=rule)


@pytest.mark.django_db
def test_a_muted_rule_records_its_transitions_without_sending_them():
    rule = silence_rule()
    rule_mute(rule=rule, until=NOW + timedelta(hours=1))

    rules_evaluate(now=NOW)

    rule.refresh_from_db()
    assert rule.state == "firing"
    assert notifications(rule) == [("alert.firing", False, True)]


@pytest.mark.django_db
def test_a_mute_that_has_ended_lets_notifications_out_again():
    rule = silence_rule(renotify_minutes=5)
    rule_mute(rule=rule, until=NOW + timedelta(minutes=3))

    rules_evaluate(now=NOW)
    rules_evaluate(now=NOW + timedelta(minutes=5))

    assert notifications(rule) == [("alert.firing", False, True), ("alert.firing", True, False)]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_evaluations_notify_once():
    rule = silence_rule()
    errors = at_once(lambda: rules_evaluate(now=NOW, rules=AlertRule.objects.filter(pk=rule.pk)))

    assert errors == []
    assert notifications(rule) == [("alert.firing", False, False)]
    rule.refresh_from_db()
    assert (rule.state, rule.version) == ("firing", 1)


@pytest.mark.django_db
def test_an_evaluation_that_read_the_rule_before_another_notified_changes_nothing():
    rule = silence_rule()
    stale = AlertRule.objects.get(pk=rule.pk)
    rules_evaluate(now=NOW)

    assert rule_step(rule=stale, measurement=Measurement(value=0, threshold=5, firing=True), now=NOW) is None
    assert notifications(rule) == [("alert.firing", False, False)]


@pytest.mark.django_db
def test_saving_a_rule_read_before_a_transition_keeps_the_transition():
    rule = silence_rule()
    edited = AlertRule.objects.get(pk=rule.pk)
    rules_evaluate(now=NOW)

    edited.name = "renamed"
    rule_save(rule=edited)

    rule.refresh_from_db()
    assert (rule.name, rule.state, rule.version) == ("renamed", "firing", 1)


@pytest.mark.django_db
def test_a_rule_with_parameters_its_kind_refuses_is_skipped_and_the_others_evaluated():
    broken, fine = silence_rule(), silence_rule()
    AlertRule.objects.filter(pk=broken.pk).update(parameters={"minutes": "five"})

    assert rules_evaluate(now=NOW).notifications == 1

    assert notifications(broken) == [] and notifications(fine) == [("alert.firing", False, False)]

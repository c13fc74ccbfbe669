"""Each kind of rule fires and resolves on rollup and outcome rows made for it, and every
transition is recorded once."""

from datetime import timedelta

import pytest

from accounts.models import Tier
from alerts.models import Notification
from alerts.services import rule_create, rules_evaluate
from ingest.models import ApiRollup, EventRollup, LambdaRollup, Outcome
from tests.alerts.conftest import NOW
from tests.factories import ApplicationFactory, OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def app():
    return ApplicationFactory()


def minute(ago: int):
    """The start of the minute ``ago`` minutes before NOW's."""
    return NOW.replace(second=0) - timedelta(minutes=ago)


def events(
    app,
    *,
    ago: int,
    count: int = 1,
    event_type: str = "command",
    granularity: str = "minute",
    bucket=None,
    service: str | None = None,
):
    bucket = bucket or minute(ago)
    rows = [
        EventRollup(
            organization_id=app.organization_id,
            application_id=app.pk,
            granularity=granularity,
            dimension="",
            bucket=bucket,
            event_type=event_type,
            value="",
            count=count,
        )
    ]
    if service is not None:
        rows.append(
            EventRollup(
                organization_id=app.organization_id,
                application_id=app.pk,
                granularity=granularity,
                dimension="service",
                bucket=bucket,
                event_type=event_type,
                value=service,
                count=count,
            )
        )
    EventRollup.objects.bulk_create(rows)


def outcome(app, kind: str, count: int, hour=None):
    Outcome.objects.create(
        organization_id=app.organization_id,
        application_id=app.pk,
        hour=hour or NOW.replace(minute=0, second=0),
        outcome=kind,
        count=count,
    )


def rule(app, kind, organization_wide=False, **fields):
    return rule_create(
        organization=app.organization,
        application=None if organization_wide else app,
        name=f"{kind} rule",
        kind=kind,
        **fields,
    )


def state_after(rule_, now=NOW) -> str:
    rules_evaluate(now=now)
    rule_.refresh_from_db()
    return rule_.state


def test_silence_fires_without_events_in_the_window_and_resolves_when_they_come(app):
    silent = rule(app, "silence", parameters={"minutes": 5})
    events(app, ago=6)

    assert state_after(silent) == "firing"

    events(app, ago=4)
    assert state_after(silent, NOW + timedelta(seconds=1)) == "ok"
    assert list(Notification.objects.filter(rule=silent).values_list("type", flat=True)) == [
        "alert.resolved",
        "alert.firing",
    ]


def test_a_one_minute_silence_fires_once_the_minute_after_the_last_events_has_passed(app):
    silent = rule(app, "silence", parameters={"minutes": 1})
    events(app, ago=1)  # in the minute 12:29

    assert state_after(silent, minute(0).replace(second=59)) == "ok"
    assert state_after(silent, minute(-1)) == "firing"


def test_silence_counts_only_the_rules_event_type(app):
    silent = rule(app, "silence", parameters={"minutes": 5}, event_type="purchase")
    events(app, ago=1, event_type="page_view")

    assert state_after(silent) == "firing"


def test_silence_counts_only_the_rules_service_version(app):
    silent = rule(app, "silence", parameters={"minutes": 5}, service_version="2.0.0")
    events(app, ago=1, service="shop 1.9.0")
    assert state_after(silent) == "firing"

    events(app, ago=2, service="shop 2.0.0")
    assert state_after(silent, NOW + timedelta(seconds=1)) == "ok"


def test_an_organization_wide_rule_adds_up_every_application(app):
    other = ApplicationFactory(organization=app.organization)
    quiet = rule(app, "silence", organization_wide=True, parameters={"minutes": 5})
    events(other, ago=1)

    assert state_after(quiet) == "ok"


def test_rate_above_fires_on_a_busy_window_and_resolves_on_a_calm_one(app):
    busy = rule(app, "rate", parameters={"window_minutes": 5, "threshold": 100, "direction": "above"})
    for ago in range(2, 7):  # the five minutes before the last one, which is still being counted
        events(app, ago=ago, count=150)

    assert state_after(busy) == "firing"
    assert Notification.objects.get(rule=busy).value == 150.0

    later = NOW + timedelta(minutes=5)
    for ago in range(-3, 2):
        events(app, ago=ago, count=10)
    assert state_after(busy, later) == "ok"


def test_rate_ignores_the_minute_still_being_counted(app):
    busy = rule(app, "rate", parameters={"window_minutes": 1, "threshold": 100})
    events(app, ago=0, count=1000)

    assert state_after(busy) == "ok"


def test_rate_below_fires_when_the_traffic_drops(app):
    low = rule(app, "rate", parameters={"window_minutes": 5, "threshold": 10, "direction": "below"})
    events(app, ago=2, count=20)

    assert state_after(low) == "firing"


def test_change_against_the_previous_window_fires_on_a_spike(app):
    spike = rule(app, "change", parameters={"window_minutes": 10, "percent": 50, "direction": "up"})
    events(app, ago=15, count=100)
    events(app, ago=5, count=200)

    assert state_after(spike) == "firing"
    assert Notification.objects.get(rule=spike).value == 100.0


def test_change_does_not_fire_on_a_drop_when_watching_for_spikes(app):
    spike = rule(app, "change", parameters={"window_minutes": 10, "percent": 50, "direction": "up"})
    events(app, ago=15, count=100)
    events(app, ago=5, count=10)

    assert state_after(spike) == "ok"


def test_change_needs_the_minimum_in_the_earlier_window(app):
    spike = rule(app, "change", parameters={"window_minutes": 10, "percent": 50, "minimum": 10})
    events(app, ago=15, count=2)
    events(app, ago=5, count=200)

    assert state_after(spike) == "ok"


def test_change_against_the_same_hours_a_week_earlier_fires_on_a_drop(app):
    drop = rule(app, "change", parameters={"window_minutes": 60, "percent": 30, "direction": "down", "compare": "week"})
    last_hour = NOW.replace(minute=0, second=0) - timedelta(hours=1)
    events(app, ago=0, granularity="hour", bucket=last_hour - timedelta(days=7), count=1000)
    events(app, ago=0, granularity="hour", bucket=last_hour, count=500)

    assert state_after(drop) == "firing"
    assert Notification.objects.get(rule=drop).value == -50.0


def test_outcomes_fires_above_the_share_with_enough_events(app):
    invalid = rule(app, "outcomes", parameters={"outcome": "invalid", "percent": 10, "minimum": 100})
    outcome(app, "accepted", 80)
    outcome(app, "invalid", 20)

    assert state_after(invalid) == "firing"
    assert Notification.objects.get(rule=invalid).value == 20.0


def test_outcomes_waits_for_the_minimum_count(app):
    invalid = rule(app, "outcomes", parameters={"outcome": "invalid", "percent": 10, "minimum": 100})
    outcome(app, "accepted", 5)
    outcome(app, "invalid", 5)

    assert state_after(invalid) == "ok"


def test_outcomes_resolves_when_the_share_falls(app):
    limited = rule(app, "outcomes", parameters={"outcome": "rate_limited", "percent": 10, "minimum": 10})
    outcome(app, "accepted", 50)
    outcome(app, "rate_limited", 50)
    assert state_after(limited) == "firing"

    Outcome.objects.filter(outcome="accepted").update(count=5000)
    assert state_after(limited, NOW + timedelta(seconds=1)) == "ok"


@pytest.fixture
def limited_app():
    tier = Tier.objects.create(
        slug="alerts-test", name="Alerts test", monthly_event_quota=1000, requests_per_minute=60, retention_days=30
    )
    return ApplicationFactory(organization=OrganizationFactory(tier=tier))


def test_quota_fires_at_the_used_percent(limited_app):
    used = rule(limited_app, "quota", parameters={"percent": 80})
    outcome(limited_app, "accepted", 850, hour=NOW.replace(day=1, hour=0, minute=0, second=0))

    assert state_after(used) == "firing"
    assert Notification.objects.get(rule=used).value == 85.0


def test_quota_forecast_fires_before_the_quota_is_spent(limited_app):
    # 300 events in the first 6.5 days of a 31-day month: about 1,431 by its end.
    forecast = rule(limited_app, "quota", parameters={"forecast": True, "percent": 100})
    outcome(limited_app, "accepted", 300, hour=NOW.replace(day=1, hour=0, minute=0, second=0))

    assert state_after(forecast) == "firing"
    assert rule(limited_app, "quota", parameters={"percent": 100}).state == "ok"


def test_quota_never_fires_on_an_unlimited_tier(app):
    used = rule(app, "quota", parameters={"percent": 1})
    outcome(app, "accepted", 10**9, hour=NOW.replace(day=1, hour=0, minute=0, second=0))

    assert state_after(used) == "ok"


def lambda_rows(app, function: str, invocations: int, errors: int, durations: dict[int, int] | None = None):
    bucket = NOW.replace(minute=25, second=0)
    LambdaRollup.objects.create(
        organization_id=app.organization_id,
        application_id=app.pk,
        granularity="5min",
        bucket=bucket,
        function=function,
        invocations=invocations,
        errors=errors,
        **{LambdaRollup.DURATION_FIELDS[bound]: count for bound, count in (durations or {}).items()},
    )


def test_lambda_error_rate_fires_on_the_worst_function_and_names_it(app):
    errors = rule(app, "lambda", parameters={"metric": "error_rate", "threshold": 5})
    lambda_rows(app, "healthy", 100, 1)
    lambda_rows(app, "broken", 100, 30)

    assert state_after(errors) == "firing"
    notification = Notification.objects.get(rule=errors)
    assert (notification.value, notification.payload["alert"]["subject"]) == (30.0, "broken")


def test_lambda_p95_duration_fires_above_the_threshold_and_resolves(app):
    slow = rule(app, "lambda", parameters={"metric": "p95", "threshold": 1000})
    lambda_rows(app, "resize", 100, 0, durations={25: 100})  # all between 7 s and 10 s
    assert state_after(slow) == "firing"

    LambdaRollup.objects.update(ms_10000=0, ms_50=100)  # all between 40 and 50 ms
    assert state_after(slow, NOW + timedelta(seconds=1)) == "ok"


def api_row(app, endpoint: str, count: int, errors: int, **latency):
    ApiRollup.objects.create(
        organization_id=app.organization_id,
        application_id=app.pk,
        granularity="5min",
        bucket=NOW.replace(minute=25, second=0),
        service_name="orders",
        dimension="endpoint",
        value=endpoint,
        count=count,
        errors=errors,
        **latency,
    )


def test_api_error_rate_of_one_endpoint(app):
    errors = rule(app, "api", parameters={"metric": "error_rate", "threshold": 10, "endpoint": "POST /orders"})
    api_row(app, "GET /orders", 100, 50, ms_10=100)
    api_row(app, "POST /orders", 100, 5, ms_10=100)

    assert state_after(errors) == "ok"


def test_api_p95_latency_fires_above_the_threshold(app):
    slow = rule(app, "api", parameters={"metric": "p95", "threshold": 500})
    api_row(app, "GET /orders/{id}", 100, 0, ms_2500=100)

    assert state_after(slow) == "firing"
    assert Notification.objects.get(rule=slow).payload["alert"]["subject"] == "GET /orders/{id}"


def test_api_rule_with_too_few_requests_stays_ok(app):
    errors = rule(app, "api", parameters={"metric": "error_rate", "threshold": 10, "minimum": 50})
    api_row(app, "GET /orders", 10, 10)

    assert state_after(errors) == "ok"


def test_parameters_are_checked_by_the_rules_kind(app):
    with pytest.raises(ValueError, match="window_minutes must be at least 1"):
        rule(app, "rate", parameters={"window_minutes": 0})
    with pytest.raises(ValueError, match="unknown parameter"):
        rule(app, "silence", parameters={"minuts": 5})

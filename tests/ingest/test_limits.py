"""Monthly quotas, rate limits and outcome counters, on the real Redis and PostgreSQL."""

import time
from datetime import UTC, datetime

import pytest
from django_celery_beat.models import PeriodicTask

from accounts.models import Tier
from ingest.access.admission import outcomes_flush, seconds_to_month_end
from ingest.models import Event, Outcome
from ingest.rollups import rollups_update
from tests.conftest import app_keys_create, make_event

pytestmark = pytest.mark.django_db


def tier(**fields) -> Tier:
    defaults = {
        "slug": f"t{time.monotonic_ns()}",
        "name": "Test",
        "monthly_event_quota": 1_000_000,
        "requests_per_minute": 100_000,
        "retention_days": 30,
        "is_unlimited": False,
    }
    return Tier.objects.create(**{**defaults, **fields})


def keys_on(tier_):
    return app_keys_create(organization__tier=tier_)


def outcome_totals(keys) -> dict:
    outcomes_flush()
    rollups_update()
    totals = {}
    for row in Outcome.objects.filter(application_id=keys.application.pk):
        name = row.outcome if not row.reason else f"{row.outcome}:{row.reason}"
        totals[name] = totals.get(name, 0) + row.count
    return totals


def test_batch_at_the_quota_boundary_is_accepted_up_to_the_quota(signed_post):
    keys = keys_on(tier(monthly_event_quota=5))
    assert signed_post(keys, [make_event() for _ in range(3)]).status_code == 200

    response = signed_post(keys, [make_event() for _ in range(4)])

    assert response.status_code == 207
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [error["error"] for error in body["errors"]] == ["over_quota", "over_quota"]
    assert [error["index"] for error in body["errors"]] == [2, 3]
    assert Event.objects.filter(application=keys.application).count() == 5


def test_spent_quota_answers_429_until_the_month_ends(signed_post):
    keys = keys_on(tier(monthly_event_quota=1))
    signed_post(keys, [make_event()])

    response = signed_post(keys, [make_event()])

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert abs(int(response["Retry-After"]) - seconds_to_month_end(datetime.now(UTC))) <= 2
    assert Event.objects.filter(application=keys.application).count() == 1


def test_resent_events_do_not_spend_quota(signed_post):
    keys = keys_on(tier(monthly_event_quota=2))
    event = make_event()
    signed_post(keys, [event])
    signed_post(keys, [event])

    response = signed_post(keys, [make_event()])

    assert response.status_code == 200
    assert Event.objects.filter(application=keys.application).count() == 2


def test_monitor_only_organization_is_counted_but_never_refused(signed_post):
    keys = keys_on(tier(monthly_event_quota=1))
    keys.application.organization.quota_monitor_only = True
    keys.application.organization.save()

    responses = [signed_post(keys, [make_event()]).status_code for _ in range(3)]

    assert responses == [200, 200, 200]


def test_extra_quota_granted_for_this_month_raises_the_limit(signed_post):
    from django.utils import timezone

    keys = keys_on(tier(monthly_event_quota=1))
    organization = keys.application.organization
    organization.extra_quota, organization.extra_quota_month = 2, timezone.now().strftime("%Y-%m")
    organization.save()

    statuses = [signed_post(keys, [make_event()]).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]


def test_rate_limit_counts_down_in_headers_then_answers_429(signed_post):
    keys = keys_on(tier(requests_per_minute=3))

    answers = [signed_post(keys, [make_event()]) for _ in range(4)]

    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert [a["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert {a["RateLimit-Limit"] for a in answers} == {"3"}
    refused = answers[3]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert int(refused["RateLimit-Reset"]) == int(refused["Retry-After"])


def test_a_spent_rate_allowance_comes_back_one_request_at_a_time(signed_post):
    keys = keys_on(tier(requests_per_minute=12))  # a minute's 12 at once, then one every 5 s
    assert {signed_post(keys, [make_event()]).status_code for _ in range(12)} == {200}

    refused = signed_post(keys, [make_event()])
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 5  # the wait for one request, not for the minute's end
    time.sleep(int(refused["Retry-After"]))
    again = signed_post(keys, [make_event()])
    one_too_many = signed_post(keys, [make_event()])

    assert again.status_code == 200
    assert again["RateLimit-Remaining"] == "0"
    assert one_too_many.status_code == 429


def test_a_limit_far_beyond_any_clients_rate_admits_every_request(signed_post):
    keys = keys_on(tier(requests_per_minute=10**9))  # one request's share is below a millisecond's precision

    answers = [signed_post(keys, [make_event()]) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert {a["RateLimit-Limit"] for a in answers} == {str(10**9)}


def test_unlimited_tier_is_never_limited(signed_post):
    keys = keys_on(tier(monthly_event_quota=1, requests_per_minute=1, is_unlimited=True))

    assert [signed_post(keys, [make_event()]).status_code for _ in range(3)] == [200, 200, 200]


def test_every_event_sent_ends_in_exactly_one_counted_outcome(signed_post):
    keys = keys_on(tier(monthly_event_quota=4, requests_per_minute=4))
    event = make_event()
    signed_post(keys, [event, event, make_event(), make_event(user_id="bad")])  # 2 stored, 1 duplicate, 1 invalid
    signed_post(keys, [make_event(), make_event(), make_event()])  # 2 stored, 1 over quota
    signed_post(keys, [make_event(), make_event()], HTTP_DNT="1")  # 2 not tracked
    signed_post(keys, [make_event()])  # quota spent before parsing: 1 over quota
    signed_post(keys, [make_event()])  # fifth request this minute: 1 rate limited

    totals = outcome_totals(keys)

    assert totals == {
        "accepted": 4,
        "duplicate": 1,
        "invalid:invalid_user_id": 1,
        "over_quota": 2,
        "dnt": 2,
        "rate_limited": 1,
    }
    assert totals["accepted"] == Event.objects.filter(application=keys.application).count()


def test_flushing_twice_counts_once(signed_post):
    keys = keys_on(tier())
    signed_post(keys, [make_event(), make_event()])

    first = outcome_totals(keys)
    second = outcome_totals(keys)

    assert first == second == {"accepted": 2}


def test_requests_refused_before_an_application_is_known_are_counted_by_reason(client):
    Outcome.objects.all().delete()
    client.post("/v1/ingest/org_x/app_00000000", data=b"{}", content_type="application/json")

    outcomes_flush()

    refused = Outcome.objects.get(application_id=0, outcome="refused")
    assert (refused.reason, refused.count) == ("unauthorized", 1)


def redis_commands_during(action) -> list[str]:
    """The commands sent to this test's Redis database while ``action`` ran, as Redis's MONITOR
    reports them (other databases' traffic, other test processes', is left out)."""
    import threading
    import uuid

    from telemetry.lib.redis import get_redis

    client, sentinel, seen = get_redis(), f"end-{uuid.uuid4().hex}", []
    database = client.connection_pool.connection_kwargs.get("db", 0)
    with client.monitor() as monitor:
        listening = threading.Thread(
            target=lambda: seen.extend(
                c["command"] for c in _until(monitor.listen(), sentinel) if c.get("db") == database
            )
        )
        listening.start()
        action()
        client.echo(sentinel)
        listening.join(timeout=30)
    return seen


def _until(commands, sentinel):
    for command in commands:
        if sentinel in command["command"]:
            return
        yield command


def test_the_outcomes_flush_finds_its_counters_without_walking_the_keyspace(signed_post):
    keys = keys_on(tier())
    signed_post(keys, [make_event(), {"event_id": "not an event"}])

    commands = redis_commands_during(outcomes_flush)

    assert commands and not [command for command in commands if command.upper().startswith(("SCAN", "KEYS"))]
    assert outcome_totals(keys) == {"accepted": 1, "invalid:invalid_event_id": 1}


def test_periodic_jobs_have_default_schedules_in_the_database():
    tasks = dict(PeriodicTask.objects.values_list("task", "interval__every"))

    assert tasks["ingest.tasks.outcomes_flush"] == 60
    assert tasks["ingest.tasks.nonces_purge"] == 600


def test_migrate_installs_the_jobs_a_database_lacks_and_keeps_what_operators_changed():
    from django.core.management import call_command

    from telemetry.schedules import SCHEDULES

    PeriodicTask.objects.filter(name="Evaluate alert rules").delete()
    PeriodicTask.objects.filter(name="Flush outcome counters").update(enabled=False)

    call_command("migrate", verbosity=0)

    assert set(PeriodicTask.objects.values_list("name", flat=True)) >= {schedule.name for schedule in SCHEDULES}
    assert PeriodicTask.objects.get(name="Evaluate alert rules").task == "alerts.tasks.rules_evaluate"
    assert not PeriodicTask.objects.get(name="Flush outcome counters").enabled


@pytest.fixture
def eager_tasks(monkeypatch):
    from telemetry.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)


def test_owners_are_mailed_once_at_80_and_once_at_100_percent(
    signed_post, eager_tasks, mailoutbox, django_capture_on_commit_callbacks
):
    from accounts.models import Membership
    from tests.factories import UserFactory

    keys = keys_on(tier(monthly_event_quota=10))
    organization = keys.application.organization
    Membership.objects.create(user=UserFactory(email="owner@acme.example"), organization=organization, role="owner")
    Membership.objects.create(user=UserFactory(email="viewer@acme.example"), organization=organization, role="viewer")

    with django_capture_on_commit_callbacks(execute=True):
        for size in (7, 1, 1, 1):
            signed_post(keys, [make_event() for _ in range(size)])
        signed_post(keys, [make_event()])  # refused: no third e-mail

    assert [message.subject for message in mailoutbox] == [
        f"{organization.name} has used 80% of its monthly event quota",
        f"{organization.name} has used its monthly event quota",
    ]
    assert all(message.to == ["owner@acme.example"] for message in mailoutbox)


def test_the_quota_e_mail_quotes_the_quota_in_force_with_the_months_extra_grant(
    signed_post, eager_tasks, mailoutbox, django_capture_on_commit_callbacks
):
    keys = keys_on(tier(monthly_event_quota=10))
    organization = keys.application.organization
    organization.contact_email = "ops@acme.example"
    organization.extra_quota, organization.extra_quota_month = 10, datetime.now(UTC).strftime("%Y-%m")
    organization.save()

    with django_capture_on_commit_callbacks(execute=True):
        signed_post(keys, [make_event() for _ in range(16)])

    [message] = mailoutbox
    assert message.subject == f"{organization.name} has used 80% of its monthly event quota"
    assert "80% of its 20 events for" in message.body


def test_a_spent_quota_is_whole_again_when_the_month_turns(signed_post, monkeypatch):
    from ingest.access import admission

    keys = keys_on(tier(monthly_event_quota=1))
    november = datetime(2026, 11, 30, 23, 59, 30, tzinfo=UTC).timestamp()
    monkeypatch.setattr(admission, "clock", lambda: november)
    assert signed_post(keys, [make_event()]).status_code == 200
    spent = signed_post(keys, [make_event()])

    monkeypatch.setattr(admission, "clock", lambda: november + 31)
    december = signed_post(keys, [make_event()])

    assert (spent.status_code, int(spent["Retry-After"])) == (429, 30)
    assert december.status_code == 200


def test_quota_counter_lost_by_redis_is_restored_from_the_database(signed_post):
    from ingest.access.admission import month_key, quotas_reconcile, utc_now
    from telemetry.lib.redis import get_redis

    keys = keys_on(tier(monthly_event_quota=3))
    signed_post(keys, [make_event(), make_event()])
    rollups_update()
    counter = f"tk:quota:{keys.application.organization_id}:{month_key(utc_now())}"
    get_redis().delete(counter)

    assert quotas_reconcile() >= 1
    assert int(get_redis().get(counter)) == 2
    assert signed_post(keys, [make_event(), make_event()]).status_code == 207

"""The stats API beyond the events of one application: the rate limit per read token, the
breakdown, the outcomes and the organization-wide reads."""

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from accounts.services import read_token_issue
from dashboards.selectors import application_breakdown, event_series, window_between
from ingest.access.admission import outcomes_flush
from ingest.rollups import rollups_update
from tests.conftest import app_keys_create, iso, make_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def keys():
    return app_keys_create()


def get(client, path: str, token: str, **params):
    return client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {token}")


def events_path(keys) -> str:
    return f"/v1/stats/{keys.org_id}/{keys.app_id}/events"


def token_for(keys, **options) -> str:
    return read_token_issue(organization=keys.application.organization, **options).token


# --- rate limit --------------------------------------------------------------------------------


def test_an_answer_carries_the_tokens_rate_limit_headers(client, keys, settings):
    settings.READ_API_REQUESTS_PER_MINUTE = 60

    response = get(client, events_path(keys), token_for(keys))

    assert response.status_code == 200
    assert response["RateLimit-Limit"] == "60"
    assert response["RateLimit-Remaining"] == "59"
    assert 1 <= int(response["RateLimit-Reset"]) <= 60


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v1/stats/{org}/{app}/events", {"interval": "week"}, 400),
        ("/v1/stats/{org}/app_00000000/events", {}, 404),
    ],
)
def test_an_error_after_the_token_was_counted_carries_the_rate_limit_headers(
    client, keys, settings, path, params, status
):
    settings.READ_API_REQUESTS_PER_MINUTE = 60

    response = get(client, path.format(org=keys.org_id, app=keys.app_id), token_for(keys), **params)

    assert response.status_code == status
    assert (response["RateLimit-Limit"], response["RateLimit-Remaining"]) == ("60", "59")


def test_past_the_limit_a_token_gets_429_with_retry_after(client, keys, settings):
    settings.READ_API_REQUESTS_PER_MINUTE = 3
    token = token_for(keys)
    answers = [get(client, events_path(keys), token) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert [answer["RateLimit-Remaining"] for answer in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused["RateLimit-Limit"] == "3"
    assert 1 <= int(refused["Retry-After"]) <= 20


def test_each_token_has_its_own_allowance(client, keys, settings):
    settings.READ_API_REQUESTS_PER_MINUTE = 1
    first, second = token_for(keys), token_for(keys)

    get(client, events_path(keys), first)

    assert get(client, events_path(keys), first).status_code == 429
    assert get(client, events_path(keys), second).status_code == 200


def test_requests_for_applications_outside_the_scope_count_against_the_limit(client, keys, settings):
    settings.READ_API_REQUESTS_PER_MINUTE = 1
    token = token_for(keys)
    theirs = app_keys_create()

    assert get(client, events_path(theirs), token).status_code == 404
    assert get(client, events_path(keys), token).status_code == 429


# --- breakdown ---------------------------------------------------------------------------------


def this_hour():
    return timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def breakdown_path(keys) -> str:
    return f"/v1/stats/{keys.org_id}/{keys.app_id}/breakdown"


@pytest.fixture
def sent(keys, signed_post):
    """Events of this range (the last 3 hours) and of the previous one, rolled up."""
    hour = this_hour()
    signed_post(
        keys,
        [make_event(timestamp=iso(hour - timedelta(minutes=m))) for m in (10, 70, 130)]
        + [
            make_event(
                timestamp=iso(hour - timedelta(minutes=20)),
                event={"type": "crash"},
                service={"name": "agent", "version": "2.0.0"},
            )
        ]
        + [make_event(timestamp=iso(hour - timedelta(minutes=m))) for m in (200, 250)]
        + [make_event(timestamp=iso(hour - timedelta(minutes=300)), event={"type": "crash"})],
    )
    rollups_update()
    return hour - timedelta(hours=3), hour


@pytest.mark.parametrize(
    ("by", "dimension"),
    [("type", "event_type"), ("category", "category"), ("service_version", "service"), ("sdk_version", "sdk")],
)
def test_breakdown_rows_equal_the_dashboards_for_the_same_range(client, keys, sent, by, dimension):
    since, until = sent
    window = window_between(since=since, until=until, granularity="hour")
    dashboard = application_breakdown(application=keys.application, window=window, by=dimension, limit=20)

    body = get(client, breakdown_path(keys), token_for(keys), by=by, since=iso(since), until=iso(until)).json()

    assert body["by"] == by
    assert [(row["name"], row["count"], row["previous"]) for row in body["rows"]] == [
        (row.name, row.count, row.previous) for row in dashboard
    ]
    assert sum(row["count"] for row in body["rows"]) == 4


def test_breakdown_by_type_gives_the_change_against_the_previous_range(client, keys, sent):
    since, until = sent

    body = get(client, breakdown_path(keys), token_for(keys), by="type", since=iso(since), until=iso(until)).json()

    assert body["previous_since"] == iso(since - timedelta(hours=3))
    assert body["rows"] == [
        {"name": "command", "count": 3, "previous": 2, "change_percent": 50.0},
        {"name": "crash", "count": 1, "previous": 1, "change_percent": 0.0},
    ]


def test_the_previous_range_has_as_many_buckets_as_the_range(client, keys, signed_post):
    hour = this_hour()
    signed_post(keys, [make_event(timestamp=iso(hour - timedelta(minutes=m))) for m in (30, 90, 170, 350)])
    rollups_update()

    body = get(
        client, breakdown_path(keys), token_for(keys), by="type", since=iso(hour - timedelta(hours=3)), until=iso(hour)
    ).json()

    # 350 minutes before: in the previous range's first hour.
    assert body["rows"] == [{"name": "command", "count": 3, "previous": 1, "change_percent": 200.0}]


def test_breakdown_by_service_adds_up_the_versions_of_each_service(client, keys, sent):
    since, until = sent

    body = get(client, breakdown_path(keys), token_for(keys), by="service", since=iso(since), until=iso(until)).json()

    assert [(row["name"], row["count"]) for row in body["rows"]] == [("my-app", 3), ("agent", 1)]


def test_breakdown_limit_keeps_the_busiest_rows(client, keys, sent):
    since, until = sent

    body = get(
        client, breakdown_path(keys), token_for(keys), by="type", limit="1", since=iso(since), until=iso(until)
    ).json()

    assert [row["name"] for row in body["rows"]] == ["command"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "invalid_dimension"),
        ({"by": "colour"}, "invalid_dimension"),
        ({"by": "type", "limit": "0"}, "invalid_limit"),
        ({"by": "type", "limit": "101"}, "invalid_limit"),
        ({"by": "type", "limit": "ten"}, "invalid_limit"),
        ({"by": "type", "interval": "week"}, "invalid_interval"),
        ({"by": "type", "since": "yesterday"}, "invalid_range"),
    ],
)
def test_bad_breakdown_input_gets_400_with_a_stable_code(client, keys, params, code):
    response = get(client, breakdown_path(keys), token_for(keys), **params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


# --- outcomes ----------------------------------------------------------------------------------


def outcomes_path(keys) -> str:
    return f"/v1/stats/{keys.org_id}/{keys.app_id}/outcomes"


def test_outcomes_are_counted_per_kind_and_reason(client, keys, signed_post):
    event = make_event(timestamp=iso(timezone.now()))
    signed_post(keys, [event, event, make_event(user_id="bad")])
    outcomes_flush()
    rollups_update()
    hour = this_hour()

    body = get(
        client,
        outcomes_path(keys),
        token_for(keys),
        since=iso(hour - timedelta(hours=2)),
        until=iso(hour + timedelta(hours=1)),
    ).json()

    assert [point["time"] for point in body["series"]] == [iso(hour - timedelta(hours=h)) for h in (2, 1, 0)]
    assert body["series"][-1]["accepted"] == 1
    assert (body["totals"]["accepted"], body["totals"]["duplicate"], body["totals"]["invalid"]) == (1, 1, 1)
    assert sorted(body["reasons"], key=lambda reason: reason["outcome"]) == [
        {"outcome": "duplicate", "reason": "", "count": 1},
        {"outcome": "invalid", "reason": "invalid_user_id", "count": 1},
    ]


def test_outcomes_by_day_add_up_the_hours(client, keys, signed_post):
    signed_post(keys, [make_event(timestamp=iso(timezone.now()))])
    outcomes_flush()
    rollups_update()
    today = this_hour().replace(hour=0)

    body = get(
        client,
        outcomes_path(keys),
        token_for(keys),
        since=iso(today - timedelta(days=1)),
        until=iso(today + timedelta(days=1)),
        interval="day",
    ).json()

    assert [(point["time"], point["accepted"]) for point in body["series"]] == [
        (iso(today - timedelta(days=1)), 0),
        (iso(today), 1),
    ]


def test_outcomes_by_minute_get_400_as_they_are_counted_by_the_hour(client, keys):
    response = get(client, outcomes_path(keys), token_for(keys), interval="minute")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_interval"


def test_outcomes_of_another_organizations_application_get_404(client, keys):
    theirs = app_keys_create()

    response = get(client, outcomes_path(theirs), token_for(keys))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_breakdown_outside_the_tokens_applications_gets_404(client, keys):
    sibling = app_keys_create(organization=keys.application.organization)

    response = get(client, breakdown_path(keys), token_for(keys, applications=[sibling.application]), by="type")

    assert response.status_code == 404


# --- organization-wide -------------------------------------------------------------------------


def org_path(keys, what: str) -> str:
    return f"/v1/stats/{keys.org_id}/{what}"


@pytest.fixture
def two_applications(keys, signed_post):
    """Two applications of one organization with 2 and 3 events in the last hour, rolled up."""
    sibling = app_keys_create(organization=keys.application.organization)
    moment = iso(this_hour() - timedelta(minutes=30))
    signed_post(keys, [make_event(timestamp=moment) for _ in range(2)])
    signed_post(sibling, [make_event(timestamp=moment, event={"type": "crash"}) for _ in range(3)])
    outcomes_flush()
    rollups_update()
    return sibling


def test_organization_events_add_up_every_application_as_the_dashboard_does(client, keys, two_applications):
    hour = this_hour()
    window = window_between(since=hour - timedelta(hours=2), until=hour, granularity="hour")

    body = get(
        client, org_path(keys, "events"), token_for(keys), since=iso(hour - timedelta(hours=2)), until=iso(hour)
    ).json()

    assert (
        [point["count"] for point in body["series"]]
        == event_series(window=window, organization=keys.application.organization)
        == [0, 5]
    )
    assert body["total"] == 5


def test_organization_events_of_a_limited_token_leave_out_applications_outside_it(client, keys, two_applications):
    hour = this_hour()

    body = get(
        client,
        org_path(keys, "events"),
        token_for(keys, applications=[two_applications.application]),
        since=iso(hour - timedelta(hours=1)),
        until=iso(hour),
    ).json()

    assert body["total"] == 3


def test_organization_breakdown_and_outcomes_of_a_limited_token_leave_out_applications_outside_it(
    client, keys, two_applications
):
    token = token_for(keys, applications=[keys.application])
    hour = this_hour()
    since, until = iso(hour - timedelta(hours=1)), iso(hour + timedelta(hours=1))

    breakdown = get(client, org_path(keys, "breakdown"), token, by="type", since=since, until=until).json()
    outcomes = get(client, org_path(keys, "outcomes"), token, since=since, until=until).json()
    everything = get(client, org_path(keys, "breakdown"), token_for(keys), by="type", since=since, until=until).json()

    assert [(row["name"], row["count"]) for row in breakdown["rows"]] == [("command", 2)]
    assert outcomes["totals"]["accepted"] == 2
    assert [(row["name"], row["count"]) for row in everything["rows"]] == [("crash", 3), ("command", 2)]


def test_a_limited_token_whose_applications_are_all_deleted_reads_nothing(client, keys, two_applications):
    token = token_for(keys, applications=[two_applications.application])
    two_applications.application.delete()
    hour = this_hour()

    organization = get(
        client, org_path(keys, "events"), token, since=iso(hour - timedelta(hours=1)), until=iso(hour)
    ).json()
    other_application = get(client, f"/v1/stats/{keys.org_id}/{keys.app_id}/events", token)

    assert organization["total"] == 0
    assert other_application.status_code == 404


def test_another_organizations_numbers_get_404(client, keys):
    theirs = app_keys_create()

    for what in ("events", "outcomes"):
        response = get(client, org_path(theirs, what), token_for(keys))

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_organization_reads_need_a_read_token(client, keys):
    response = client.get(org_path(keys, "events"))

    assert response.status_code == 401

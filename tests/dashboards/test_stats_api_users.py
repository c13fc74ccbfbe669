"""The stats API's users and versions: distinct users, new users and sessions per day, week or
month, and each version's users, events, first and last seen and recent share, for a read token."""

from datetime import UTC, datetime, timedelta

import pytest

from accounts.services import read_token_issue
from ingest.rollups import rollups_update
from tests.conftest import app_keys_create, iso
from tests.dashboards.test_users_panel import (
    OLD_SDK,
    event,
    usage,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.django_db

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
# A Monday two weeks back or more: its week is over.
MONDAY = TODAY - timedelta(days=TODAY.weekday() + 14)


def get(client, application, what: str, token: str | None = None, **params):
    token = token or read_token_issue(organization=application.organization).token
    return client.get(
        f"/v1/stats/{application.organization.public_id}/{application.public_id}/{what}",
        params,
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


@pytest.fixture
def week(signed_post):
    """ada on Monday and Tuesday, bob twice on Tuesday, cy on Wednesday, each in a session of their own."""
    keys = app_keys_create()
    events = [
        event("ada", MONDAY + timedelta(hours=9), "1.0.0"),
        event("ada", MONDAY + timedelta(days=1, hours=9), "1.0.0"),
        event("bob", MONDAY + timedelta(days=1, hours=10), "2.0.0"),
        event("bob", MONDAY + timedelta(days=1, hours=11), "2.0.0"),
        event("cy", MONDAY + timedelta(days=2, hours=8), "2.0.0"),
    ]
    assert signed_post(keys, events).status_code == 200
    rollups_update()
    return keys


def test_users_are_given_per_day_with_new_users_and_the_ranges_union(client, week):
    response = get(client, week.application, "users", since=iso(MONDAY), until=iso(MONDAY + timedelta(days=3)))

    assert response.status_code == 200
    assert response.json() == {
        "interval": "day",
        "since": iso(MONDAY),
        "until": iso(MONDAY + timedelta(days=3)),
        "series": [
            {"time": iso(MONDAY), "users": 1, "new_users": 1, "sessions": 1, "events": 1},
            {"time": iso(MONDAY + timedelta(days=1)), "users": 2, "new_users": 1, "sessions": 2, "events": 3},
            {"time": iso(MONDAY + timedelta(days=2)), "users": 1, "new_users": 1, "sessions": 1, "events": 1},
        ],
        "total_users": 3,
        "total_sessions": 3,
        "exact": True,
    }
    assert response["Cache-Control"] == "private, max-age=300"
    assert response["ETag"]


def test_a_week_counts_a_user_of_several_days_once(client, week):
    response = get(
        client, week.application, "users", since=iso(MONDAY), until=iso(MONDAY + timedelta(days=7)), interval="week"
    )

    assert response.json()["series"] == [{"time": iso(MONDAY), "users": 3, "new_users": 3, "sessions": 3, "events": 5}]


def test_a_closed_range_answers_304_to_its_etag(client, week):
    token = read_token_issue(organization=week.application.organization).token
    params = {"since": iso(MONDAY), "until": iso(MONDAY + timedelta(days=3))}
    first = get(client, week.application, "users", token=token, **params)

    again = client.get(
        f"/v1/stats/{week.org_id}/{week.app_id}/users",
        params,
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_IF_NONE_MATCH=first["ETag"],
    )

    assert again.status_code == 304
    assert again.content == b""


def test_users_default_to_the_last_30_days_by_day(client, week):
    response = get(client, week.application, "users")

    body = response.json()
    assert (body["interval"], len(body["series"])) == ("day", 31)
    assert body["series"][-1]["time"] == iso(TODAY)
    assert response["Cache-Control"] == "private, max-age=30"
    assert "ETag" not in response
    assert "RateLimit-Remaining" in response


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"interval": "hour"}, "invalid_interval"),
        ({"since": "yesterday"}, "invalid_range"),
        ({"since": "2026-11-20T00:00:00Z", "until": "2026-11-19T00:00:00Z"}, "invalid_range"),
        ({"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z", "interval": "month"}, "range_too_large"),
    ],
)
def test_bad_users_queries_are_refused_with_a_stable_code(client, week, params, code):
    response = get(client, week.application, "users", **params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert "RateLimit-Remaining" in response


def test_versions_give_users_events_first_and_last_seen_and_recent_share(client, usage):  # noqa: F811
    response = get(client, usage.application, "versions")

    assert response.status_code == 200
    body = response.json()
    assert (body["of"], body["since"]) == ("service", iso(TODAY - timedelta(days=30)))
    assert [{k: row[k] for k in ("version", "service", "users", "events", "share")} for row in body["rows"]] == [
        {"version": "2.0.0", "service": "cli", "users": 3, "events": 4, "share": 100.0},
        {"version": "0.9.0", "service": "cli", "users": 1, "events": 1, "share": 0.0},
        {"version": "1.0.0", "service": "cli", "users": 1, "events": 1, "share": 33.333},
    ]
    dee = body["rows"][1]
    assert dee["first_seen"] == dee["last_seen"]
    assert datetime.fromisoformat(dee["first_seen"]) < datetime.now(UTC) - timedelta(days=19)


def test_sdk_versions_have_no_service(client, usage):  # noqa: F811
    response = get(client, usage.application, "versions", of="sdk")

    assert [(row["version"], row["service"], row["users"], row["share"]) for row in response.json()["rows"]] == [
        ("telemetry-kit-rust/0.3.0", None, 3, 100.0),
        (OLD_SDK, None, 1, 0.0),
    ]


def test_versions_of_an_application_without_users_lately_have_no_share(client, week):
    response = get(client, week.application, "versions", since=iso(MONDAY), until=iso(MONDAY + timedelta(days=7)))

    assert [(row["version"], row["users"], row["share"]) for row in response.json()["rows"]] == [
        ("2.0.0", 2, None),
        ("1.0.0", 1, None),
    ]


def test_an_unknown_kind_of_version_is_refused(client, week):
    response = get(client, week.application, "versions", of="os")

    assert response.status_code == 400
    assert response.json() == {"error": {"code": "invalid_dimension", "message": "of must be one of service, sdk"}}


@pytest.mark.parametrize("what", ["users", "versions"])
def test_another_organizations_token_gets_404(client, week, what):
    elsewhere = read_token_issue(organization=app_keys_create().application.organization).token

    response = get(client, week.application, what, token=elsewhere)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("what", ["users", "versions"])
def test_a_token_limited_to_other_applications_gets_404(client, week, what):
    sibling = app_keys_create(organization=week.application.organization)
    limited = read_token_issue(organization=week.application.organization, applications=[sibling.application]).token

    assert get(client, week.application, what, token=limited).status_code == 404


def test_users_and_versions_sent_through_the_signed_ingest_read_back_through_the_api(client, signed_post):
    # Checked from outside: the SDK's signed batches in, the read API out, nothing in between but the rollup job.
    keys = app_keys_create()
    noon = TODAY - timedelta(days=2) + timedelta(hours=12)
    batch = [event(f"user-{n}", noon + timedelta(minutes=n), "3.1.0" if n % 3 else "3.0.0") for n in range(12)]
    assert signed_post(keys, batch).status_code == 200
    assert signed_post(keys, [event("user-0", noon + timedelta(days=1), "3.1.0")]).status_code == 200
    rollups_update()
    token = read_token_issue(organization=keys.application.organization).token
    since, until = iso(noon - timedelta(hours=12)), iso(noon + timedelta(days=1, hours=12))

    users = get(client, keys.application, "users", token=token, since=since, until=until).json()
    versions = get(client, keys.application, "versions", token=token, since=since, until=until).json()

    assert [(p["users"], p["new_users"], p["events"]) for p in users["series"]] == [(12, 12, 12), (1, 0, 1)]
    assert (users["total_users"], users["exact"]) == (12, True)
    assert [(row["version"], row["users"], row["events"]) for row in versions["rows"]] == [
        ("3.1.0", 9, 9),
        ("3.0.0", 4, 4),
    ]

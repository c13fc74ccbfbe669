"""The stats API's Lambda and API endpoints: the panels' figures, per period and per function or
endpoint, with their percentiles, for a read token."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.services import read_token_issue
from dashboards.selectors import api_breakdown, lambda_panel, window_between
from ingest.rollups import rollups_update
from tests.conftest import app_keys_create, iso
from tests.dashboards.test_api_panel import traffic  # noqa: F401 (a fixture)
from tests.dashboards.test_lambda import report_at
from tests.ingest.test_lambda_api import post_array
from tests.ingest.test_malti import MaltiKey

pytestmark = pytest.mark.django_db


def get(client, application, what: str, token: str | None = None, **params):
    token = token or read_token_issue(organization=application.organization).token
    return client.get(
        f"/v1/stats/{application.organization.public_id}/{application.public_id}/{what}",
        params,
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def this_hour() -> datetime:
    return timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def invocations():
    """Known Lambda invocations two hours ago: checkout 7 (a cold start and an error), checkout 8, resize."""
    keys = app_keys_create()
    two_hours_ago = this_hour() - timedelta(hours=2)
    post_array(
        keys,
        [
            report_at(two_hours_ago + timedelta(minutes=5), 100.0, init=200.0, used=100),
            report_at(two_hours_ago + timedelta(minutes=7), 50.0, status="error"),
        ],
    )
    post_array(keys, [report_at(two_hours_ago + timedelta(minutes=9), 30.0)], query="?function=checkout&version=8")
    post_array(keys, [report_at(two_hours_ago + timedelta(minutes=40), 5.0)], query="?function=resize")
    rollups_update()
    return keys


def test_lambda_figures_are_given_per_hour_and_per_function_version(client, invocations):
    hour = this_hour()

    response = get(client, invocations.application, "lambda", since=iso(hour - timedelta(hours=3)), until=iso(hour))

    assert response.status_code == 200
    body = response.json()
    assert (body["interval"], body["since"], body["until"]) == ("hour", iso(hour - timedelta(hours=3)), iso(hour))
    assert [
        (point["time"], point["invocations"], point["errors"], point["cold_starts"]) for point in body["series"]
    ] == [
        (iso(hour - timedelta(hours=3)), 0, 0, 0),
        (iso(hour - timedelta(hours=2)), 4, 1, 1),
        (iso(hour - timedelta(hours=1)), 0, 0, 0),
    ]
    assert body["series"][0]["p50_ms"] is None
    assert [(row["function"], row["version"], row["invocations"]) for row in body["functions"]] == [
        ("checkout", "7", 2),
        ("checkout", "8", 1),
        ("resize", "", 1),
    ]
    checkout = body["functions"][0]
    assert (checkout["errors"], checkout["error_percent"], checkout["cold_starts"], checkout["init_average_ms"]) == (
        1,
        50.0,
        1,
        200.0,
    )
    assert (checkout["average_ms"], checkout["billed_seconds"]) == (75.0, 0.152)
    assert (checkout["max_memory_used_mb"], checkout["memory_size_mb"], checkout["memory_percent"]) == (
        100,
        128,
        78.125,
    )
    assert body["total"]["invocations"] == 4 and body["total"]["errors"] == 1
    assert body["total"]["p50_ms"] <= body["total"]["p95_ms"] <= body["total"]["p99_ms"] <= 100.0


def test_lambda_figures_equal_the_panels_for_the_same_range(client, invocations):
    hour = this_hour()
    since, until = hour - timedelta(hours=6), hour

    body = get(client, invocations.application, "lambda", since=iso(since), until=iso(until)).json()

    panel = lambda_panel(
        application=invocations.application, window=window_between(since=since, until=until, granularity="hour")
    )
    assert [point["p95_ms"] for point in body["series"]] == [
        None if value is None else round(value, 3) for value in panel.series["p95"]
    ]
    assert [row["p99_ms"] for row in body["functions"]] == [round(stats.p99, 3) for stats in panel.functions]
    assert body["total"]["gb_seconds"] == round(panel.total.gb_seconds, 6)


def test_lambda_by_five_minutes_and_by_day(client, invocations):
    hour = this_hour()

    by_five = get(
        client,
        invocations.application,
        "lambda",
        interval="5min",
        since=iso(hour - timedelta(hours=2)),
        until=iso(hour - timedelta(hours=1)),
    ).json()
    by_day = get(
        client,
        invocations.application,
        "lambda",
        interval="day",
        since=iso(hour - timedelta(days=2)),
        until=iso(hour + timedelta(hours=1)),
    ).json()

    assert len(by_five["series"]) == 12
    assert [point["invocations"] for point in by_five["series"]] == [0, 3, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert sum(point["invocations"] for point in by_day["series"]) == 4
    assert {point["time"][11:] for point in by_day["series"]} == {"00:00:00Z"}


def test_lambda_rows_are_limited_busiest_first(client, invocations):
    body = get(client, invocations.application, "lambda", limit="1").json()

    assert [(row["function"], row["version"]) for row in body["functions"]] == [("checkout", "7")]
    assert body["total"]["invocations"] == 4


def test_api_figures_are_given_per_bucket_with_the_total_and_rows_by_endpoint(client, traffic):  # noqa: F811
    now = timezone.now()
    since = now - timedelta(hours=1)

    response = get(client, traffic.application, "api", interval="5min", since=iso(since), until=iso(now))

    assert response.status_code == 200
    body = response.json()
    assert body["interval"] == "5min" and body["by"] == "endpoint"
    assert len(body["series"]) in (12, 13)
    assert sum(point["requests"] for point in body["series"]) == 14
    assert (body["total"]["requests"], body["total"]["errors"]) == (14, 1)
    assert body["total"]["error_percent"] == round(100 / 14, 3)
    assert body["total"]["mean_ms"] == round((10 * 8 + 4 * 400) / 14, 3)
    assert [(row["name"], row["requests"], row["errors"]) for row in body["rows"]] == [
        ("GET /orders/{order_id}", 10, 1),
        ("POST /orders", 4, 0),
    ]
    fast, slow = body["rows"]
    assert (fast["p50_ms"], fast["p99_ms"]) == (7.5, 9.95)
    assert slow["p95_ms"] == 250 + 250 * 0.95


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        ("status", [("200", 9), ("201", 2), ("401", 2), ("500", 1)]),
        ("consumer", [("web-shop", 10), ("mobile", 4)]),
        ("node", [("web-01", 10), ("web-02", 4)]),
        ("service", [("orders-api", 14)]),
    ],
)
def test_api_rows_by_each_dimension(client, traffic, by, expected):  # noqa: F811
    body = get(client, traffic.application, "api", by=by, interval="hour").json()

    assert body["by"] == by
    assert sorted((row["name"], row["requests"]) for row in body["rows"]) == sorted(expected)


def test_api_rows_equal_the_panels_and_are_limited(client, traffic):  # noqa: F811
    now = timezone.now()
    since = now - timedelta(hours=24)

    body = get(client, traffic.application, "api", since=iso(since), until=iso(now), limit="1").json()

    window = window_between(since=since, until=now, granularity="hour")
    panel = api_breakdown(application=traffic.application, window=window, dimension="endpoint", limit=1)
    assert [(row["name"], row["requests"], row["p95_ms"]) for row in body["rows"]] == [
        (stats.name, stats.count, round(stats.p95, 3)) for stats in panel
    ]


@pytest.mark.parametrize(
    ("what", "params", "code", "message"),
    [
        ("lambda", {"interval": "minute"}, "invalid_interval", "interval must be one of 5min, hour, day"),
        ("api", {"interval": "day"}, "invalid_interval", "interval must be one of 5min, hour"),
        ("api", {"by": "colour"}, "invalid_dimension", "by must be one of endpoint, status, node, consumer, service"),
        ("lambda", {"limit": "0"}, "invalid_limit", "limit must be a whole number from 1 to 100"),
        (
            "api",
            {"interval": "5min", "since": "2026-11-01T00:00:00Z", "until": "2026-11-04T00:00:00Z"},
            "range_too_large",
            "A range by 5min may span at most 48 hours",
        ),
    ],
)
def test_bad_queries_are_refused_with_a_stable_code(client, what, params, code, message):
    application = MaltiKey().application

    response = get(client, application, what, **params)

    assert response.status_code == 400
    assert response.json() == {"error": {"code": code, "message": message}}


@pytest.mark.parametrize("what", ["lambda", "api"])
def test_another_organizations_application_is_not_found(client, invocations, what):
    theirs = app_keys_create().application
    token = read_token_issue(organization=invocations.application.organization).token

    mixed = client.get(
        f"/v1/stats/{invocations.org_id}/{theirs.public_id}/{what}", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    foreign = get(client, theirs, what, token=token)

    assert mixed.status_code == 404 and foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("what", ["lambda", "api"])
def test_without_a_read_token_nothing_is_read(client, invocations, what):
    response = client.get(f"/v1/stats/{invocations.org_id}/{invocations.app_id}/{what}")

    assert response.status_code == 401


def test_a_closed_range_has_an_etag_and_an_open_one_not(client, invocations):
    hour = this_hour()
    token = read_token_issue(organization=invocations.application.organization).token

    closed = get(
        client, invocations.application, "lambda", token=token, since=iso(hour - timedelta(hours=3)), until=iso(hour)
    )
    again = client.get(
        f"/v1/stats/{invocations.org_id}/{invocations.app_id}/lambda",
        {"since": iso(hour - timedelta(hours=3)), "until": iso(hour)},
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_IF_NONE_MATCH=closed["ETag"],
    )
    open_range = get(client, invocations.application, "api", token=token)

    assert again.status_code == 304
    assert "ETag" not in open_range and open_range["Cache-Control"] == "private, max-age=30"

"""The API panel: HTTP request numbers per application, from the API rollups, scoped to the user's organizations."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from accounts.models import Membership
from dashboards.selectors import API_RANGES, latency_percentile, window_for
from ingest.models import ApiRollup, Event
from ingest.rollups import rollups_update
from tests.factories import UserFactory
from tests.ingest.test_malti import MaltiKey, post, record

pytestmark = pytest.mark.django_db

NO_LATENCY = (0,) * len(ApiRollup.LATENCY_FIELDS)


def latency(**counts) -> tuple[int, ...]:
    return tuple(counts.get(name, 0) for name in ApiRollup.LATENCY_FIELDS)


def test_percentiles_interpolate_inside_the_bucket_they_fall_in():
    assert latency_percentile(latency(ms_10=100), 0.5) == 7.5  # (5, 10]: halfway
    assert latency_percentile(latency(ms_1=50, ms_100=50), 0.5) == 1.0
    assert latency_percentile(latency(ms_1=50, ms_100=50), 0.99) == pytest.approx(50 + 50 * 0.98)


def test_percentiles_past_the_last_bound_are_that_bound_and_none_without_requests():
    assert latency_percentile(latency(ms_more=3), 0.99) == 10_000
    assert latency_percentile(NO_LATENCY, 0.5) is None


def test_the_window_falls_back_to_a_day_by_five_minutes_and_hours_for_long_ranges():
    now = datetime(2026, 11, 25, 10, 47, 12, tzinfo=UTC)

    day = window_for(range_key="bogus", granularity="minute", now=now, ranges=API_RANGES)
    week = window_for(range_key="7d", granularity="5min", now=now, ranges=API_RANGES)

    assert (day.key, day.granularity, day.since) == ("24h", "5min", datetime(2026, 11, 24, 10, 45, tzinfo=UTC))
    assert len(day.buckets) == 24 * 12 + 1
    assert (week.granularity, week.since) == ("hour", datetime(2026, 11, 18, 10, tzinfo=UTC))


def member(client, organization):
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=organization, role="viewer")
    client.force_login(user)


def ago(minutes: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def traffic():
    """Known requests of the last hour: 10 to one endpoint (fast, one 500), 4 to another (slow, 401s
    aside), from two consumers on two nodes."""
    key = MaltiKey()
    requests = (
        [record(status=200, response_time=8, created_at=ago(10), consumer="web-shop")] * 9
        + [record(status=500, response_time=8, created_at=ago(10), consumer="web-shop")]
        + [
            record(
                method="POST",
                endpoint="/orders",
                status=401,
                response_time=400,
                created_at=ago(20),
                consumer="mobile",
                node="web-02",
            )
        ]
        * 2
        + [
            record(
                method="POST",
                endpoint="/orders",
                status=201,
                response_time=400,
                created_at=ago(20),
                consumer="mobile",
                node="web-02",
            )
        ]
        * 2
    )
    assert post(key.token, {"requests": requests}).status_code == 200
    rollups_update()
    return key


def panel_url(key, **query) -> str:
    application = key.application
    url = reverse("dashboards:application_api", args=[application.organization.public_id, application.public_id])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def test_the_panel_shows_rate_errors_latency_and_breakdowns_from_the_rollups(client, traffic):
    member(client, traffic.application.organization)

    response = client.get(panel_url(traffic, range="1h"))

    assert response.status_code == 200
    context = response.context
    total = context["total"]
    assert (total.count, total.errors, total.error_percent) == (14, 1, pytest.approx(100 / 14))
    assert total.mean_ms == pytest.approx((10 * 8 + 4 * 400) / 14)
    assert context["per_minute"] == pytest.approx(14 / 60, rel=0.1)
    assert [(row.method, row.endpoint, row.count, row.errors) for row in context["endpoints"]] == [
        ("GET", "/orders/{order_id}", 10, 1),
        ("POST", "/orders", 4, 0),
    ]
    fast, slow = context["endpoints"]
    assert (fast.p50, fast.p99) == (pytest.approx(7.5), pytest.approx(9.95))
    assert slow.p95 == pytest.approx(250 + 250 * 0.95)
    assert [(row.name, row.count) for row in context["consumers"]] == [("web-shop", 10), ("mobile", 4)]
    assert [(row.name, row.count) for row in context["statuses"]] == [("200", 9), ("201", 2), ("401", 2), ("500", 1)]
    assert [(row.name, row.count) for row in context["nodes"]] == [("web-01", 10), ("web-02", 4)]
    assert [(row.name, row.count) for row in context["services"]] == [("orders-api", 14)]
    rate, errors, latency_chart = context["charts"]["lines"]
    assert sum(rate["series"][0]["values"]) * 5 == pytest.approx(14)  # requests a minute, per 5 minutes
    assert [value for value in errors["series"][0]["values"] if value is not None] in ([10.0, 0.0], [0.0, 10.0])
    assert [s["label"] for s in latency_chart["series"]] == ["p50", "p95", "p99"]
    html = response.content.decode()
    assert "/orders/{order_id}" in html and "7.1%" in html and "web-shop" in html


def test_the_panel_reads_rollups_only(client, traffic):
    member(client, traffic.application.organization)
    Event.objects.filter(application=traffic.application).delete()

    response = client.get(panel_url(traffic, range="24h", by="hour"))

    assert response.context["total"].count == 14
    assert response.context["window"].granularity == "hour"


def test_an_application_of_another_organization_is_not_found(client, traffic):
    member(client, MaltiKey().application.organization)

    assert client.get(panel_url(traffic)).status_code == 404


def test_an_unknown_application_is_not_found(client, traffic):
    member(client, traffic.application.organization)
    url = reverse("dashboards:application_api", args=[traffic.application.organization.public_id, "app_00000000"])

    assert client.get(url).status_code == 404


def test_signing_in_is_required(client, traffic):
    response = client.get(panel_url(traffic))

    assert response.status_code == 302
    assert "login" in response["Location"]


def test_without_requests_the_panel_says_how_they_arrive(client):
    key = MaltiKey()
    member(client, key.application.organization)

    response = client.get(panel_url(key))

    assert response.status_code == 200
    assert "No HTTP requests in this range" in response.content.decode()
    assert response.context["total"].p50 is None


def test_the_application_page_links_to_its_api_panel(client, traffic):
    member(client, traffic.application.organization)
    application = traffic.application

    response = client.get(
        reverse("dashboards:application", args=[application.organization.public_id, application.public_id])
    )

    assert panel_url(traffic) in response.content.decode()

"""The Lambda panel: numbers from the rollups, per function and version, scoped to the organization."""

from datetime import UTC, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboards.selectors import duration_percentile, lambda_panel, window_for
from ingest.models import LAMBDA_DURATION_BOUNDS_MS
from ingest.rollups import rollups_update
from ingest.rollups.aws_lambda import duration_bound
from tests.conftest import app_keys_create
from tests.dashboards.test_application import viewer
from tests.ingest.test_lambda_api import SEED_REPORT, post_array

pytestmark = pytest.mark.django_db


def report_at(moment, duration: float, *, status: str = "success", init: float | None = None, used: int = 64) -> dict:
    metrics = {
        "durationMs": duration,
        "billedDurationMs": int(duration) + 1,
        "memorySizeMB": 128,
        "maxMemoryUsedMB": used,
    }
    if init is not None:
        metrics["initDurationMs"] = init
    return {
        **SEED_REPORT,
        "time": moment.astimezone(UTC).isoformat(),
        "record": {"requestId": f"r-{moment.timestamp()}-{duration}", "status": status, "metrics": metrics},
    }


def lambda_page(keys) -> str:
    return reverse("dashboards:application_lambda", args=[keys.org_id, keys.app_id])


def test_percentiles_interpolate_inside_the_histogram_bucket():
    hundred = duration_bound(100.0)
    counts = {duration_bound(10.0): 50, hundred: 50}

    assert duration_percentile(counts, 0.5) == 10.0
    assert duration_percentile(counts, 1.0) == 100.0
    lower, upper = LAMBDA_DURATION_BOUNDS_MS[hundred - 1], LAMBDA_DURATION_BOUNDS_MS[hundred]
    assert duration_percentile(counts, 0.75) == lower + (upper - lower) * 0.5
    assert duration_percentile({}, 0.5) is None
    assert duration_percentile({len(LAMBDA_DURATION_BOUNDS_MS): 1}, 0.99) == LAMBDA_DURATION_BOUNDS_MS[-1]


def test_the_panel_adds_up_functions_and_versions_over_the_range():
    keys = app_keys_create()
    now = timezone.now()
    post_array(
        keys,
        [
            report_at(now - timedelta(hours=1), 100.0, init=200.0, used=100),
            report_at(now - timedelta(hours=2), 50.0, status="error"),
            report_at(now - timedelta(days=3), 10.0),
        ],
    )  # outside the last 24 hours
    post_array(keys, [report_at(now - timedelta(hours=1), 30.0)], query="?function=checkout&version=8")
    post_array(keys, [report_at(now - timedelta(hours=1), 5.0)], query="?function=resize")
    rollups_update()

    panel = lambda_panel(application=keys.application, window=window_for(range_key="24h", granularity="hour", now=now))

    assert [(f.function, f.version, f.invocations) for f in panel.functions] == [
        ("checkout", "7", 2),
        ("checkout", "8", 1),
        ("resize", "", 1),
    ]
    checkout = panel.functions[0]
    assert (checkout.errors, checkout.error_percent, checkout.cold_starts, checkout.init_average_ms) == (
        1,
        50.0,
        1,
        200.0,
    )
    assert (checkout.max_memory_used_mb, checkout.memory_size_mb, checkout.memory_percent) == (100, 128, 78.125)
    assert checkout.billed_ms == 152.0
    assert checkout.gb_seconds == pytest.approx(0.152 * 0.125)
    assert panel.total.invocations == 4
    assert sum(panel.series["invocations"]) == 4 and sum(panel.series["errors"]) == 1
    assert len(panel.periods) == 25
    assert panel.total.p50 is not None and panel.total.p50 <= panel.total.p95 <= panel.total.p99 <= 100.0


def test_minutes_are_shown_by_five_and_days_added_up_from_hours():
    keys = app_keys_create()
    now = timezone.now()
    post_array(keys, [report_at(now - timedelta(minutes=1), 10.0), report_at(now - timedelta(minutes=20), 10.0)])
    rollups_update()

    by_five = lambda_panel(
        application=keys.application, window=window_for(range_key="1h", granularity="minute", now=now)
    )
    by_day = lambda_panel(application=keys.application, window=window_for(range_key="7d", granularity="day", now=now))

    assert {b - a for a, b in zip(by_five.periods, by_five.periods[1:])} == {timedelta(minutes=5)}
    assert sum(by_five.series["invocations"]) == 2
    assert by_day.series["invocations"][-1] + by_day.series["invocations"][-2] == 2


def test_the_page_shows_the_functions_and_is_linked_from_the_application(client):
    keys = app_keys_create()
    post_array(keys, [report_at(timezone.now() - timedelta(minutes=30), 120.0, init=250.0)])
    rollups_update()
    viewer(client, keys)

    page = client.get(lambda_page(keys))
    application_page = client.get(reverse("dashboards:application", args=[keys.org_id, keys.app_id]))

    assert page.status_code == 200
    html = page.content.decode()
    assert '<th scope="row">checkout</th>' in html
    assert "Invocations" in html and "Cold starts" in html and "GB-seconds" in html
    assert lambda_page(keys) in application_page.content.decode()


def test_an_empty_panel_says_how_to_send(client):
    keys = app_keys_create()
    viewer(client, keys)

    page = client.get(lambda_page(keys))

    assert page.status_code == 200
    assert f"/v1/lambda/{keys.org_id}/{keys.app_id}" in page.content.decode()
    assert f"/v1/otlp/{keys.org_id}/{keys.app_id}" in page.content.decode()


def test_another_organizations_application_is_not_found(client):
    mine, theirs = app_keys_create(), app_keys_create()
    viewer(client, mine)

    assert client.get(lambda_page(theirs)).status_code == 404
    mixed = reverse("dashboards:application_lambda", args=[mine.org_id, theirs.app_id])
    assert client.get(mixed).status_code == 404


def test_the_page_needs_a_login(client):
    keys = app_keys_create()

    response = client.get(lambda_page(keys))

    assert response.status_code == 302
    assert "login" in response["Location"]

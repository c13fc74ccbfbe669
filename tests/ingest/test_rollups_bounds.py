"""Rollups against hostile numbers: each event's counted values are bounded, and sums cannot overflow."""

import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ingest.models import ApiRollup, Event, EventRollup, LambdaRollup
from ingest.rollups import rollups_update
from tests.conftest import app_keys_create, make_event

pytestmark = pytest.mark.django_db

BIGINT_MAX = 2**63 - 1
# Recent enough for the finer rows too (kept for MINUTE_ROLLUPS_HOURS).
AT = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=7, second=0, microsecond=0)
HOUR = AT.replace(minute=0)


def http_request(**data) -> dict:
    return make_event(
        timestamp=AT.strftime("%Y-%m-%dT%H:%M:%SZ"),
        event={
            "type": "http_request",
            "category": "api",
            "data": {"method": "GET", "endpoint": "/orders", "status": 200, **data},
        },
    )


def hour_count(keys) -> int:
    return sum(
        EventRollup.objects.filter(application_id=keys.application.id, granularity="hour", dimension="").values_list(
            "count", flat=True
        )
    )


def api_row(keys) -> ApiRollup:
    return ApiRollup.objects.get(application_id=keys.application.id, granularity="hour", dimension="")


def test_response_times_that_would_overflow_the_hours_sum_saturate_it(signed_post):
    hostile, other = app_keys_create(), app_keys_create()
    # As after some ten million requests claiming absurd response times in one hour.
    ApiRollup.objects.create(
        organization_id=hostile.application.organization_id,
        application_id=hostile.application.id,
        granularity="hour",
        bucket=HOUR,
        service_name="my-app",
        dimension="",
        value="",
        count=10_000_000,
        duration_ms=BIGINT_MAX - 10,
    )
    assert signed_post(hostile, [http_request(response_time=1e300)]).status_code == 200
    assert signed_post(other, [http_request(response_time=12)]).status_code == 200

    rollups_update()

    assert (api_row(hostile).count, api_row(hostile).duration_ms) == (10_000_001, BIGINT_MAX)
    assert (api_row(other).count, api_row(other).duration_ms) == (1, 12)
    assert hour_count(other) == 1


@pytest.mark.parametrize("claimed, counted", [(-5, 0), (10**30, 86_400_000), (1e300, 86_400_000)])
def test_one_requests_response_time_is_bounded_to_a_day(signed_post, claimed, counted):
    keys = app_keys_create()
    assert signed_post(keys, [http_request(response_time=claimed)]).status_code == 200

    rollups_update()

    assert api_row(keys).duration_ms == counted


def lambda_point(keys, value, *, padding: int = 0) -> Event:
    """An OTLP duration point as the OTLP API stores it, its resource padded by a hostile client."""
    application = keys.application
    return Event.objects.create(
        organization_id=application.organization_id,
        application=application,
        event_id=uuid.uuid4(),
        schema_version="otlp/1",
        user_id="",
        event_type="otel.metric",
        category="faas.invocation.duration",
        timestamp=AT,
        received_at=AT,
        service_name="checkout",
        data={
            "name": "faas.invocation.duration",
            "unit": "ms",
            "value": value,
            "resource": {
                "faas.name": "checkout",
                "faas.version": "7",
                "faas.max_memory": 128 * 1024 * 1024,
                "padding": "x" * padding,
            },
        },
    )


def test_lambda_rollups_read_only_the_fields_they_count_not_the_whole_event():
    keys = app_keys_create()
    for _ in range(10):
        lambda_point(keys, 12.5, padding=4 * 1024 * 1024)

    tracemalloc.start()
    try:
        rollups_update()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    row = LambdaRollup.objects.get(application_id=keys.application.id, granularity="hour")
    assert (row.function, row.version, row.invocations, row.duration_ms, row.memory_size_mb) == (
        "checkout",
        "7",
        10,
        125.0,
        128,
    )
    # The 40 MB of padding stays in the database.
    assert peak < 8 * 1024 * 1024


def test_lambda_values_out_of_any_sane_range_are_bounded_or_ignored():
    keys = app_keys_create()
    for value in (-1.0, 1e300, 5e12, "12", None, 3.0):
        lambda_point(keys, value)

    rollups_update()

    row = LambdaRollup.objects.get(application_id=keys.application.id, granularity="hour")
    # Negative, non-numbers and missing values are ignored; the huge ones count as a day each.
    assert (row.invocations, row.duration_ms) == (3, 2 * 86_400_000 + 3.0)

"""The API rollups of http_request events: Malti's and the SDK middleware's, built by rollups_update."""

from datetime import UTC, datetime, timedelta

import pytest

from ingest.models import ApiRollup
from ingest.rollups import rollups_prune, rollups_rebuild, rollups_update
from tests.conftest import make_event
from tests.ingest.test_malti import SERVICE, MaltiKey, post, record

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
AT = (NOW - timedelta(hours=1)).replace(minute=7)  # an hour ago, at hh:07
FIVE = AT.replace(minute=5)
HOUR = AT.replace(minute=0)


def at(minutes: int = 0) -> str:
    return (AT + timedelta(minutes=minutes)).isoformat()


def rows(key, granularity: str, dimension: str) -> dict:
    return {
        (row.bucket, row.value): row
        for row in ApiRollup.objects.filter(
            application_id=key.application.pk, granularity=granularity, dimension=dimension
        )
    }


def measures(row: ApiRollup) -> dict:
    latency = {name: getattr(row, name) for name in ApiRollup.LATENCY_FIELDS if getattr(row, name)}
    return {"count": row.count, "errors": row.errors, "duration_ms": row.duration_ms, **latency}


@pytest.fixture
def traffic():
    key = MaltiKey()
    response = post(
        key.token,
        {
            "requests": [
                record(status=200, response_time=1, created_at=at()),
                record(status=200, response_time=3, created_at=at(1)),
                record(status=404, response_time=10, created_at=at(2), consumer="bot"),
                record(status=401, response_time=11, created_at=at(2), consumer="bot"),  # not an error: clean mode's
                record(
                    method="POST", endpoint="/orders", status=500, response_time=10_001, created_at=at(4), node="web-02"
                ),
            ]
        },
    )
    assert response.status_code == 200
    rollups_update()
    return key


def test_requests_are_counted_per_service_with_errors_duration_and_latency_buckets(traffic):
    hour = rows(traffic, "hour", "")

    assert list(hour) == [(HOUR, "")]
    assert hour[(HOUR, "")].service_name == SERVICE
    assert measures(hour[(HOUR, "")]) == {
        "count": 5,
        "errors": 2,
        "duration_ms": 10_026,
        "ms_1": 1,
        "ms_5": 1,
        "ms_10": 1,
        "ms_25": 1,
        "ms_more": 1,
    }


def test_five_minute_buckets_split_where_the_clock_does(traffic):
    five = rows(traffic, "5min", "")

    # hh:07 to hh:09 lie in the bucket of hh:05, hh:11 in that of hh:10.
    assert {bucket: row.count for (bucket, _), row in five.items()} == {FIVE: 4, FIVE + timedelta(minutes=5): 1}


def test_each_dimension_counts_every_request_once_by_its_value(traffic):
    endpoints = rows(traffic, "hour", "endpoint")
    statuses = rows(traffic, "hour", "status")
    consumers = rows(traffic, "hour", "consumer")
    nodes = rows(traffic, "hour", "node")

    assert {value: measures(row) for (_, value), row in endpoints.items()} == {
        "GET /orders/{order_id}": {
            "count": 4,
            "errors": 1,
            "duration_ms": 25,
            "ms_1": 1,
            "ms_5": 1,
            "ms_10": 1,
            "ms_25": 1,
        },
        "POST /orders": {"count": 1, "errors": 1, "duration_ms": 10_001, "ms_more": 1},
    }
    assert {value: row.count for (_, value), row in statuses.items()} == {"200": 2, "401": 1, "404": 1, "500": 1}
    assert {value: (row.count, row.errors) for (_, value), row in consumers.items()} == {
        "web-shop": (3, 1),
        "bot": (2, 1),
    }
    assert {value: row.count for (_, value), row in nodes.items()} == {"web-01": 4, "web-02": 1}


def test_a_later_run_adds_to_the_same_buckets_and_a_rerun_adds_nothing(traffic):
    post(traffic.token, {"requests": [record(status=503, response_time=30, created_at=at(3))]})
    rollups_update()
    rollups_update()

    assert measures(rows(traffic, "hour", "")[(HOUR, "")])["count"] == 6
    assert measures(rows(traffic, "hour", "status")[(HOUR, "503")]) == {
        "count": 1,
        "errors": 1,
        "duration_ms": 30,
        "ms_50": 1,
    }


def test_sdk_middleware_events_are_rolled_up_alike_and_odd_data_does_not_stop_the_job(app_keys, signed_post):
    timestamp = AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    shaped = {
        "method": "GET",
        "endpoint": "/health",
        "status": 200,
        "response_time": 2.6,
        "consumer": "anonymous",
        "node": "pod-1",
    }
    odd = {"method": ["GET"], "status": "two hundred", "response_time": 1e300}
    response = signed_post(
        app_keys,
        [
            make_event(
                timestamp=timestamp,
                service={"name": "django-app"},
                event={"type": "http_request", "category": "http", "data": shaped},
            ),
            make_event(
                timestamp=timestamp,
                service={"name": "django-app"},
                event={"type": "http_request", "category": "http", "data": odd},
            ),
            make_event(timestamp=timestamp, event={"type": "command", "data": shaped}),
        ],
    )
    assert response.status_code == 200

    rollups_update()

    service = ApiRollup.objects.get(application_id=app_keys.application.pk, granularity="hour", dimension="")
    assert (service.service_name, service.count, service.errors) == ("django-app", 2, 0)
    assert (service.duration_ms, service.ms_5, service.ms_more) == (86_400_000 + 3, 1, 1)  # a day at most
    statuses = ApiRollup.objects.filter(application_id=app_keys.application.pk, granularity="hour", dimension="status")
    assert dict(statuses.values_list("value", "count")) == {"200": 1, "": 1}


def test_five_minute_rows_older_than_two_days_are_pruned(traffic):
    kept = set(ApiRollup.objects.values_list("granularity", "bucket"))
    old = ApiRollup.objects.filter(granularity="5min").first()
    old.pk, old.bucket = None, old.bucket - timedelta(hours=49)
    old.save()

    assert rollups_prune() == 1
    assert set(ApiRollup.objects.values_list("granularity", "bucket")) == kept


def test_a_rebuild_recomputes_the_same_rows(traffic):
    before = {(r.granularity, r.dimension, r.bucket, r.value): measures(r) for r in ApiRollup.objects.all()}

    rollups_rebuild(since=NOW.replace(hour=0, minute=0) - timedelta(days=1), until=NOW + timedelta(hours=1))

    after = {(r.granularity, r.dimension, r.bucket, r.value): measures(r) for r in ApiRollup.objects.all()}
    assert after == before

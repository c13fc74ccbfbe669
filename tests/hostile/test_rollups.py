"""Poisoned events sent over real sockets to the live server, then the rollup job run in process:
one tenant's events never stop the others' charts."""

import http.client
import json
from datetime import UTC, datetime, timedelta

import pytest

from ingest.models import ApiRollup, Event, RollupCursor, RollupSkip
from ingest.rollups import rollups_update
from tests.conftest import app_keys_create, batch_body, make_event, signed_headers
from tests.ingest.test_rollups_isolation import hour_count, rollup_rows_held
from tests.server import wsgi_to_http

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

BIGINT_MAX = 2**63 - 1
AT = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=7, second=0, microsecond=0)


def send(port: int, keys, events: list) -> int:
    body = batch_body(events)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        "POST",
        keys.url,
        body=body,
        headers={
            "Content-Type": "application/json",
            **wsgi_to_http(signed_headers(keys, body, batch_size=len(events))),
        },
    )
    response = conn.getresponse()
    assert json.loads(response.read())["accepted"] == len(events)
    return response.status


def http_request(**data) -> dict:
    return make_event(
        timestamp=AT.strftime("%Y-%m-%dT%H:%M:%SZ"),
        event={"type": "http_request", "category": "api", "data": {"method": "GET", **data}},
    )


def test_absurd_numbers_sent_by_one_tenant_neither_overflow_nor_stop_the_others(live_port):
    hostile, other = app_keys_create(), app_keys_create()
    # The hostile service's hour as after some ten million requests claiming absurd response times.
    ApiRollup.objects.create(
        organization_id=hostile.application.organization_id,
        application_id=hostile.application.id,
        granularity="hour",
        bucket=AT.replace(minute=0),
        service_name="my-app",
        dimension="",
        value="",
        count=10_000_000,
        duration_ms=BIGINT_MAX - 10,
    )
    poisoned = [http_request(response_time=value, status=value) for value in (1e300, -1e300, 9e18, "9e18")]
    assert send(live_port, hostile, poisoned) == 200
    assert send(live_port, other, [http_request(response_time=12, status=200)]) == 200

    rollups_update()

    assert hour_count(other) == 1
    assert ApiRollup.objects.get(application_id=other.application.id, granularity="hour", dimension="").count == 1
    hostile_hour = ApiRollup.objects.get(application_id=hostile.application.id, granularity="hour", dimension="")
    assert (hostile_hour.count, hostile_hour.duration_ms) == (10_000_004, BIGINT_MAX)
    # Both followers, the counts' and the users' and properties', read every event.
    last = Event.objects.order_by("-id")[0].id
    assert dict(RollupCursor.objects.values_list("name", "last_event_id")) == {"events": last, "insights": last}


def test_a_tenant_whose_rollups_cannot_finish_is_skipped_and_the_others_advance(live_port, settings):
    settings.ROLLUPS_STATEMENT_TIMEOUT = 1
    stuck, other = app_keys_create(), app_keys_create()
    assert send(live_port, stuck, [make_event()]) == 200
    rollups_update()
    assert send(live_port, stuck, [make_event() for _ in range(3)]) == 200
    assert send(live_port, other, [make_event() for _ in range(2)]) == 200

    with rollup_rows_held(stuck):
        rollups_update()

    assert hour_count(other) == 2
    assert hour_count(stuck) == 1
    assert list(RollupSkip.objects.values_list("application_id", "kind", "events")) == [
        (stuck.application.id, "events", 3)
    ]
    # Both followers, the counts' and the users' and properties', read every event.
    last = Event.objects.order_by("-id")[0].id
    assert dict(RollupCursor.objects.values_list("name", "last_event_id")) == {"events": last, "insights": last}

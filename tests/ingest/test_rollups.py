from collections import Counter
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command

from ingest.models import Event, EventRollup, Outcome
from ingest.rollups import rollups_update
from tests.conftest import make_event

pytestmark = pytest.mark.django_db


def rollup_counts(granularity: str) -> Counter:
    return Counter({(row.bucket, *(getattr(row, name) for name in EventRollup.DIMENSIONS)): row.count
                    for row in EventRollup.objects.filter(granularity=granularity)})


def counts_from_raw_events(granularity: str) -> Counter:
    truncate = {"minute": dict(second=0, microsecond=0), "hour": dict(minute=0, second=0, microsecond=0),
                "day": dict(hour=0, minute=0, second=0, microsecond=0)}[granularity]
    return Counter((event.timestamp.astimezone(UTC).replace(**truncate),
                    *(getattr(event, name) or "" for name in EventRollup.DIMENSIONS))
                   for event in Event.objects.all())


def send_mixed_traffic(signed_post, app_keys):
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    repeated = make_event(timestamp=now)
    signed_post(app_keys, [repeated, make_event(timestamp=now, event={"type": "start"}),
                           make_event(timestamp=now, service={"name": "x", "version": "2.0.0"})])
    signed_post(app_keys, [repeated, make_event(timestamp="2026-01-15T08:30:00Z")],  # a duplicate and a late event
                HTTP_X_SDK_VERSION="telemetry-kit-rust/0.4.0")


@pytest.mark.parametrize("granularity", ["minute", "hour", "day"])
def test_rollups_equal_counts_from_raw_events_after_late_and_duplicate_events(app_keys, signed_post, granularity):
    send_mixed_traffic(signed_post, app_keys)

    rollups_update(lag_seconds=0)

    assert rollup_counts(granularity) == counts_from_raw_events(granularity)
    assert sum(rollup_counts(granularity).values()) == 4


def test_running_the_update_again_adds_nothing(app_keys, signed_post):
    send_mixed_traffic(signed_post, app_keys)
    rollups_update(lag_seconds=0)
    before = rollup_counts("hour")

    assert rollups_update(lag_seconds=0) == 0
    assert rollup_counts("hour") == before


def test_events_stored_after_a_run_are_added_by_the_next(app_keys, signed_post):
    signed_post(app_keys, [make_event()])
    rollups_update(lag_seconds=0)
    signed_post(app_keys, [make_event(), make_event()])

    rollups_update(lag_seconds=0)

    assert sum(rollup_counts("day").values()) == 3


def test_events_younger_than_the_lag_wait_for_the_next_run(app_keys, signed_post):
    signed_post(app_keys, [make_event()])

    assert rollups_update() == 0
    assert not EventRollup.objects.exists()


def test_accepted_outcomes_equal_events_stored(app_keys, signed_post):
    send_mixed_traffic(signed_post, app_keys)

    rollups_update(lag_seconds=0)

    accepted = sum(Outcome.objects.filter(outcome="accepted").values_list("count", flat=True))
    assert accepted == Event.objects.count() == 4


def test_rebuild_command_recomputes_the_same_rollups(app_keys, signed_post):
    send_mixed_traffic(signed_post, app_keys)
    rollups_update(lag_seconds=0)
    expected = {granularity: rollup_counts(granularity) for granularity in ("minute", "hour", "day")}
    EventRollup.objects.update(count=999)
    out = StringIO()

    call_command("rebuild_rollups", "--since", "2026-01-01", "--until", "2027-01-01", stdout=out)

    assert {granularity: rollup_counts(granularity) for granularity in ("minute", "hour", "day")} == expected
    assert "Rollups rebuilt from 4 events" in out.getvalue()

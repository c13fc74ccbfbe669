import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from ingest.models import Event, EventRollup, Outcome
from ingest.rollups import rollups_prune, rollups_update
from tests.conftest import iso, make_event

pytestmark = pytest.mark.django_db


def rollup_counts(granularity: str, dimension: str = "") -> Counter:
    return Counter(
        {
            (row.bucket, row.event_type, row.value): row.count
            for row in EventRollup.objects.filter(granularity=granularity, dimension=dimension)
        }
    )


VALUE_OF = {
    "": lambda event: "",
    "category": lambda event: event.category or "",
    "service": lambda event: f"{event.service_name} {event.service_version or ''}".strip(),
    "sdk": lambda event: event.sdk_version or "",
}


def counts_from_raw_events(granularity: str, dimension: str = "") -> Counter:
    truncate = {
        "minute": dict(second=0, microsecond=0),
        "hour": dict(minute=0, second=0, microsecond=0),
        "day": dict(hour=0, minute=0, second=0, microsecond=0),
    }[granularity]
    events = Event.objects.all()
    if granularity == "minute":  # kept for the last 48 hours only
        events = events.filter(timestamp__gte=datetime.now(UTC) - timedelta(hours=48))
    return Counter(
        (event.timestamp.astimezone(UTC).replace(**truncate), event.event_type, VALUE_OF[dimension](event))
        for event in events
    )


def send_mixed_traffic(signed_post, app_keys):
    now = iso(datetime.now(UTC))
    repeated = make_event(timestamp=now)
    signed_post(
        app_keys,
        [
            repeated,
            make_event(timestamp=now, event={"type": "start"}),
            make_event(timestamp=now, service={"name": "x", "version": "2.0.0"}),
        ],
    )
    signed_post(
        app_keys,
        [repeated, make_event(timestamp=iso(datetime.now(UTC) - timedelta(days=40)))],  # a duplicate and a late event
        HTTP_X_SDK_VERSION="telemetry-kit-rust/0.4.0",
    )


@pytest.mark.parametrize("dimension", VALUE_OF)
@pytest.mark.parametrize("granularity", ["minute", "hour", "day"])
def test_rollups_equal_counts_from_raw_events_after_late_and_duplicate_events(
    app_keys, signed_post, granularity, dimension
):
    send_mixed_traffic(signed_post, app_keys)

    rollups_update()

    assert rollup_counts(granularity, dimension) == counts_from_raw_events(granularity, dimension)
    assert sum(rollup_counts(granularity, dimension).values()) == (3 if granularity == "minute" else 4)


def test_minute_rollups_older_than_two_days_are_pruned_and_the_rest_kept(app_keys, signed_post):
    signed_post(app_keys, [make_event(timestamp=iso(datetime.now(UTC)))])
    rollups_update()
    recent = set(EventRollup.objects.values_list("granularity", "bucket"))
    old = EventRollup.objects.filter(granularity="minute").first()
    EventRollup.objects.create(
        organization_id=old.organization_id,
        application_id=old.application_id,
        granularity="minute",
        bucket=old.bucket - timedelta(hours=49),
        event_type=old.event_type,
        count=5,
    )

    assert rollups_prune() == 1
    assert set(EventRollup.objects.values_list("granularity", "bucket")) == recent


def test_running_the_update_again_adds_nothing(app_keys, signed_post):
    send_mixed_traffic(signed_post, app_keys)
    rollups_update()
    before = rollup_counts("hour")

    assert rollups_update() == 0
    assert rollup_counts("hour") == before


def test_events_stored_after_a_run_are_added_by_the_next(app_keys, signed_post):
    signed_post(app_keys, [make_event()])
    rollups_update()
    signed_post(app_keys, [make_event(), make_event()])

    rollups_update()

    assert sum(rollup_counts("day").values()) == 3


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_event_stored_after_an_insert_still_running_waits_for_it(app_keys, signed_post):
    """Ids are taken as inserts start: one still running holds a lower id than an event already
    stored. A run then counts neither, rather than move past the lower id and lose its event."""
    inserted, release = threading.Event(), threading.Event()

    def slow_insert():
        try:
            with transaction.atomic():
                assert signed_post(app_keys, [make_event(event={"type": "slow"})]).status_code == 200
                inserted.set()
                release.wait(30)
        finally:
            connection.close()

    slow = threading.Thread(target=slow_insert)
    slow.start()
    assert inserted.wait(30)
    assert signed_post(app_keys, [make_event(event={"type": "quick"})]).status_code == 200

    assert rollups_update(wait_seconds=0.1) == 0
    assert not EventRollup.objects.exists()

    release.set()
    slow.join()
    rollups_update()
    assert rollup_counts("hour") == Counter(
        {(event.timestamp.replace(minute=0, second=0), event.event_type, ""): 1 for event in Event.objects.all()}
    )
    assert set(Event.objects.values_list("event_type", flat=True)) == {"slow", "quick"}


def test_accepted_outcomes_equal_events_stored(app_keys, signed_post):
    send_mixed_traffic(signed_post, app_keys)

    rollups_update()

    accepted = sum(Outcome.objects.filter(outcome="accepted").values_list("count", flat=True))
    assert accepted == Event.objects.count() == 4


def test_rebuild_command_recomputes_the_same_rollups(app_keys, signed_post):
    send_mixed_traffic(signed_post, app_keys)
    rollups_update()
    everything = [(granularity, dimension) for granularity in ("minute", "hour", "day") for dimension in VALUE_OF]
    expected = {key: rollup_counts(*key) for key in everything}
    EventRollup.objects.update(count=999)
    out = StringIO()

    today = datetime.now(UTC).date()
    call_command(
        "rebuild_rollups",
        "--since",
        str(today - timedelta(days=41)),
        "--until",
        str(today + timedelta(days=1)),
        stdout=out,
    )

    assert {key: rollup_counts(*key) for key in everything} == expected
    assert "Rollups rebuilt from 4 events" in out.getvalue()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # as it runs: its own transactions
def test_the_follower_adds_stored_events_until_it_is_told_to_stop(app_keys, signed_post):
    send_mixed_traffic(signed_post, app_keys)

    call_command("rollups_follow", "--seconds", "0.1")

    assert sum(rollup_counts("day").values()) == Event.objects.count() == 4

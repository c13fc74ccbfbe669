"""Tracked properties: an operator marks a property of an event type, and the rollups keep its top
values with their events and users (a text) or its distribution (a number), with a bounded number
of values a day. Events arrive through the signed ingest and are read back through the selectors."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import Membership
from dashboards import selectors
from ingest.models import PropertyRollup, PropertyValueSlot, TrackedProperty
from ingest.retention.erasure import user_events_erase
from ingest.rollups import rollups_update
from ingest.rollups.services import property_backfill, tracked_property_create, tracked_property_delete
from tests.conftest import app_keys_create, iso, make_event
from tests.factories import UserFactory
from tests.ingest.test_user_rollups import user

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)
MOMENT = NOW - timedelta(hours=2)


def command(name: str | None, who: str = "ada", **data) -> dict:
    if name is not None:
        data["command"] = name
    return make_event(
        timestamp=iso(MOMENT), user_id=user(who), event={"type": "command", "category": "cli", "data": data}
    )


def send(keys, signed_post, events) -> None:
    assert signed_post(keys, events).status_code == 200
    rollups_update()


def breakdown(tracked, **options) -> selectors.PropertyBreakdown:
    return selectors.property_breakdown(tracked=tracked, since=NOW - timedelta(days=1), until=NOW, **options)


def track(keys, path: str, kind=TrackedProperty.Kind.TEXT, event_type="command") -> TrackedProperty:
    return tracked_property_create(application=keys.application, event_type=event_type, path=path, kind=kind)


def test_a_text_property_keeps_its_top_values_with_events_and_users(signed_post):
    keys = app_keys_create()
    tracked = track(keys, "data.command")
    send(
        keys,
        signed_post,
        [
            command("build", "ada"),
            command("build", "ada"),
            command("build", "bob"),
            command("test", "bob"),
            command(None, "cy"),
            command(7, "cy"),
            make_event(timestamp=iso(MOMENT), event={"type": "other", "data": {"command": "build"}}),
        ],
    )

    found = breakdown(tracked)

    assert found.events == 6
    assert [(v.value, v.count, v.users) for v in found.values] == [
        ("build", 3, 2),
        ("", 1, 1),
        ("7", 1, 1),
        ("test", 1, 1),
    ]
    assert found.number is None


def test_a_number_property_keeps_count_sum_least_greatest_and_percentiles(signed_post):
    keys = app_keys_create()
    tracked = track(keys, "duration_ms", TrackedProperty.Kind.NUMBER)
    send(
        keys, signed_post, [command("build", duration_ms=ms) for ms in range(1, 101)] + [command("x", duration_ms="?")]
    )

    found = breakdown(tracked)

    number = found.number
    assert (found.events, number.count, number.sum, number.min, number.max) == (101, 100, 5050.0, 1.0, 100.0)
    assert (number.p50, number.p95, number.p99, number.mean) == (50.0, 95.0, 99.0, 50.5)


def test_a_key_holding_a_dot_is_written_in_quotes(signed_post):
    keys = app_keys_create()
    tracked = track(keys, 'attributes."http.method"')
    send(keys, signed_post, [command("x", attributes={"http.method": "GET", "http": {"method": "no"}})])

    assert [(v.value, v.count) for v in breakdown(tracked).values] == [("GET", 1)]


def test_past_the_day_s_slots_values_count_as_other_and_the_most_frequent_get_slots_first(signed_post):
    keys = app_keys_create()
    tracked = track(keys, "command")
    values = [f"v{n:03}" for n in range(TrackedProperty.VALUES_PER_DAY)]
    # "zz-hot" sorts last: only its count can win it a slot.
    send(keys, signed_post, [command(value) for value in values] + [command("zz-hot") for _ in range(5)])
    send(keys, signed_post, [command("late"), command("zz-hot")])

    found = breakdown(tracked, limit=1000)

    counts = {v.value: v.count for v in found.values}
    assert len(counts) == TrackedProperty.VALUES_PER_DAY + 1
    assert counts["zz-hot"] == 6
    assert "v099" not in counts and "late" not in counts
    assert counts[TrackedProperty.OTHER] == 2
    assert sum(counts.values()) == found.events == TrackedProperty.VALUES_PER_DAY + 7
    # Rows stay bounded: one a kept value and one for the rest, per hour and per day.
    assert PropertyRollup.objects.filter(property_id=tracked.pk, granularity="day").count() == len(counts)


def test_a_new_property_counts_the_last_days_events_in_the_background(signed_post):
    keys = app_keys_create()
    send(keys, signed_post, [command("build"), command("test")])
    tracked = track(keys, "command")

    assert breakdown(tracked).events == 0
    assert property_backfill(application_id=keys.application.pk) == 2
    assert [(v.value, v.count) for v in breakdown(tracked).values] == [("build", 1), ("test", 1)]


def test_an_application_tracks_a_bounded_number_of_properties_once_each():
    keys = app_keys_create()
    track(keys, "command")

    with pytest.raises(ValidationError, match="tracked already"):
        track(keys, "data.command")
    with pytest.raises(ValidationError, match="keys joined by dots"):
        track(keys, "command[0]")
    for n in range(TrackedProperty.PER_APPLICATION - 1):
        track(keys, f"field_{n}")
    with pytest.raises(ValidationError, match=f"at most {TrackedProperty.PER_APPLICATION}"):
        track(keys, "one_more")


def test_untracking_a_property_deletes_its_rollups(signed_post):
    keys = app_keys_create()
    tracked = track(keys, "command")
    send(keys, signed_post, [command("build")])

    tracked_property_delete(tracked_property=tracked)

    assert not PropertyRollup.objects.filter(property_id=tracked.pk).exists()
    assert not PropertyValueSlot.objects.filter(property_id=tracked.pk).exists()


def test_an_erased_user_is_no_longer_among_a_value_s_users(signed_post):
    keys = app_keys_create()
    tracked = track(keys, "command")
    send(keys, signed_post, [command("build", "ada"), command("build", "bob")])

    user_events_erase(application=keys.application, user_id=user("ada"), via="test")

    assert [(v.value, v.count, v.users) for v in breakdown(tracked).values] == [("build", 1, 1)]


def admin_of(application, role=Membership.Role.ADMIN):
    person = UserFactory(is_staff=True)
    Membership.objects.create(user=person, organization=application.organization, role=role)
    return person


def test_an_admin_tracks_a_property_of_their_own_application_only(client):
    mine, theirs = app_keys_create().application, app_keys_create().application
    client.force_login(admin_of(mine))
    url = reverse("admin:ingest_trackedproperty_add")
    form = {"application": mine.pk, "event_type": "command", "path": "data.command", "kind": "text"}

    other = client.post(url, {**form, "application": theirs.pk})
    bad_path = client.post(url, {**form, "path": "data.command[0]"})
    created = client.post(url, form)
    again = client.post(url, {**form, "path": "command"})

    assert other.status_code == bad_path.status_code == again.status_code == 200
    assert "tracked already" in again.content.decode()
    assert created.status_code == 302
    assert list(TrackedProperty.objects.values_list("application", "event_type", "path", "json_path", "kind")) == [
        (mine.pk, "command", "data.command", '$."command"', "text")
    ]


def test_a_viewer_cannot_track_a_property(client):
    mine = app_keys_create().application
    client.force_login(admin_of(mine, Membership.Role.VIEWER))

    response = client.post(
        reverse("admin:ingest_trackedproperty_add"),
        {"application": mine.pk, "event_type": "command", "path": "command", "kind": "text"},
    )

    assert response.status_code == 403
    assert not TrackedProperty.objects.exists()


def test_high_percentiles_stay_inside_the_greatest_value_s_bucket(signed_post):
    keys = app_keys_create()
    tracked = track(keys, "duration_ms", TrackedProperty.Kind.NUMBER)
    # 10 to 3,000: the top decile falls in the (2,000, 5,000] bucket, bounded by 3,000.
    send(keys, signed_post, [command("build", duration_ms=ms) for ms in range(10, 3001, 10)])

    number = breakdown(tracked).number

    assert (number.p50, number.p95, number.p99, number.max) == (1500.0, 2850.0, 2970.0, 3000.0)

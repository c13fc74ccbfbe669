from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from dashboards.selectors import event_series, outcome_series, window_for
from ingest.access.admission import outcomes_flush
from ingest.models import Event
from ingest.rollups import rollups_update
from tests.conftest import app_keys_create, iso, make_event
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("range_key", "by"), [("1h", "minute"), ("24h", "hour"), ("7d", "day"), ("30d", "hour")])
def test_event_series_equals_raw_counts_per_bucket(signed_post, range_key, by):
    keys = app_keys_create()
    now = timezone.now()
    for minutes_ago in (0, 2, 2, 90, 60 * 30, 60 * 24 * 6):
        signed_post(keys, [make_event(timestamp=iso(now - timedelta(minutes=minutes_ago)))])
    rollups_update()
    window = window_for(range_key=range_key, granularity=by, now=now)

    series = event_series(window=window, organization=keys.application.organization)

    step = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}[by]
    expected = [
        Event.objects.filter(timestamp__gte=bucket, timestamp__lt=bucket + step).count() for bucket in window.buckets
    ]
    assert series == expected
    assert len(series) == len(window.buckets)


def test_unknown_range_falls_back_to_24_hours_by_hour():
    window = window_for(range_key="5y", granularity="second", now=timezone.now())

    assert (window.key, window.granularity, len(window.buckets)) == ("24h", "hour", 25)


def test_outcome_series_counts_each_outcome(signed_post):
    keys = app_keys_create()
    event = make_event()
    signed_post(keys, [event, event, make_event(user_id="bad")])
    outcomes_flush()
    rollups_update()
    window = window_for(range_key="24h", granularity="hour", now=timezone.now())

    _, series = outcome_series(organization=keys.application.organization, window=window)

    assert (sum(series["accepted"]), sum(series["duplicate"]), sum(series["invalid"])) == (1, 1, 1)


@pytest.mark.parametrize("query", ["", "?range=1h", "?range=7d&by=day", "?range=nonsense"])
def test_organization_page_renders_for_a_member_and_404s_for_others(client, query):
    mine, theirs = app_keys_create(), app_keys_create()
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=mine.application.organization, role="viewer")
    client.force_login(user)

    own = client.get(reverse("dashboards:organization", args=[mine.org_id]) + query)
    other = client.get(reverse("dashboards:organization", args=[theirs.org_id]) + query)

    assert own.status_code == 200
    assert mine.application.organization.name.encode() in own.content
    assert other.status_code == 404
    assert theirs.application.organization.name.encode() not in other.content

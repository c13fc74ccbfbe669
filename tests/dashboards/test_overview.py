from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Tier
from dashboards.selectors import organization_quota_usage, overview
from ingest.models import Event
from ingest.rollups import rollups_update
from tests.conftest import app_keys_create, iso, make_event
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def member_of(organization, role="viewer"):
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=organization, role=role)
    return user


def test_overview_counts_equal_raw_events(signed_post):
    keys = app_keys_create()
    now = timezone.now()
    signed_post(keys, [make_event(timestamp=iso(now)) for _ in range(3)])
    signed_post(keys, [make_event(timestamp=iso(now - timedelta(days=3))) for _ in range(2)])
    signed_post(keys, [make_event(timestamp=iso(now - timedelta(days=10)))])
    rollups_update()
    user = member_of(keys.application.organization)

    [summary] = overview(user=user, now=now)
    [app] = summary.applications

    events = Event.objects.filter(application=keys.application)
    today_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert app.today == events.filter(timestamp__gte=today_start).count() == 3
    assert app.last_7_days == events.filter(timestamp__gte=today_start - timedelta(days=6)).count() == 5
    assert sum(app.daily) == events.count() == 6
    assert len(app.daily) == 14


def test_quota_usage_and_forecast_follow_accepted_events(signed_post):
    tier = Tier.objects.create(
        slug="small", name="Small", monthly_event_quota=100, requests_per_minute=1000, retention_days=30
    )
    keys = app_keys_create(organization__tier=tier)
    signed_post(keys, [make_event() for _ in range(4)])
    rollups_update()
    now = timezone.now()

    usage = organization_quota_usage(organization=keys.application.organization, now=now)

    elapsed_days = max(
        (now - now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)) / timedelta(days=1), 1 / 24
    )
    import calendar

    assert usage.used == 4
    assert usage.quota == 100
    assert usage.forecast == round(4 / elapsed_days * calendar.monthrange(now.year, now.month)[1])


def test_overview_page_shows_only_the_users_organizations(client, signed_post):
    mine, theirs = app_keys_create(name="checkout-web"), app_keys_create(name="secret-project")
    client.force_login(member_of(mine.application.organization))

    response = client.get(reverse("dashboards:overview"))

    assert response.status_code == 200
    assert b"checkout-web" in response.content
    assert b"secret-project" not in response.content
    assert theirs.application.organization.name.encode() not in response.content


def test_overview_tells_a_new_member_what_to_do_next(client):
    client.force_login(UserFactory(is_staff=True))

    response = client.get(reverse("dashboards:overview"))

    assert b"not a member of any organization" in response.content


def test_overview_needs_sign_in(client):
    response = client.get(reverse("dashboards:overview"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))

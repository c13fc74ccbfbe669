import pytest
from django.urls import reverse

from accounts.models import Membership
from tests.conftest import app_keys_create, make_event
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_times_are_shown_in_the_time_zone_the_user_chose(client, signed_post):
    keys = app_keys_create()
    signed_post(keys, [make_event(timestamp="2026-11-20T10:30:00Z")])
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=keys.application.organization, role="viewer")
    client.force_login(user)
    tail = reverse("dashboards:application_tail", args=[keys.org_id, keys.app_id])
    assert b"2026-11-20 10:30:00 UTC" in client.get(tail).content

    response = client.post(reverse("dashboards:preferences"), {"time_zone": "Asia/Tokyo"})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.time_zone == "Asia/Tokyo"
    assert b"2026-11-20 19:30:00 JST" in client.get(tail).content


def test_an_unknown_time_zone_is_refused(client):
    user = UserFactory(is_staff=True)
    client.force_login(user)

    response = client.post(reverse("dashboards:preferences"), {"time_zone": "Mars/Olympus_Mons"})

    assert response.status_code == 200
    user.refresh_from_db()
    assert user.time_zone == "UTC"


def test_pages_carry_a_content_security_policy_without_inline_scripts_or_styles(client):
    client.force_login(UserFactory(is_staff=True))

    policy = client.get("/")["Content-Security-Policy"]

    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert "unsafe-inline" not in policy and directives["frame-ancestors"] == "'none'"

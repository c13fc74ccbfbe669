"""Sign-in with django-allauth in place: the admin's form, allauth's own, throttling and the audit log."""

import pytest
from django.urls import reverse

from accounts.models import AuditEntry
from tests.accounts.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_allauths_sign_in_page_signs_a_member_in_and_audits_it(client, member):
    response = client.post(
        reverse("account_login"), {"login": member.username, "password": PASSWORD}, REMOTE_ADDR="198.51.100.4"
    )

    assert response.status_code == 302
    assert client.get(reverse("dashboards:overview")).status_code == 200
    entry = AuditEntry.objects.get(action="sign_in")
    assert (entry.actor, entry.source_ip) == (member, "198.51.100.4")


def test_a_wrong_password_on_allauths_page_is_audited_under_the_name_tried(client, member):
    response = client.post(reverse("account_login"), {"login": member.username, "password": "wrong"})

    assert response.status_code == 200
    assert AuditEntry.objects.filter(action="sign_in_failed", target=member.username).count() == 1
    assert not AuditEntry.objects.filter(action="sign_in").exists()


def test_allauths_sign_in_page_is_locked_by_axes_after_repeated_failures(client, member, settings):
    settings.AXES_FAILURE_LIMIT = 3

    for _ in range(3):
        client.post(reverse("account_login"), {"login": member.username, "password": "wrong"})
    locked = client.post(reverse("account_login"), {"login": member.username, "password": PASSWORD})

    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    assert client.get(reverse("dashboards:overview")).status_code == 302


def test_failures_on_one_form_count_towards_the_lock_on_the_other(client, member, settings):
    settings.AXES_FAILURE_LIMIT = 2
    client.post(reverse("account_login"), {"login": member.username, "password": "wrong"})
    client.post(reverse("admin:login"), {"username": member.username, "password": "wrong"})

    locked = client.post(reverse("admin:login"), {"username": member.username, "password": PASSWORD})

    assert locked.status_code == 429


def test_nobody_can_sign_up(client):
    page = client.get(reverse("account_signup"))
    client.post(
        reverse("account_signup"),
        {"username": "newcomer", "email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )

    assert b"Sign Up Closed" in page.content
    assert not AuditEntry.objects.filter(target="newcomer").exists()
    assert not UserFactory._meta.model.objects.filter(username="newcomer").exists()


def test_the_admins_sign_in_still_refuses_an_account_of_no_organization(client):
    loner = UserFactory()
    loner.set_password(PASSWORD)
    loner.save()

    response = client.post(reverse("admin:login"), {"username": loner.username, "password": PASSWORD})

    assert response.status_code == 200 and b"errornote" in response.content
    assert not AuditEntry.objects.filter(action="sign_in").exists()


def test_sign_in_pages_wear_the_dashboards_look(client):
    page = client.get(reverse("account_login"))

    assert page.status_code == 200
    assert b"dashboards/app.css" in page.content and b'class="topbar"' in page.content

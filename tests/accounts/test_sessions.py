"""A person sees where they are signed in and signs those sessions out; a superuser does it for anyone."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry, Membership
from tests.accounts.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def signed_in(user, address: str, browser: str) -> Client:
    client = Client(REMOTE_ADDR=address, HTTP_USER_AGENT=browser)
    response = client.post(reverse("admin:login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    return client


def test_a_person_sees_their_sessions_with_where_they_began(member):
    laptop = signed_in(member, "198.51.100.1", "Laptop-Browser/1.0")
    signed_in(member, "198.51.100.2", "Phone-Browser/2.0")

    page = laptop.get(reverse("usersessions_list"))

    assert page.status_code == 200
    assert b"198.51.100.1" in page.content and b"Laptop-Browser/1.0" in page.content
    assert b"198.51.100.2" in page.content and b"Phone-Browser/2.0" in page.content


def test_signing_out_the_other_sessions_keeps_this_one(member):
    laptop = signed_in(member, "198.51.100.1", "Laptop")
    phone = signed_in(member, "198.51.100.2", "Phone")

    laptop.post(reverse("usersessions_list"))

    assert laptop.get(reverse("dashboards:overview")).status_code == 200
    assert phone.get(reverse("dashboards:overview")).status_code == 302


def test_signing_out_everywhere_ends_this_session_too_and_is_audited(member):
    laptop = signed_in(member, "198.51.100.1", "Laptop")
    phone = signed_in(member, "198.51.100.2", "Phone")

    response = laptop.post(reverse("accounts:sign_out_everywhere"))

    assert response.status_code == 302
    assert laptop.get(reverse("dashboards:overview")).status_code == 302
    assert phone.get(reverse("dashboards:overview")).status_code == 302
    entry = AuditEntry.objects.get(action="signed_out_everywhere")
    assert (entry.actor, entry.target, entry.details) == (member, member.username, {"sessions": 2})


def test_a_superuser_signs_anyone_out_everywhere(member, client):
    phone = signed_in(member, "198.51.100.2", "Phone")
    superuser = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(superuser)

    response = client.post(
        reverse("admin:accounts_user_changelist"), {"action": "sign_out_everywhere", "_selected_action": [member.pk]}
    )

    assert response.status_code == 302
    assert phone.get(reverse("dashboards:overview")).status_code == 302
    assert client.get(reverse("dashboards:overview")).status_code == 200
    entry = AuditEntry.objects.get(action="signed_out_everywhere")
    assert (entry.actor, entry.target) == (superuser, member.username)


def test_only_superusers_reach_other_peoples_accounts(member, client):
    owner = UserFactory()
    Membership.objects.create(user=owner, organization=member.memberships.get().organization, role="owner")
    client.force_login(owner)

    response = client.post(
        reverse("admin:accounts_user_changelist"), {"action": "sign_out_everywhere", "_selected_action": [member.pk]}
    )

    assert response.status_code == 403
    assert not AuditEntry.objects.filter(action="signed_out_everywhere").exists()


def test_preferences_link_to_the_sessions_and_sign_out_everywhere(member):
    laptop = signed_in(member, "198.51.100.1", "Laptop")

    page = laptop.get(reverse("dashboards:preferences"))

    assert reverse("usersessions_list").encode() in page.content
    assert reverse("accounts:sign_out_everywhere").encode() in page.content

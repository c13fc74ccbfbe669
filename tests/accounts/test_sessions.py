"""A person sees where they are signed in and signs those sessions out; a superuser does it for anyone."""

import pytest
from allauth.usersessions.models import UserSession
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry, Membership
from tests.accounts.conftest import PASSWORD, member_create
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


def test_each_session_signed_out_from_the_list_is_audited_with_where_it_began(member):
    laptop = signed_in(member, "198.51.100.1", "Laptop")
    signed_in(member, "198.51.100.2", "Phone")
    signed_in(member, "198.51.100.3", "Tablet")

    response = laptop.post(reverse("usersessions_list"))

    assert response.status_code == 302
    entries = AuditEntry.objects.filter(action="session_ended").order_by("details__ip")
    assert [(e.actor, e.target, e.details["ip"], e.details["user_agent"], e.source_ip) for e in entries] == [
        (member, member.username, "198.51.100.2", "Phone", "198.51.100.1"),
        (member, member.username, "198.51.100.3", "Tablet", "198.51.100.1"),
    ]


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


def test_a_superuser_signs_one_session_of_anyone_out_and_it_is_audited(member, client):
    laptop = signed_in(member, "198.51.100.1", "Laptop")
    phone = signed_in(member, "198.51.100.2", "Phone")
    superuser = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(superuser)
    listed = client.get(reverse("admin:usersessions_usersession_changelist"))
    phone_session = UserSession.objects.get(user=member, user_agent="Phone")

    response = client.post(
        reverse("admin:usersessions_usersession_changelist"),
        {"action": "sign_out", "_selected_action": [phone_session.pk]},
    )

    assert listed.status_code == 200 and b"Laptop" in listed.content and b"Phone" in listed.content
    assert response.status_code == 302
    assert phone.get(reverse("dashboards:overview")).status_code == 302
    assert laptop.get(reverse("dashboards:overview")).status_code == 200
    entry = AuditEntry.objects.get(action="session_ended")
    assert (entry.actor, entry.target, entry.details["ip"], entry.details["user_agent"]) == (
        superuser,
        member.username,
        "198.51.100.2",
        "Phone",
    )


def test_members_do_not_see_or_end_anyones_sessions_in_the_admin(member):
    laptop = signed_in(member, "198.51.100.1", "Laptop")
    other = member_create()
    signed_in(other, "198.51.100.9", "Elsewhere")
    session = UserSession.objects.get(user=other)

    listed = laptop.get(reverse("admin:usersessions_usersession_changelist"))
    ended = laptop.post(
        reverse("admin:usersessions_usersession_changelist"), {"action": "sign_out", "_selected_action": [session.pk]}
    )

    assert (listed.status_code, ended.status_code) == (403, 403)
    assert UserSession.objects.filter(pk=session.pk).exists()
    assert not AuditEntry.objects.filter(action="session_ended").exists()


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

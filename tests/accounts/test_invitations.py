"""Owners invite an address with a role; the link makes a member once, then never again."""

import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.contrib.messages import get_messages
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry, Invitation, Membership, User
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-password-987"


@pytest.fixture
def organization():
    return OrganizationFactory(name="Acme")


@pytest.fixture
def owner(client, organization):
    user = UserFactory(username="the-owner")
    Membership.objects.create(user=user, organization=organization, role="owner")
    client.force_login(user)
    return user


@pytest.fixture
def invite(client, django_capture_on_commit_callbacks):
    """Invites through the admin as the signed-in user; returns the response and the link's path."""

    def invite(organization, email="new.person@example.com", role="viewer"):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                reverse("admin:accounts_invitation_add"),
                {"organization": organization.pk, "email": email, "role": role},
            )
        return response, _last_link()

    return invite


def _last_link() -> str | None:
    if not mail.outbox:
        return None
    found = re.search(r"https?://[^/\s]+(/invitations/[^/\s]+/)", mail.outbox[-1].body)
    return found.group(1) if found else None


def _accept(client, link, username="newcomer"):
    return client.post(link, {"username": username, "password1": PASSWORD, "password2": PASSWORD})


def test_an_owner_invites_an_address_with_a_role_and_a_link_is_mailed_to_it(client, organization, owner, invite):
    response, link = invite(organization, role="admin")

    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role, invitation.organization) == (
        "new.person@example.com",
        "admin",
        organization,
    )
    assert mail.outbox[-1].to == ["new.person@example.com"] and link is not None
    assert link.split("/")[2] not in invitation.token_hash  # only the token's hash is kept
    entry = AuditEntry.objects.get(action="invitation_sent")
    assert (entry.actor, entry.organization_id, entry.target) == (owner, organization.pk, "new.person@example.com")


def test_the_link_is_valid_for_the_configured_days(client, organization, owner, invite, settings):
    settings.INVITATION_VALID_DAYS = 7

    invite(organization)

    invitation = Invitation.objects.get()
    assert invitation.expires_at - invitation.sent_at == timedelta(days=7)


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_only_owners_invite(client, organization, role):
    user = UserFactory()
    Membership.objects.create(user=user, organization=organization, role=role)
    client.force_login(user)

    response = client.post(
        reverse("admin:accounts_invitation_add"),
        {"organization": organization.pk, "email": "x@example.com", "role": "owner"},
    )

    assert response.status_code == 403
    assert not Invitation.objects.exists()


def test_an_owner_cannot_invite_to_an_organization_they_do_not_own(client, owner, invite):
    other = OrganizationFactory()

    response, link = invite(other)

    assert response.status_code == 200 and link is None
    assert not Invitation.objects.exists()


def test_inviting_answers_alike_whether_or_not_the_address_has_an_account(client, organization, owner, invite):
    elsewhere = UserFactory(email="taken@example.com")
    Membership.objects.create(user=elsewhere, organization=OrganizationFactory(), role="owner")

    answers = []
    for email in ("taken@example.com", "free@example.com"):
        response, link = invite(organization, email=email)
        said = str(list(get_messages(response.wsgi_request))[-1])
        answers.append((response.status_code, said.replace(email, "ADDRESS").replace(link, "LINK")))

    assert answers[0] == answers[1]
    assert answers[0][0] == 302 and "Invitation sent to ADDRESS" in answers[0][1]
    assert not Membership.objects.filter(user=elsewhere, organization=organization).exists()


def test_owners_no_longer_add_existing_accounts_directly(client, organization, owner):
    UserFactory(username="someone")

    page = client.get(reverse("admin:accounts_membership_add"))
    post = client.post(
        reverse("admin:accounts_membership_add"), {"user": "someone", "organization": organization.pk, "role": "viewer"}
    )

    assert (page.status_code, post.status_code) == (403, 403)
    assert not Membership.objects.filter(user__username="someone").exists()


def test_accepting_makes_an_account_with_the_invited_address_and_the_role_only(client, organization, owner, invite):
    _, link = invite(organization, role="admin")
    client.logout()

    page = client.get(link)
    response = _accept(client, link)

    assert page.status_code == 200 and b"Join Acme" in page.content
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboards:organization", args=[organization.public_id])
    user = User.objects.get(username="newcomer")
    assert (user.email, user.is_staff, user.is_superuser) == ("new.person@example.com", False, False)
    assert user.check_password(PASSWORD)
    assert list(user.memberships.values_list("organization", "role")) == [(organization.pk, "admin")]
    assert EmailAddress.objects.filter(user=user, email="new.person@example.com", verified=True).exists()
    assert client.get(response["Location"]).status_code == 200
    entry = AuditEntry.objects.get(action="invitation_accepted")
    assert (entry.actor, entry.organization_id, entry.details) == (
        user,
        organization.pk,
        {"user": "newcomer", "role": "admin"},
    )


def test_a_new_member_reaches_nothing_of_another_organization(client, organization, owner, invite):
    _, link = invite(organization, role="owner")
    client.logout()
    _accept(client, link)
    other_app = ApplicationFactory(organization=OrganizationFactory())

    assert client.get(reverse("admin:accounts_application_change", args=[other_app.pk])).status_code == 404
    assert client.get(reverse("admin:accounts_tier_changelist")).status_code == 403
    assert client.get(reverse("dashboards:organization", args=[other_app.organization.public_id])).status_code == 404


def test_an_invitation_cannot_be_used_twice(client, organization, owner, invite):
    _, link = invite(organization)
    client.logout()
    _accept(client, link)
    client.logout()

    again = _accept(client, link, username="second-comer")

    assert again.status_code == 404
    assert b"does not work" in again.content
    assert not User.objects.filter(username="second-comer").exists()
    assert Membership.objects.filter(organization=organization).count() == 2


def test_an_expired_link_is_refused(client, organization, owner, invite):
    _, link = invite(organization)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    client.logout()

    assert client.get(link).status_code == 404
    assert _accept(client, link).status_code == 404
    assert not User.objects.filter(username="newcomer").exists()


def test_a_revoked_link_is_refused_and_the_revocation_audited(client, organization, owner, invite):
    _, link = invite(organization)
    invitation = Invitation.objects.get()

    revoked = client.post(reverse("admin:accounts_invitation_revoke", args=[invitation.pk]))
    client.logout()

    assert revoked.status_code == 302
    assert _accept(client, link).status_code == 404
    assert AuditEntry.objects.filter(action="invitation_revoked", target="new.person@example.com").count() == 1


def test_re_sending_replaces_the_link_and_starts_the_days_again(
    client, organization, owner, invite, django_capture_on_commit_callbacks
):
    _, old_link = invite(organization)
    Invitation.objects.update(expires_at=timezone.now() + timedelta(hours=1))
    invitation = Invitation.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:accounts_invitation_changelist"),
            {"action": "resend_selected", "_selected_action": [invitation.pk]},
        )
    new_link = _last_link()
    invitation.refresh_from_db()
    client.logout()

    assert new_link != old_link
    assert invitation.expires_at > timezone.now() + timedelta(days=2)
    assert client.get(old_link).status_code == 404
    assert _accept(client, new_link).status_code == 302


def test_a_signed_in_person_joins_with_their_own_account(client, organization, owner, invite):
    _, link = invite(organization)
    someone = UserFactory()
    client.force_login(someone)

    response = client.post(link)

    assert response.status_code == 302
    assert Membership.objects.get(user=someone, organization=organization).role == "viewer"
    assert Invitation.objects.get().accepted_by == someone


def test_an_unknown_link_answers_like_a_used_one(client):
    response = client.get("/invitations/not-a-real-token/")

    assert response.status_code == 404 and b"does not work" in response.content

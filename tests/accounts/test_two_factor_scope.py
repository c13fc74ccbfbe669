"""An organization's "members must use two-factor" closes that organization's pages to a member
without a second factor, and leaves their other organizations open."""

import re

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.urls import reverse

from accounts.models import Membership
from accounts.services import credential_issue, read_token_issue
from tests.accounts.conftest import PASSWORD, member_create
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def strict():
    """An organization that requires two-factor of its members."""
    return OrganizationFactory(name="Strict Bank", require_two_factor=True)


@pytest.fixture
def relaxed():
    return OrganizationFactory(name="Relaxed Games")


@pytest.fixture
def member(strict, relaxed):
    """An admin of both organizations, without a second factor, signed in with a password."""
    user = member_create(organization=strict, role="admin")
    Membership.objects.create(user=user, organization=relaxed, role="admin")
    return user


@pytest.fixture
def signed_in(client, member):
    response = client.post(reverse("admin:login"), {"username": member.username, "password": PASSWORD})
    assert response.status_code == 302
    return client


def closed(page, organization) -> bool:
    """The page that says the organization requires two-factor, with the ways to set it up."""
    text = page.content.decode()
    return (
        page.status_code == 403
        and "Two-factor authentication needed" in text
        and f"<strong>{organization.name}</strong>" in text
        and reverse("mfa_activate_totp") in text
    )


def test_the_requiring_organizations_dashboards_are_closed_and_the_others_open(signed_in, strict, relaxed):
    strict_app, relaxed_app = ApplicationFactory(organization=strict), ApplicationFactory(organization=relaxed)

    strict_pages = [
        signed_in.get(reverse("dashboards:organization", args=[strict.public_id])),
        signed_in.get(reverse("dashboards:application", args=[strict.public_id, strict_app.public_id])),
        signed_in.get(reverse("dashboards:alert_history", args=[strict.public_id])),
    ]
    relaxed_pages = [
        signed_in.get(reverse("dashboards:organization", args=[relaxed.public_id])),
        signed_in.get(reverse("dashboards:application", args=[relaxed.public_id, relaxed_app.public_id])),
    ]

    assert all(closed(page, strict) for page in strict_pages)
    assert [page.status_code for page in relaxed_pages] == [200, 200]
    assert b"Relaxed Games" in relaxed_pages[0].content


def test_the_closed_page_links_to_the_other_organizations(signed_in, strict, relaxed):
    page = signed_in.get(reverse("dashboards:organization", args=[strict.public_id]))

    assert reverse("dashboards:organization", args=[relaxed.public_id]).encode() in page.content
    assert reverse("dashboards:organization", args=[strict.public_id]).encode() not in page.content


def test_the_overview_shows_the_open_organizations_and_names_the_closed_one(signed_in, strict, relaxed):
    page = signed_in.get(reverse("dashboards:overview"))

    assert page.status_code == 200
    assert reverse("dashboards:organization", args=[relaxed.public_id]).encode() in page.content
    assert reverse("dashboards:organization", args=[strict.public_id]).encode() not in page.content
    assert b"Strict Bank requires two-factor authentication of members" in page.content


def test_the_requiring_organizations_admin_objects_and_token_pages_are_closed(signed_in, strict, relaxed):
    strict_app, relaxed_app = ApplicationFactory(organization=strict), ApplicationFactory(organization=relaxed)
    strict_credential = credential_issue(application=strict_app).credential
    strict_token = read_token_issue(organization=strict).read_token

    strict_pages = [
        signed_in.get(reverse("admin:accounts_organization_change", args=[strict.pk])),
        signed_in.get(reverse("admin:accounts_application_change", args=[strict_app.pk])),
        signed_in.post(reverse("admin:accounts_application_issue", args=[strict_app.pk])),
        signed_in.get(reverse("admin:accounts_credential_change", args=[strict_credential.pk])),
        signed_in.post(reverse("admin:accounts_credential_revoke", args=[strict_credential.pk])),
        signed_in.get(reverse("admin:accounts_readtoken_change", args=[strict_token.pk])),
        signed_in.post(reverse("admin:accounts_readtoken_revoke", args=[strict_token.pk])),
    ]

    assert all(closed(page, strict) for page in strict_pages)
    strict_credential.refresh_from_db()
    strict_token.refresh_from_db()
    assert strict_credential.revoked_at is None and strict_token.revoked_at is None
    assert strict_app.credentials.count() == 1
    assert signed_in.get(reverse("admin:accounts_application_change", args=[relaxed_app.pk])).status_code == 200
    assert signed_in.post(reverse("admin:accounts_application_issue", args=[relaxed_app.pk])).status_code == 200


def test_the_admins_lists_and_choices_leave_the_requiring_organization_out(signed_in, strict, relaxed):
    ApplicationFactory(organization=strict, name="Vault")
    ApplicationFactory(organization=relaxed, name="Arcade")

    listed = signed_in.get(reverse("admin:accounts_application_changelist"))
    adding = signed_in.get(reverse("admin:accounts_application_add"))
    index = signed_in.get(reverse("admin:index"))

    assert listed.status_code == 200 and b"Arcade" in listed.content and b"Vault" not in listed.content
    choices = re.search(r'<select name="organization".*?</select>', adding.content.decode(), re.S).group(0)
    assert "Relaxed Games" in choices and "Strict Bank" not in choices
    assert b"Strict Bank requires two-factor authentication of members" in index.content


def test_a_malformed_object_id_gets_the_admins_answer_not_an_error(signed_in):
    response = signed_in.get("/admin/accounts/application/not-a-number/change/")

    assert response.status_code == 404


def test_once_a_factor_is_set_up_the_requiring_organization_opens(signed_in, member, strict):
    TOTP.activate(member, generate_totp_secret())

    page = signed_in.get(reverse("dashboards:organization", args=[strict.public_id]))

    assert page.status_code == 200 and b"Strict Bank" in page.content
    assert b"requires two-factor authentication of members" not in page.content


def test_a_member_of_requiring_organizations_only_gets_the_page_everywhere(client, strict):
    only_strict = member_create(organization=strict)
    client.post(reverse("admin:login"), {"username": only_strict.username, "password": PASSWORD})

    pages = [client.get(path) for path in ("/", "/admin/", reverse("admin:accounts_application_changelist"))]

    assert all(closed(page, strict) for page in pages)
    assert client.get(reverse("dashboards:preferences")).status_code == 200
    assert client.get(reverse("mfa_index")).status_code == 200
    assert client.get(reverse("usersessions_list")).status_code == 200
    assert client.post(reverse("accounts:sign_out_everywhere")).status_code == 302
    assert client.get(reverse("dashboards:preferences")).status_code == 302  # signed out


def test_the_requirement_of_an_organization_is_not_one_of_superusers(client, settings, strict):
    settings.SECURITY_SUPERUSERS_REQUIRE_TWO_FACTOR = False
    superuser = UserFactory(is_superuser=True)
    Membership.objects.create(user=superuser, organization=strict, role="owner")
    client.force_login(superuser)

    assert client.get(reverse("dashboards:organization", args=[strict.public_id])).status_code == 200

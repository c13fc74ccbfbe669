"""Single sign-on against a real OpenID Connect provider the tests start on localhost
(conftest.oidc_provider): the browser's part of the protocol is played by requests, the service's
by the test client, which talks to the provider over HTTP for the token, keys and userinfo."""

import re
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from allauth.account.models import EmailAddress
from django.urls import reverse

from accounts.models import AuditEntry, Membership, SignOnRule, User
from tests.accounts.conftest import PASSWORD
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sso(settings, oidc_provider):
    settings.SSO_ISSUER = oidc_provider["issuer"]
    settings.SSO_LABEL = "Sign in with Acme ID"
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "OAUTH_PKCE_ENABLED": True,
            "APPS": [
                {
                    "provider_id": "sso",
                    "name": "Acme ID",
                    "client_id": oidc_provider["client_id"],
                    "secret": oidc_provider["secret"],
                    "settings": {"server_url": oidc_provider["issuer"]},
                }
            ],
        }
    }
    return oidc_provider


def sign_on(client, username: str, amr: tuple[str, ...] = (), acr: str = ""):
    """Starts sign-in at the service, signs in at the provider as ``username`` (with the methods
    ``amr`` and level ``acr`` the provider's ID token then reports), and hands the provider's answer
    back to the service; returns the service's last response."""
    start = client.post(reverse("openid_connect_login", args=["sso"]), {"next": "/admin/"})
    assert start.status_code == 302, start.content
    browser = requests.Session()
    url = start["Location"]
    for _ in range(6):
        if url.startswith("http://testserver/"):
            break
        answer = browser.get(url, allow_redirects=False, timeout=10)
        if answer.status_code == 200 and "csrfmiddlewaretoken" in answer.text:
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', answer.text).group(1)
            next_url = re.search(r'name="next" value="([^"]*)"', answer.text).group(1).replace("&amp;", "&")
            answer = browser.post(
                url,
                {
                    "csrfmiddlewaretoken": token,
                    "username": username,
                    "password": "provider-password",
                    "next": next_url,
                    "amr": list(amr),
                    "acr": acr,
                },
                allow_redirects=False,
                timeout=10,
            )
        assert answer.status_code == 302, answer.text
        url = urljoin(url, answer.headers["Location"])
    callback = urlsplit(url)
    return client.get(f"{callback.path}?{callback.query}")


def signed_in_user(client):
    response = client.get(reverse("dashboards:preferences"))
    return response.wsgi_request.user if response.status_code == 200 else None


def test_a_new_person_signs_in_through_the_provider_and_gets_an_account(client, sso):
    response = sign_on(client, "alice")

    assert response.status_code == 302
    user = User.objects.get(email="alice@acme.example")
    assert signed_in_user(client) == user
    assert (user.is_staff, user.is_superuser, user.has_usable_password()) == (False, False, False)
    assert EmailAddress.objects.filter(user=user, email="alice@acme.example", verified=True).exists()
    assert AuditEntry.objects.filter(action="sign_in", actor=user).count() == 1


def test_the_provider_finds_the_account_with_the_same_verified_address(client, sso):
    existing = UserFactory(username="alice-here", email="alice@acme.example")
    EmailAddress.objects.create(user=existing, email="alice@acme.example", verified=True, primary=True)

    sign_on(client, "alice")

    assert signed_in_user(client) == existing
    assert User.objects.filter(email="alice@acme.example").count() == 1


def test_an_address_the_provider_does_not_vouch_for_never_signs_in_to_the_account_with_it(client, sso):
    existing = UserFactory(username="carol-here", email="carol@acme.example")
    EmailAddress.objects.create(user=existing, email="carol@acme.example", verified=True, primary=True)

    sign_on(client, "carol")

    assert signed_in_user(client) != existing


def test_rules_place_the_person_in_organizations_by_domain_and_by_group(client, sso):
    by_domain, by_group, unrelated = OrganizationFactory(), OrganizationFactory(), OrganizationFactory()
    SignOnRule.objects.create(organization=by_domain, email_domain="acme.example", role="viewer")
    SignOnRule.objects.create(organization=by_group, group="telemetry-admins", role="admin")
    SignOnRule.objects.create(organization=unrelated, email_domain="elsewhere.example", role="owner")

    sign_on(client, "alice")

    user = User.objects.get(email="alice@acme.example")
    assert set(user.memberships.values_list("organization", "role")) == {
        (by_domain.pk, "viewer"),
        (by_group.pk, "admin"),
    }
    assert client.get("/admin/").status_code == 200
    assert AuditEntry.objects.filter(action="membership_changed", details__via="single sign-on").count() == 2


def test_a_rule_keeps_a_role_the_person_already_holds(client, sso):
    organization = OrganizationFactory()
    SignOnRule.objects.create(organization=organization, email_domain="acme.example", role="viewer")
    existing = UserFactory(email="alice@acme.example")
    EmailAddress.objects.create(user=existing, email="alice@acme.example", verified=True, primary=True)
    Membership.objects.create(user=existing, organization=organization, role="owner")

    sign_on(client, "alice")

    assert Membership.objects.get(user=existing, organization=organization).role == "owner"


def test_a_domain_not_allowed_is_refused(client, sso, settings):
    settings.SSO_ALLOWED_DOMAINS = ["acme.example"]

    response = sign_on(client, "bob")

    assert response.status_code == 403
    assert b"may not sign in here" in response.content
    assert not User.objects.filter(email="bob@elsewhere.example").exists()
    assert signed_in_user(client) is None
    assert AuditEntry.objects.filter(action="sign_in_failed", target="bob@elsewhere.example").exists()


def test_a_second_factor_is_still_asked_after_the_provider(client, sso):
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    existing = UserFactory(email="alice@acme.example")
    EmailAddress.objects.create(user=existing, email="alice@acme.example", verified=True, primary=True)
    TOTP.activate(existing, generate_totp_secret())

    response = sign_on(client, "alice")

    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    assert signed_in_user(client) is None


def test_the_admins_sign_in_page_offers_the_provider(client, sso):
    page = client.get(reverse("admin:login"))

    assert b"Sign in with Acme ID" in page.content
    assert reverse("openid_connect_login", args=["sso"]).encode() in page.content


def test_with_passwords_turned_off_a_member_cannot_sign_in_with_one(client, sso, settings, member):
    settings.SSO_PASSWORD_SIGN_IN = False

    admin_form = client.post(reverse("admin:login"), {"username": member.username, "password": PASSWORD})
    allauth_form = client.post(reverse("account_login"), {"login": member.username, "password": PASSWORD})

    assert admin_form.status_code == 200 and b"passwords are turned off" in admin_form.content
    assert allauth_form.status_code == 200 and b"passwords are turned off" in allauth_form.content
    assert signed_in_user(client) is None


def test_with_passwords_turned_off_a_superuser_still_signs_in_with_one(client, sso, settings):
    settings.SSO_PASSWORD_SIGN_IN = False
    superuser = UserFactory(is_superuser=True)
    superuser.set_password(PASSWORD)
    superuser.save()

    response = client.post(reverse("admin:login"), {"username": superuser.username, "password": PASSWORD})

    assert response.status_code == 302
    assert signed_in_user(client) == superuser


def test_a_superuser_sets_an_organizations_rules_on_its_page(client):
    organization = OrganizationFactory()
    client.force_login(UserFactory(is_superuser=True))

    response = client.post(
        reverse("admin:accounts_organization_change", args=[organization.pk]),
        {
            "name": organization.name,
            "tier": organization.tier.pk,
            "contact_email": "",
            "extra_quota": "0",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "applications-TOTAL_FORMS": "0",
            "applications-INITIAL_FORMS": "0",
            "sign_on_rules-TOTAL_FORMS": "1",
            "sign_on_rules-INITIAL_FORMS": "0",
            "sign_on_rules-0-email_domain": "acme.example",
            "sign_on_rules-0-group": "",
            "sign_on_rules-0-role": "admin",
        },
    )

    assert response.status_code == 302
    assert list(organization.sign_on_rules.values_list("email_domain", "role")) == [("acme.example", "admin")]


def test_an_owner_does_not_see_or_set_the_rules(client):
    organization = OrganizationFactory()
    owner = UserFactory()
    Membership.objects.create(user=owner, organization=organization, role="owner")
    client.force_login(owner)

    page = client.get(reverse("admin:accounts_organization_change", args=[organization.pk]))

    assert page.status_code == 200 and b"sign_on_rules" not in page.content


def test_a_person_made_by_the_provider_sets_up_two_factor_when_their_organization_requires_it(client, sso):
    organization = OrganizationFactory(require_two_factor=True)
    SignOnRule.objects.create(organization=organization, email_domain="acme.example", role="viewer")

    sign_on(client, "alice")
    sent = client.get("/admin/")
    page = client.get(reverse("mfa_activate_totp"))

    assert sent.status_code == 403 and reverse("mfa_activate_totp").encode() in sent.content
    assert page.status_code == 200 and b"Authenticator secret" in page.content


def test_allauths_sign_in_page_offers_the_provider_and_no_sign_up(client, sso):
    page = client.get(reverse("account_login"))

    assert b"Acme ID" in page.content
    assert reverse("openid_connect_login", args=["sso"]).encode() in page.content
    assert reverse("account_signup").encode() not in page.content


@pytest.fixture
def requiring_organization():
    """An organization that requires two-factor, which the provider's acme.example people join."""
    organization = OrganizationFactory(require_two_factor=True)
    SignOnRule.objects.create(organization=organization, email_domain="acme.example", role="viewer")
    return organization


@pytest.mark.parametrize(
    "amr",
    [("mfa",), ("pwd", "otp"), ("hwk", "pin"), ("pwd", "swk"), ("fpt", "hwk")],
    ids=["mfa", "password-and-code", "key-and-pin", "password-and-software-key", "fingerprint-and-key"],
)
def test_a_sign_in_the_provider_made_with_two_factors_counts_as_two_factor(client, sso, requiring_organization, amr):
    sign_on(client, "alice", amr=amr)

    page = client.get(reverse("dashboards:organization", args=[requiring_organization.public_id]))

    assert page.status_code == 200 and requiring_organization.name.encode() in page.content
    user = User.objects.get(email="alice@acme.example")
    assert not user.authenticator_set.exists()
    entry = AuditEntry.objects.get(action="provider_two_factor")
    assert (entry.actor, entry.details) == (user, {"amr": list(amr), "acr": ""})
    preferences = client.get(reverse("dashboards:preferences")).content.decode()
    assert "on for this session: your sign-in provider checked a second factor" in preferences


@pytest.mark.parametrize(
    "amr",
    [("pwd",), ("otp",), ("hwk", "swk"), ("pwd", "kba")],
    ids=["password", "code-alone", "two-keys", "password-and-question"],
)
def test_a_sign_in_the_provider_made_with_one_factor_must_still_set_up_two_factor_here(
    client, sso, requiring_organization, amr
):
    sign_on(client, "alice", amr=amr)

    page = client.get(reverse("dashboards:organization", args=[requiring_organization.public_id]))

    assert page.status_code == 403 and b"Two-factor authentication needed" in page.content
    assert not AuditEntry.objects.filter(action="provider_two_factor").exists()


@pytest.mark.parametrize("acr, counts", [("https://refeds.org/profile/mfa", True), ("urn:acme:loa:1", False)])
def test_an_acr_counts_as_two_factor_when_the_operator_lists_it(
    client, sso, settings, requiring_organization, acr, counts
):
    settings.SSO_TWO_FACTOR_ACR = ["https://refeds.org/profile/mfa", "urn:acme:loa:3"]

    sign_on(client, "alice", amr=("pwd",), acr=acr)

    page = client.get(reverse("dashboards:organization", args=[requiring_organization.public_id]))
    assert (page.status_code == 200) is counts
    assert AuditEntry.objects.filter(action="provider_two_factor", details__acr=acr).exists() is counts


def test_the_providers_two_factors_count_only_for_the_session_it_signed_in(client, sso, requiring_organization):
    sign_on(client, "alice", amr=("pwd", "otp"))
    client.post(reverse("account_logout"))
    sign_on(client, "alice", amr=("pwd",))

    page = client.get(reverse("dashboards:organization", args=[requiring_organization.public_id]))

    assert page.status_code == 403 and b"Two-factor authentication needed" in page.content


def test_the_providers_two_factors_count_for_superusers_the_setting_requires_it_of(client, sso, settings):
    settings.SECURITY_SUPERUSERS_REQUIRE_TWO_FACTOR = True
    superuser = UserFactory(email="alice@acme.example", is_superuser=True)
    EmailAddress.objects.create(user=superuser, email="alice@acme.example", verified=True, primary=True)

    sign_on(client, "alice", amr=("mfa",))

    assert signed_in_user(client) == superuser
    assert client.get("/admin/").status_code == 200

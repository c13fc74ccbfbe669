"""Operators' identity in a real browser: an invitation accepted end to end; two-factor set up, then
used with a recovery code; a security key and a passkey added and signed in with, on Chromium's
virtual authenticator (the DevTools protocol's WebAuthn domain)."""

import re
import time

import pytest
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from playwright.sync_api import expect, sync_playwright

from accounts.models import Membership, Organization, Tier, User
from accounts.services import organization_create
from tests.server import database_env_for_server, running_server

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def organization():
    organization = organization_create(name="Acme Robotics", tier=Tier.objects.get(slug="pro"))
    owner = User.objects.create_user("olivia", "olivia@acme.example", "a-long-owner-password")
    Membership.objects.create(user=owner, organization=organization, role=Membership.Role.OWNER)
    return organization


@pytest.fixture
def browser(organization, sync_orm_beside_playwright, launch_chromium):
    # No ORM call may run while Playwright's loop does (tests/browser/conftest.py: site): the data is
    # made by the fixtures before this one, and the tests check what the pages show.
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


def new_page(browser, refused: list):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    return page


def admin_sign_in(page, site, username, password):
    page.goto(f"{site}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def test_an_invited_person_joins_with_a_password_of_their_own(organization, site, browser, screenshots):
    refused = []
    owner = new_page(browser, refused)
    admin_sign_in(owner, site, "olivia", "a-long-owner-password")
    owner.goto(f"{site}/admin/accounts/invitation/add/")
    owner.select_option("#id_organization", label=str(organization))
    owner.fill("#id_email", "sam@acme.example")
    owner.select_option("#id_role", "admin")
    owner.click("input[name=_save]")
    message = owner.locator(".messagelist").inner_text()
    owner.screenshot(path=str(screenshots / "invitation-sent.png"), full_page=True)
    link = re.search(r"https?://\S+/invitations/\S+/", message).group(0)

    invited = new_page(browser, refused)
    invited.goto(site + "/invitations/" + link.split("/invitations/")[1])
    expect(invited.locator("h1")).to_have_text("Join Acme Robotics")
    invited.fill("#id_username", "sam")
    invited.fill("#id_password1", "sams-own-long-password")
    invited.fill("#id_password2", "sams-own-long-password")
    invited.screenshot(path=str(screenshots / "invitation-accept.png"), full_page=True)
    invited.click("text=Create my account and join")

    expect(invited.locator("h1")).to_contain_text("Acme Robotics")
    expect(invited.locator(".messages")).to_contain_text("You are now a member of Acme Robotics")
    invited.screenshot(path=str(screenshots / "invitation-joined.png"), full_page=True)
    invited.goto(f"{site}/admin/accounts/application/add/")  # an admin of the organization adds applications
    expect(invited.locator("#id_name")).to_be_visible()
    assert refused == []

    invited.goto(site + "/invitations/" + link.split("/invitations/")[1])
    expect(invited.locator("h1")).to_have_text("This invitation link does not work")


@pytest.fixture
def two_factor_required(organization):
    Organization.objects.filter(pk=organization.pk).update(require_two_factor=True)


def test_a_member_of_an_organization_requiring_it_sets_up_two_factor_and_signs_in_with_it(
    two_factor_required, site, browser, screenshots
):
    refused = []
    page = new_page(browser, refused)

    admin_sign_in(page, site, "olivia", "a-long-owner-password")
    # Acme is her only organization: every page says how to set it up, after confirming the password.
    expect(page.locator("h1")).to_have_text("Two-factor authentication needed")
    expect(page.locator("main")).to_contain_text("Acme Robotics requires its members to use two-factor authentication")
    page.screenshot(path=str(screenshots / "two-factor-needed.png"), full_page=True)
    page.click("text=Set up an authenticator app")
    expect(page.locator("h1")).to_contain_text("Confirm Access")
    page.fill("#id_password", "a-long-owner-password")
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_have_text("Activate Authenticator App")
    page.screenshot(path=str(screenshots / "two-factor-activate.png"), full_page=True)
    secret = page.locator("#authenticator_secret").input_value()
    code = format_hotp_value(hotp_value(secret, int(time.time()) // 30))
    page.fill("#id_code", code)
    page.click("main button[type=submit]")
    codes = page.locator("#recovery_codes").input_value().split()
    page.screenshot(path=str(screenshots / "two-factor-recovery-codes.png"), full_page=True)
    assert len(codes) == 10

    page.goto(f"{site}/admin/")
    expect(page.locator("#site-name")).to_contain_text("Telemetry")
    page.goto(f"{site}/preferences/")
    expect(page.locator("#security-heading")).to_be_visible()
    page.screenshot(path=str(screenshots / "preferences-security.png"), full_page=True)
    page.click("text=Sign out olivia")

    admin_sign_in(page, site, "olivia", "a-long-owner-password")
    expect(page.locator("#id_code")).to_be_visible()
    page.screenshot(path=str(screenshots / "two-factor-code.png"), full_page=True)
    page.fill("#id_code", codes[0])
    page.click("main button[type=submit] >> nth=0")
    expect(page.locator("#site-name")).to_contain_text("Telemetry")
    assert page.url == f"{site}/admin/"
    assert refused == []


def security_key(page) -> tuple:
    """Chromium's virtual authenticator (DevTools protocol) for this page: a key built into the device
    that keeps accounts (a passkey) and checks its user, as a PIN or fingerprint would, every time."""
    devtools = page.context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    added = devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    return devtools, added["authenticatorId"]


def key_credentials(devtools, authenticator_id) -> list:
    return devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]


def add_security_key(page, site, screenshots, name: str, passkey: bool, shot: str):
    """From Preferences: two-factor, add a security key (confirming the password if allauth asks)."""
    page.goto(f"{site}/preferences/")
    page.click("text=Two-factor authentication")
    expect(page.locator("h1")).to_have_text("Two-Factor Authentication")
    page.click("a[href='/accounts/2fa/webauthn/add/']")
    if page.locator("h1").inner_text().startswith("Confirm Access"):
        page.fill("#id_password", "a-long-owner-password")
        page.click("main button[type=submit]")
    expect(page.locator("h1")).to_have_text("Add a security key or passkey")
    page.fill("#id_name", name)
    if passkey:
        page.check("#id_passwordless")
    page.screenshot(path=str(screenshots / shot), full_page=True)
    page.click("#mfa_webauthn_add")


def localhost(site: str) -> str:
    # A WebAuthn relying party is named by a domain, never an address; browsers and fido2 allow plain
    # http on localhost only.
    return site.replace("127.0.0.1", "localhost")


def test_a_member_adds_a_security_key_and_signs_in_with_the_password_and_the_key(site, browser, screenshots):
    site = localhost(site)
    refused = []
    page = new_page(browser, refused)
    devtools, authenticator_id = security_key(page)
    admin_sign_in(page, site, "olivia", "a-long-owner-password")
    expect(page.locator("#site-name")).to_contain_text("Telemetry")

    add_security_key(page, site, screenshots, "Desk key", passkey=False, shot="security-key-add.png")

    # The first factor comes with recovery codes, shown once set up.
    expect(page.locator("h1")).to_have_text("Recovery Codes")
    expect(page.locator(".messages")).to_contain_text("Security key added")
    assert len(key_credentials(devtools, authenticator_id)) == 1
    page.goto(f"{site}/accounts/2fa/")
    expect(page.locator("main")).to_contain_text("You have added 1 security key.")
    page.screenshot(path=str(screenshots / "two-factor-index-with-key.png"), full_page=True)
    page.goto(f"{site}/accounts/2fa/webauthn/")
    expect(page.locator("main table")).to_contain_text("Desk key")
    page.screenshot(path=str(screenshots / "security-key-list.png"), full_page=True)
    page.click("text=Sign out olivia")

    admin_sign_in(page, site, "olivia", "a-long-owner-password")
    expect(page.locator("#mfa_webauthn_authenticate")).to_be_visible()
    page.screenshot(path=str(screenshots / "security-key-sign-in.png"), full_page=True)
    page.click("#mfa_webauthn_authenticate")

    expect(page.locator("#site-name")).to_contain_text("Telemetry")
    assert page.url == f"{site}/admin/"
    page.goto(f"{site}/accounts/2fa/webauthn/")
    expect(page.locator("main table")).to_contain_text("Last used")
    assert refused == []


def test_a_passkey_signs_in_on_its_own(site, browser, screenshots):
    site = localhost(site)
    refused = []
    page = new_page(browser, refused)
    devtools, authenticator_id = security_key(page)
    admin_sign_in(page, site, "olivia", "a-long-owner-password")
    add_security_key(page, site, screenshots, "Laptop passkey", passkey=True, shot="passkey-add.png")
    expect(page.locator("h1")).to_have_text("Recovery Codes")
    assert [credential["isResidentCredential"] for credential in key_credentials(devtools, authenticator_id)] == [True]
    page.goto(f"{site}/accounts/2fa/webauthn/")
    expect(page.locator("main table")).to_contain_text("Passkey")
    page.click("text=Sign out olivia")

    page.goto(f"{site}/admin/login/")
    page.screenshot(path=str(screenshots / "passkey-sign-in.png"), full_page=True)
    page.click("#passkey_login")

    expect(page.locator("header nav")).to_contain_text("Sign out olivia")
    page.goto(f"{site}/admin/")
    expect(page.locator("#site-name")).to_contain_text("Telemetry")
    assert refused == []


@pytest.fixture(scope="module")
def site_with_single_sign_on_only(django_db_setup, server_data_dir):
    """A second server on the same database whose operators turned passwords off for single sign-on
    (the provider is never reached here: only the refusal of a passkey is shown)."""
    with running_server(
        server_data_dir("sso-only"),
        **database_env_for_server(),
        APP_SSO__ISSUER="http://127.0.0.1:9/o",
        APP_SSO__CLIENT_ID="telemetry",
        APP_SSO__CLIENT_SECRET="unused",
        APP_SSO__PASSWORD_SIGN_IN="false",
    ) as port:
        yield f"http://localhost:{port}"


def test_with_passwords_turned_off_a_passkey_does_not_sign_in_either(
    site, site_with_single_sign_on_only, browser, screenshots
):
    site = localhost(site)
    refused = []
    page = new_page(browser, refused)
    security_key(page)
    admin_sign_in(page, site, "olivia", "a-long-owner-password")
    add_security_key(page, site, screenshots, "Laptop passkey", passkey=True, shot="passkey-add.png")
    expect(page.locator("h1")).to_have_text("Recovery Codes")
    page.click("text=Sign out olivia")

    # The same key (it is bound to the host name, localhost) at the installation that wants SSO.
    page.goto(f"{site_with_single_sign_on_only}/accounts/login/")
    page.click("#passkey_login")

    expect(page.locator(".messages")).to_contain_text("passkeys, like passwords, are turned off here")
    page.screenshot(path=str(screenshots / "passkey-refused.png"), full_page=True)
    page.goto(f"{site_with_single_sign_on_only}/admin/")
    expect(page.locator("#id_username")).to_be_visible()
    assert refused == []


@pytest.fixture
def second_organization(organization):
    """Olivia is also an owner of Acme Robotics' sister company, which requires two-factor."""
    strict = organization_create(name="Acme Bank", tier=Tier.objects.get(slug="pro"))
    Organization.objects.filter(pk=strict.pk).update(require_two_factor=True)
    Membership.objects.create(user=User.objects.get(username="olivia"), organization=strict, role="owner")
    return strict.public_id


def test_an_organization_requiring_two_factor_is_closed_and_the_other_stays_open(
    organization, second_organization, site, browser, screenshots
):
    refused = []
    page = new_page(browser, refused)
    admin_sign_in(page, site, "olivia", "a-long-owner-password")
    expect(page.locator("#site-name")).to_contain_text("Telemetry")
    expect(page.locator(".messagelist")).to_contain_text("Acme Bank requires two-factor authentication of members")

    page.goto(f"{site}/")
    expect(page.locator("main")).to_contain_text("Acme Robotics")
    expect(page.locator("main p.warn")).to_contain_text("Acme Bank requires two-factor authentication of members")
    page.screenshot(path=str(screenshots / "two-factor-scoped-overview.png"), full_page=True)

    page.goto(f"{site}/orgs/{second_organization}/")
    expect(page.locator("h1")).to_have_text("Two-factor authentication needed")
    expect(page.locator("main")).to_contain_text("Acme Bank requires its members to use two-factor authentication")
    page.screenshot(path=str(screenshots / "two-factor-scoped-closed.png"), full_page=True)
    page.click("text=Acme Robotics")
    expect(page.locator("h1")).to_contain_text("Acme Robotics")
    assert refused == []

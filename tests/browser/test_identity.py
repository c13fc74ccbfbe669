"""Operators' identity in a real browser: an invitation accepted end to end, and two-factor set up,
then used with a recovery code."""

import re
import time

import pytest
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from playwright.sync_api import expect, sync_playwright

from accounts.models import Membership, Organization, Tier, User
from accounts.services import organization_create

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

"""An organization owner in a real browser: from signing in to a revoked credential answering 401."""

import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect, sync_playwright

from accounts.models import Membership, Tier, User
from accounts.services import organization_create
from tests.conftest import batch_body, make_event, sign

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def organization():
    """An organization and its owner, made before the server and the browser start."""
    organization = organization_create(name="Acme Robotics", tier=Tier.objects.get(slug="pro"))
    owner = User.objects.create_user("olivia", "olivia@acme.example", "a-long-owner-password", is_staff=True)
    Membership.objects.create(user=owner, organization=organization, role=Membership.Role.OWNER)
    return organization


@pytest.fixture
def page(organization, sync_orm_beside_playwright, launch_chromium):
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield context.new_page()
        browser.close()


def send_batch(base_url: str, values: dict) -> int:
    body = batch_body([make_event()])
    import time
    import uuid

    timestamp, nonce = str(int(time.time())), str(uuid.uuid4())
    request = urllib.request.Request(
        f"{base_url}/v1/ingest/{values['org_id']}/{values['app_id']}",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Signature": sign(values["hmac_secret"], timestamp, nonce, body),
            "X-Batch-Size": "1",
            "Authorization": f"Bearer {values['api_token']}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def read_credentials(page) -> dict:
    return {
        key: page.locator(f"#tk-{key.replace('_', '-')}").inner_text().strip()
        for key in ("org_id", "app_id", "api_token", "hmac_secret")
    }


def test_owner_issues_rotates_and_revokes_credentials_in_the_browser(organization, site, page, screenshots):

    page.goto(f"{site}/admin/")
    page.fill("#id_username", "olivia")
    page.fill("#id_password", "a-long-owner-password")
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("Telemetry")

    page.goto(f"{site}/admin/accounts/application/add/")
    page.select_option("#id_organization", label=str(organization))
    page.fill("#id_name", "Web shop")
    page.click("input[name=_save]")
    expect(page.locator(".tk-warning")).to_contain_text("only time")
    first = read_credentials(page)
    page.screenshot(path=str(screenshots / "credential-issued.png"), full_page=True)

    assert first["org_id"] == organization.public_id
    assert send_batch(site, first) == 200

    page.click("text=I have stored the secret")
    page.click("text=Rotate credentials")
    page.fill("#id_overlap_hours", "24")
    page.click("text=Rotate now")
    expect(page.locator(".tk-warning")).to_contain_text("stops at")
    second = read_credentials(page)

    assert second["api_token"] != first["api_token"]
    assert (send_batch(site, first), send_batch(site, second)) == (200, 200)

    page.click("text=I have stored the secret")
    expect(page.locator("text=Active until rotation ends")).to_be_visible()
    page.screenshot(path=str(screenshots / "application.png"), full_page=True)
    page.locator("tr", has_text=first["api_token"][:11]).locator("text=Revoke").click()
    page.click("button:has-text('Revoke credential')")
    expect(page.locator(".messagelist")).to_contain_text("revoked")

    assert send_batch(site, first) == 401
    assert send_batch(site, second) == 200

    page.goto(f"{site}/admin/accounts/auditentry/")
    for action in ("Credential revoked", "Credential rotated", "Application created", "Signed in"):
        expect(page.locator("#result_list")).to_contain_text(action)
    page.screenshot(path=str(screenshots / "audit-log.png"), full_page=True)

"""A member in a real browser: overview, an application, another range, and the live tail."""

import time
import urllib.request
import uuid

import pytest
from playwright.sync_api import expect, sync_playwright

from accounts.models import Membership, User
from ingest.rollups import rollups_update
from tests.conftest import app_keys_create, batch_body, make_event, sign

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def keys():
    """An application and a member, made before the server and the browser start."""
    keys = app_keys_create(name="Checkout web")
    user = User.objects.create_user("maria", "maria@shop.example", "a-long-member-password", is_staff=True)
    Membership.objects.create(user=user, organization=keys.application.organization, role="viewer")
    return keys


def send(site: str, keys, events) -> int:
    body = batch_body(events)
    timestamp, nonce = str(int(time.time())), str(uuid.uuid4())
    request = urllib.request.Request(
        site + keys.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Signature": sign(keys.hmac_secret, timestamp, nonce, body),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_member_follows_an_application_from_the_overview_to_its_live_tail(
    keys, site, screenshots, viewport, sync_orm_beside_playwright, launch_chromium
):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    assert (
        send(site, keys, [make_event(timestamp=now, event={"type": t}) for t in ("page_view", "page_view", "checkout")])
        == 200
    )
    rollups_update()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_context(viewport=VIEWPORTS[viewport]).new_page()

        page.goto(site + "/")
        page.fill("#id_username", "maria")
        page.fill("#id_password", "a-long-member-password")
        page.click("input[type=submit]")
        expect(page.locator("h1")).to_have_text("Overview")
        expect(page.locator("table.apps")).to_contain_text("Checkout web")
        page.screenshot(path=str(screenshots / f"overview-{viewport}.png"), full_page=True)

        page.click(f"text={keys.application.organization.name}")
        expect(page.locator("#events-chart canvas")).to_be_visible()
        page.screenshot(path=str(screenshots / f"organization-{viewport}.png"), full_page=True)

        page.click("text=Checkout web")
        page.select_option("#range", "7d")
        expect(page.locator("#by")).to_have_value("hour")
        expect(page.locator("#top-event-types-title + table")).to_contain_text("page_view")

        assert (
            send(
                site,
                keys,
                [
                    make_event(
                        timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        event={"type": "sent_during_the_test"},
                    )
                ],
            )
            == 200
        )
        expect(page.locator("#tail")).to_contain_text("sent_during_the_test", timeout=15_000)
        page.screenshot(path=str(screenshots / f"application-{viewport}.png"), full_page=True)
        browser.close()

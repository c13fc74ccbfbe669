"""A member opens an application's page and its Versions panel in a real browser, after a month
of signed batches from users on three releases: the Users card's figures and chart, the versions'
stacked shares and tables, no WCAG violation, nothing refused by the Content-Security-Policy."""

import random
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect, sync_playwright

from accounts.models import Membership, User
from ingest.rollups import rollups_update
from tests.browser.test_accessibility import WCAG
from tests.conftest import app_keys_create, batch_body, signed_headers
from tests.dashboards.test_users_panel import event

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
# Each release's first day, days ago: 2.0.0 spreads over a fortnight, 2.1.0 over the last week.
RELEASES = (("1.4.2", 40), ("2.0.0", 21), ("2.1.0", 6))


@pytest.fixture
def keys():
    keys = app_keys_create(name="Shop CLI")
    user = User.objects.create_user("noor", "noor@shop.example", "a-long-member-password", is_staff=True)
    Membership.objects.create(user=user, organization=keys.application.organization, role="viewer")
    return keys


def month_of_use() -> list[dict]:
    """30 days of 60 users who come back on some days and upgrade some days after each release."""
    rng, now = random.Random(30), datetime.now(UTC)
    upgrades = {name: {release: rng.uniform(0, 12) for release, _ in RELEASES} for name in map(str, range(60))}
    events = []
    for days_ago in range(30, -1, -1):
        for name, delays in upgrades.items():
            if rng.random() < 0.45:
                moment = now - timedelta(days=days_ago, hours=rng.uniform(0.5, 20))
                if moment >= now:
                    continue
                version = [
                    release for release, since in RELEASES if since - delays[release] >= days_ago or release == "1.4.2"
                ][-1]
                events.append(event(f"user-{name}", moment, version))
    return events


def post_signed(site: str, keys, events: list[dict]) -> int:
    """Sends a batch as the SDK does, over HTTP to the running server."""
    body = batch_body(events)
    headers = {
        name.removeprefix("HTTP_").replace("_", "-"): value
        for name, value in signed_headers(keys, body, batch_size=len(events)).items()
    }
    request = urllib.request.Request(
        site + keys.url, data=body, method="POST", headers={**headers, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def test_the_users_card_and_versions_panel_show_a_month_of_use(
    keys, site, screenshots, sync_orm_beside_playwright, launch_chromium
):
    events = month_of_use()
    for start in range(0, len(events), 500):
        assert post_signed(site, keys, events[start : start + 500]) == 200
    rollups_update()

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        refused = []
        page.on(
            "console",
            lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None,
        )
        page.goto(site + "/")
        page.fill("#id_username", "noor")
        page.fill("#id_password", "a-long-member-password")
        page.click("input[type=submit]")
        page.goto(f"{site}/orgs/{keys.org_id}/apps/{keys.app_id}/?range=30d&by=day")

        card = page.locator("section", has=page.locator("#users-title"))
        expect(card.locator("dt", has_text="MAU 30 UTC days")).to_be_visible()
        expect(card.locator("dd").nth(2)).to_have_text("60")
        expect(page.locator("#users-chart canvas")).to_be_visible()
        page.wait_for_load_state("networkidle")
        card.screenshot(path=str(screenshots / "users-card.png"))
        page.screenshot(path=str(screenshots / "application-users.png"), full_page=True)
        violations = Axe().run(page, options=WCAG).response["violations"]

        page.get_by_role("link", name="Versions", exact=True).click()
        expect(page.locator("h1")).to_contain_text("Versions")
        expect(page.locator("#shares-chart canvas")).to_be_visible()
        rows = page.locator("table.versions").first.locator("tbody tr")
        expect(rows).to_have_count(3)
        expect(page.locator("table.versions").first).to_contain_text("2.1.0")
        page.fill("#id_below", "50")
        page.get_by_role("button", name="Show").click()
        expect(page).to_have_url(
            f"{site}/orgs/{keys.org_id}/apps/{keys.app_id}/versions/?range=30d&of=service&below=50"
        )
        expect(page.locator("table.versions").nth(1)).to_contain_text("1.4.2")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(screenshots / "versions-panel.png"), full_page=True)
        violations += Axe().run(page, options=WCAG).response["violations"]

        page.get_by_role("link", name="SDK versions").click()
        expect(page.locator("table.versions").first).to_contain_text("telemetry-kit-rust/0.3.0")
        page.screenshot(path=str(screenshots / "versions-panel-sdk.png"), full_page=True)
        browser.close()

    assert [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in violations] == []
    assert refused == []

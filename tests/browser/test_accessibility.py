"""Every dashboard page passes axe-core's WCAG 2 A and AA rules, works from the keyboard alone, and
loads under the Content-Security-Policy without anything refused."""

import time
import urllib.request

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect, sync_playwright

from accounts.models import Membership, Tier, User
from ingest.models import Stream
from ingest.rollups import rollups_update
from tests.browser.test_dashboards import send
from tests.conftest import app_keys_create, make_event

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
WCAG = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}


@pytest.fixture
def keys():
    # A tier with a quota, so the pages show the quota bar too.
    team = Tier.objects.create(
        slug="team-a11y", name="Team", monthly_event_quota=1000, requests_per_minute=1000, retention_days=30
    )
    keys = app_keys_create(name="Mobile app", organization__tier=team)
    empty = app_keys_create(name="Brand new", organization=keys.application.organization)
    user = User.objects.create_user("ana", "ana@shop.example", "a-long-member-password", is_staff=True)
    Membership.objects.create(user=user, organization=keys.application.organization, role="viewer")
    return keys, empty


def stream_send(site, keys, body: bytes) -> int:
    """Sends an event stream over HTTP; returns the stream's id."""
    request = urllib.request.Request(
        f"{site}/v1/streams/{keys.org_id}/{keys.app_id}",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {keys.api_token}",
            "Content-Type": "application/x-ndjson",
            "User-Agent": "demo-agent/2.0",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.read() == str(body.count(b"\n")).encode()
    return Stream.objects.filter(application=keys.application).latest("pk").pk


def sign_in(page, site):
    page.goto(site + "/")
    page.fill("#id_username", "ana")
    page.fill("#id_password", "a-long-member-password")
    page.click("input[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")


def test_dashboard_pages_have_no_wcag_violations(keys, site, sync_orm_beside_playwright, launch_chromium, screenshots):
    keys, empty = keys
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    assert send(site, keys, [make_event(timestamp=now), make_event(timestamp=now, user_id="bad")]) == 207
    rollups_update()
    org, app = keys.org_id, keys.app_id
    stream = stream_send(site, keys, b'{"level": "INFO", "msg": "hi mom"}\n{"type": "metric", "value": 3}\n')
    pages = [
        "/",
        f"/orgs/{org}/",
        f"/orgs/{org}/?range=1h",
        f"/orgs/{org}/apps/{app}/",
        f"/orgs/{org}/apps/{app}/?range=30d&by=day&type=command",
        f"/orgs/{org}/apps/{empty.app_id}/",
        "/preferences/",
        f"/orgs/{org}/apps/{app}/streams/",
        f"/orgs/{org}/apps/{app}/streams/{stream}/",
    ]
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        refused = []  # what the Content-Security-Policy blocked: inline scripts or styles, other origins
        page.on(
            "console",
            lambda message: (
                refused.append((page.url, message.text)) if "Content Security Policy" in message.text else None
            ),
        )
        sign_in(page, site)
        found = {}
        for path in pages:
            page.goto(site + path)
            page.wait_for_load_state("networkidle")
            if path == "/":
                page.screenshot(path=str(screenshots / "overview-with-quota.png"), full_page=True)
            if "/streams/" in path:
                page.screenshot(path=str(screenshots / f"streams-{path.count('/')}.png"), full_page=True)
            violations = Axe().run(page, options=WCAG).response["violations"]
            if violations:
                found[path] = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in violations]
        for path in ("/admin/", "/admin/accounts/application/", "/api/docs/"):  # not ours to audit, but CSP-clean
            page.goto(site + path)
            page.wait_for_load_state("networkidle")
        browser.close()

    assert found == {}
    assert refused == []


def test_range_and_type_can_be_changed_from_the_keyboard(keys, site, sync_orm_beside_playwright, launch_chromium):
    keys, _ = keys
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    assert send(site, keys, [make_event(timestamp=now, event={"type": "signup"})]) == 200
    rollups_update()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        sign_in(page, site)
        page.goto(f"{site}/orgs/{keys.org_id}/apps/{keys.app_id}/")

        page.keyboard.press("Tab")
        expect(page.locator("a.skip")).to_be_focused()
        page.focus("#range")
        page.keyboard.press("ArrowDown")  # 24h → 7d
        expect(page).to_have_url(f"{site}/orgs/{keys.org_id}/apps/{keys.app_id}/?range=7d")
        expect(page.locator("#by")).to_have_value("hour")
        page.focus("#type")
        page.keyboard.press("ArrowDown")  # All types → signup
        expect(page.locator("h1")).to_contain_text("signup")
        expect(page.locator("#tail")).to_contain_text("signup")
        browser.close()

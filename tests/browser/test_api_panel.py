"""A member opens an application's API panel in a real browser, after Malti batches arrived over HTTP:
charts drawn, numbers shown, no WCAG violation, nothing refused by the Content-Security-Policy."""

import json
import random
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect, sync_playwright

from accounts.models import Membership, User
from accounts.services import credential_issue
from ingest.rollups import rollups_update
from tests.browser.test_accessibility import WCAG
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
ROUTES = [
    ("GET", "/orders/{order_id}", 35, 0.02),
    ("GET", "/orders", 80, 0.01),
    ("POST", "/orders", 220, 0.06),
    ("GET", "/products/{sku}", 12, 0.0),
    ("DELETE", "/orders/{order_id}", 150, 0.2),
]


@pytest.fixture
def shop():
    """A Malti key's application and a member, made before the server and the browser start."""
    application = ApplicationFactory(name="Orders API")
    token = credential_issue(application=application, service_name="orders-api").api_token
    user = User.objects.create_user("lena", "lena@shop.example", "a-long-member-password", is_staff=True)
    Membership.objects.create(user=user, organization=application.organization, role="viewer")
    return application, token


def traffic(count: int) -> list[dict]:
    """Requests of the last three hours, as a Malti client reports them, with a slow spell an hour ago."""
    rng, now = random.Random(8), datetime.now(UTC)
    records = []
    for _ in range(count):
        method, endpoint, typical, error_share = rng.choice(ROUTES)
        at = now - timedelta(seconds=rng.uniform(30, 3 * 3600))
        slow = 3 if timedelta(minutes=50) < now - at < timedelta(minutes=70) else 1
        status = rng.choice((500, 503, 404, 401)) if rng.random() < error_share else (201 if method == "POST" else 200)
        records.append(
            {
                "service": "orders-api",
                "method": method,
                "endpoint": endpoint,
                "status": status,
                "response_time": int(rng.lognormvariate(0, 0.6) * typical * slow),
                "consumer": rng.choice(("web-shop", "web-shop", "mobile-app", "partner-feed", "anonymous")),
                "node": rng.choice(("web-01", "web-02")),
                "context": None,
                "created_at": at.isoformat(),
            }
        )
    return records


def send(site: str, token: str, records: list[dict]) -> dict:
    request = urllib.request.Request(
        site + "/api/v1/ingest",
        data=json.dumps({"requests": records}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-API-Key": token},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return json.load(response)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_member_opens_the_api_panel_of_an_application(
    shop, site, screenshots, viewport, sync_orm_beside_playwright, launch_chromium
):
    application, token = shop
    records = traffic(1500)
    for start in range(0, len(records), 500):  # batches of the client's default size
        assert send(site, token, records[start : start + 500])["count"] == 500
    rollups_update()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_context(viewport=VIEWPORTS[viewport]).new_page()
        refused = []
        page.on(
            "console",
            lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None,
        )
        page.goto(site + "/")
        page.fill("#id_username", "lena")
        page.fill("#id_password", "a-long-member-password")
        page.click("input[type=submit]")
        page.goto(f"{site}/orgs/{application.organization.public_id}/apps/{application.public_id}/")

        page.click("text=API panel")
        expect(page.locator("h1")).to_have_text("Orders API · API")
        expect(page.locator(".tiles")).to_contain_text("1,500")
        for chart in ("api-rate-chart", "api-errors-chart", "api-latency-chart"):
            expect(page.locator(f"#{chart} canvas")).to_be_visible()
        expect(page.locator("#endpoints-title + table")).to_contain_text("/orders/{order_id}")
        expect(page.locator("#top-consumers-title + table")).to_contain_text("web-shop")
        expect(page.locator("#status-title + table")).to_contain_text("503")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(screenshots / f"api-panel-{viewport}.png"), full_page=True)
        violations = Axe().run(page, options=WCAG).response["violations"]

        page.select_option("#range", "7d")
        expect(page.locator("#by")).to_have_value("hour")
        expect(page.locator(".tiles")).to_contain_text("1,500")
        browser.close()

    assert [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in violations] == []
    assert refused == []

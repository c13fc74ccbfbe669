"""The Lambda panel in a real browser: data sent over HTTP by both Lambda ways in, charts drawn,
no WCAG violation, nothing refused by the Content-Security-Policy, and a screenshot to look at."""

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect, sync_playwright

from accounts.models import Membership, User
from ingest.rollups import rollups_update
from tests.browser.test_accessibility import WCAG
from tests.conftest import app_keys_create
from tests.ingest.test_lambda_api import SEED_FUNCTION, SEED_START
from tests.ingest.test_lambda_rollups import report
from tests.ingest.test_otlp_api import gauge as otlp_gauge
from tests.ingest.test_otlp_api import metrics

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def keys():
    keys = app_keys_create(name="Image service")
    user = User.objects.create_user("lee", "lee@shop.example", "a-long-member-password", is_staff=True)
    Membership.objects.create(user=user, organization=keys.application.organization, role="viewer")
    return keys


def post(url: str, body: bytes, content_type: str, token: str) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def invocations(hours: int = 6) -> list[dict]:
    """A few hours of a function's reports: a cold start each hour, some errors, durations that vary."""
    now = datetime.now(UTC)
    array = []
    for i in range(hours * 12):
        moment = now - timedelta(minutes=5 * i + 1)
        element = report(
            0,
            40.0 + (i * 37) % 400,
            status="error" if i % 9 == 0 else "success",
            used=70 + i % 40,
            init=180.0 + i if i % 12 == 0 else None,
        )
        element["time"] = moment.isoformat()
        element["record"]["requestId"] = f"req-{i}"
        array.append(element)
    return array


def test_the_lambda_panel_shows_a_functions_invocations(
    keys, site, screenshots, sync_orm_beside_playwright, launch_chromium
):
    base = f"{site}/v1/lambda/{keys.org_id}/{keys.app_id}"
    assert (
        post(
            f"{base}?function=thumbnailer&version=14",
            json.dumps([SEED_START, SEED_FUNCTION, *invocations()]).encode(),
            "application/json",
            keys.api_token,
        )
        == 200
    )
    assert (
        post(
            f"{base}?function=thumbnailer&version=15",
            json.dumps(invocations(2)[:10]).encode(),
            "application/json",
            keys.api_token,
        )
        == 200
    )
    now_nanos = time.time_ns()
    export = metrics(
        *[otlp_gauge("faas.invocation.duration", 900.0 + i, at=now_nanos - i * 10**9) for i in range(5)],
        **{"faas.name": "resize", "faas.version": "3"},
    )
    assert (
        post(
            f"{site}/v1/otlp/{keys.org_id}/{keys.app_id}/v1/metrics",
            export.SerializeToString(),
            "application/x-protobuf",
            keys.api_token,
        )
        == 200
    )
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
        page.fill("#id_username", "lee")
        page.fill("#id_password", "a-long-member-password")
        page.click("input[type=submit]")
        page.goto(f"{site}/orgs/{keys.org_id}/apps/{keys.app_id}/")
        page.get_by_role("link", name="AWS Lambda", exact=True).click()

        expect(page.locator("h1")).to_contain_text("AWS Lambda")
        expect(page.locator("#invocations-chart canvas")).to_be_visible()
        expect(page.locator("#duration-chart canvas")).to_be_visible()
        rows = page.locator("table.lambda tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.nth(0)).to_contain_text("thumbnailer")
        expect(rows.nth(0)).to_contain_text("14")
        expect(page.locator("table.lambda")).to_contain_text("resize")
        expect(page.locator(".figures")).to_contain_text("Invocations")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(screenshots / "lambda-panel.png"), full_page=True)
        violations = Axe().run(page, options=WCAG).response["violations"]

        page.select_option("#range", "1h")
        expect(page).to_have_url(f"{site}/orgs/{keys.org_id}/apps/{keys.app_id}/lambda/?range=1h")
        expect(page.locator("#invocations-title")).to_have_text("Invocations per 5 minutes")
        browser.close()

    assert [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in violations] == []
    assert refused == []

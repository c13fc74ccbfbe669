"""An owner in a real browser: a silence rule made in the admin fires, and the application page
and the alert history show it."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from accounts.models import Membership, Tier, User
from accounts.services import application_create, organization_create
from alerts.models import AlertRule
from alerts.services import rules_evaluate

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def shop():
    """An application with no events yet and its organization's owner, made before the browser starts."""
    organization = organization_create(name="Acme Robotics", tier=Tier.objects.get(slug="pro"))
    owner = User.objects.create_user("olivia", "olivia@acme.example", "a-long-owner-password", is_staff=True)
    Membership.objects.create(user=owner, organization=organization, role=Membership.Role.OWNER)
    return application_create(organization=organization, name="Web shop").credential.application


def new_page(browser, refused: list, storage_state=None):
    page = browser.new_context(viewport={"width": 1280, "height": 900}, storage_state=storage_state).new_page()
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    return page


def test_a_silence_rule_made_in_the_admin_fires_and_shows_on_the_dashboards(
    shop, site, screenshots, tmp_path, sync_orm_beside_playwright, launch_chromium
):
    organization, refused, signed_in = shop.organization, [], str(tmp_path / "signed-in.json")
    application_url = f"{site}/orgs/{organization.public_id}/apps/{shop.public_id}/"

    # No ORM call while Playwright runs (tests/browser/conftest.py: site): the browser stops before the
    # evaluation pass and starts again, signed in, after it.
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = new_page(browser, refused)
        page.goto(f"{site}/admin/login/")
        page.fill("#id_username", "olivia")
        page.fill("#id_password", "a-long-owner-password")
        page.click("input[type=submit]")
        page.goto(f"{site}/admin/alerts/alertrule/add/")
        page.select_option("#id_organization", label=str(organization))
        page.select_option("#id_application", label=str(shop))
        page.fill("#id_name", "Web shop is quiet")
        page.select_option("#id_kind", "silence")
        page.fill("#id_parameters", '{"minutes": 1}')
        page.click("input[name=_save]")
        expect(page.locator(".messagelist")).to_contain_text("Web shop is quiet")

        page.goto(application_url)
        expect(page.locator("h1")).to_contain_text("Web shop")
        expect(page.locator(".alerts-banner")).to_have_count(0)
        page.context.storage_state(path=signed_in)
        browser.close()

    rules_evaluate(now=timezone.now(), rules=AlertRule.objects.filter(organization=organization))

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = new_page(browser, refused, storage_state=signed_in)
        page.goto(application_url)
        banner = page.locator(".alerts-banner")
        expect(banner).to_contain_text("1 alert firing")
        expect(banner).to_contain_text("Web shop is quiet")
        expect(banner).to_contain_text("No events for a while")
        expect(banner).to_contain_text("value 0 against threshold 1")
        expect(banner).to_contain_text("not acknowledged")
        expect(page.locator("#events-chart canvas")).to_be_visible()
        expect(page.locator("#events-chart ~ .marks-key")).to_contain_text("Web shop is quiet fired")
        page.screenshot(path=str(screenshots / "alert-banner.png"), full_page=True)

        banner.locator("text=history").click()
        expect(page.locator("h1")).to_have_text("Web shop is quiet")
        rows = page.locator("table.history tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("Firing")
        expect(rows.first).to_contain_text("none: no channels")
        page.screenshot(path=str(screenshots / "alert-history.png"), full_page=True)

        page.goto(f"{site}/orgs/{organization.public_id}/")
        expect(page.locator(".alerts-banner")).to_contain_text("Web shop is quiet")
        page.screenshot(path=str(screenshots / "organization-alerts.png"), full_page=True)
        page.click("text=Alert history")
        expect(page.locator("table.history tbody tr").first).to_contain_text("Web shop is quiet")
        page.screenshot(path=str(screenshots / "alert-history-organization.png"), full_page=True)
        browser.close()

    assert refused == []

import pytest

from tests.server import ROOT, database_env_for_server, running_server, static_files_into

SCREENSHOTS = ROOT / "var" / "screenshots"


@pytest.fixture
def site(tmp_path, collected_static):
    """The production server, static files collected, on the test database. Ask for the data a test
    needs before this and the browser: ORM calls made while Playwright's sync API runs would open a
    connection in another context that nothing closes."""
    static_files_into(tmp_path, collected_static)
    with running_server(tmp_path, **database_env_for_server()) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def launch_chromium():
    """Starts Debian's Chromium headless with the flags this sandbox needs (never a downloaded browser)."""
    def launch(playwright):
        return playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])

    return launch


@pytest.fixture
def screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def sync_orm_beside_playwright(monkeypatch):
    # Playwright's sync API runs an event loop in the test's thread, while the ORM here is sync code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

import pytest

from tests.server import ROOT, database_env_for_server, running_server

SCREENSHOTS = ROOT / "var" / "screenshots"


@pytest.fixture(scope="module")
def site(django_db_setup, server_data_dir):
    """The production server, static files collected, on the test database; one for a module's
    tests (each makes data of its own). Ask for the data a test needs before the browser: ORM calls
    made while Playwright's sync API runs would open a connection in another context that nothing
    closes."""
    with running_server(server_data_dir("site"), **database_env_for_server()) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def launch_chromium():
    """Starts Debian's Chromium headless with the flags this sandbox needs (never a downloaded browser)."""

    def launch(playwright):
        return playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
        )

    return launch


@pytest.fixture
def screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def sync_orm_beside_playwright(monkeypatch):
    # Playwright's sync API runs an event loop in the test's thread, while the ORM here is sync code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

import os
import subprocess
import sys

import pytest

from tests.server import ROOT, running_server, database_env_for_server

SCREENSHOTS = ROOT / "var" / "screenshots"


@pytest.fixture
def site(tmp_path):
    """The production server, static files collected, on the test database. Ask for the data a test
    needs before this and the browser: ORM calls made while Playwright's sync API runs would open a
    connection in another context that nothing closes."""
    env = database_env_for_server()
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, check=True,
                   env={**os.environ, "APP_DATA_DIR": str(tmp_path), **env}, timeout=120)
    with running_server(tmp_path, **env) as port:
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

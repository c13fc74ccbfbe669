"""The production web server run as a subprocess, for tests that need real HTTP or a broken dependency."""

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wsgi_to_http(headers: dict) -> dict:
    """Test-client header names (HTTP_X_NONCE) as real HTTP headers (X-Nonce)."""
    return {name[5:].replace("_", "-").title(): value for name, value in headers.items()}


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_env_for_server() -> dict[str, str]:
    """Environment for a server subprocess that uses the test database and can read its secrets."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    return {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "SECRET_KEY": settings.SECRET_KEY,
    }


def wait_for_port(port: int, seconds: float = 60) -> None:
    """Until something listens on ``port`` of 127.0.0.1; raises after ``seconds``, so that a server
    that did not start fails here, not later as a refused connection. Generous: a cold start beside
    a busy suite takes several seconds."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds:g} s") from None
            time.sleep(0.1)


@contextmanager
def running_server(data_dir, port: int | None = None, **env_overrides):
    """Starts ``python -m telemetry.server`` on ``port`` (by default a free one) with the given
    environment; yields the port once it, and the WebSocket listener if one is asked for, listen."""
    port = port or unused_port()
    env = {
        **os.environ,
        "APP_SERVER__WORKERS": "1",
        "APP_SERVER__WEBSOCKET_PORT": "0",
        **env_overrides,
        "APP_SERVER__PORT": str(port),
        "APP_DATA_DIR": str(data_dir),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "telemetry.server"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        if int(env["APP_SERVER__WEBSOCKET_PORT"]):
            wait_for_port(int(env["APP_SERVER__WEBSOCKET_PORT"]))
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


def stream_url(port: int, keys) -> str:
    """An application's event-stream WebSocket URL on the listener at ``port``, its token in the query."""
    return f"ws://127.0.0.1:{port}/v1/streams/{keys.org_id}/{keys.app_id}?token={keys.api_token}"


def collect_static(data_dir, env: dict) -> None:
    """Pages name hashed static files from collectstatic's manifest: collect them for a server."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "APP_DATA_DIR": str(data_dir), **env},
        timeout=120,
    )


def static_files_into(data_dir, collected) -> None:
    """Gives a server's ``data_dir`` the static files collected once in ``collected`` (a data
    directory): hard links, so each server has a tree of its own at no copying cost."""
    shutil.copytree(Path(collected) / "static", Path(data_dir) / "static", copy_function=os.link)


def signed_in_cookie(organization, role: str = "viewer") -> str:
    """A Cookie header value for a new member of ``organization``, as signing in would have made it."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.models import Membership
    from tests.factories import UserFactory

    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=organization, role=role)
    session = SessionStore()
    session.update(
        {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
    )
    session.create()
    return f"sessionid={session.session_key}"

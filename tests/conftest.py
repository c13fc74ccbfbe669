import fcntl
import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.test import Client

from accounts.models import Application
from accounts.services import credential_issue
from tests.factories import ApplicationFactory
from tests.server import collect_static, database_env_for_server, running_server, static_files_into, unused_port

USER_ID = "client_" + "ab" * 32


@dataclass
class AppKeys:
    application: Application
    api_token: str
    hmac_secret: str

    @property
    def org_id(self) -> str:
        return self.application.organization.public_id

    @property
    def app_id(self) -> str:
        return self.application.public_id

    @property
    def url(self) -> str:
        return f"/v1/ingest/{self.org_id}/{self.app_id}"


def app_keys_create(**application_fields) -> AppKeys:
    application = ApplicationFactory(**application_fields)
    issued = credential_issue(application=application)
    return AppKeys(application=application, api_token=issued.api_token, hmac_secret=issued.hmac_secret)


def pytest_configure(config):
    # Under pytest-xdist each worker has a test database of its own (pytest-django adds _gw0, _gw1,
    # ...), and each hands out the same ids: worker N takes the Redis database N below REDIS_URL's
    # (make test: 15 and 14, CI: 13 and 12), for itself and for the servers it starts.
    from django.conf import settings

    worker = getattr(config, "workerinput", {}).get("workerid")
    if not worker or not settings.REDIS_URL:
        return
    url = urlsplit(settings.REDIS_URL)
    db = int(url.path.strip("/") or 0) - int(worker.removeprefix("gw"))
    if db < 0:
        raise pytest.UsageError(
            f"REDIS_URL={settings.REDIS_URL}: worker {worker} would need Redis database {db}; "
            "name a database at least as high as the number of workers less one"
        )
    os.environ["REDIS_URL"] = settings.REDIS_URL = urlunsplit(url._replace(path=f"/{db}"))
    settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = settings.REDIS_URL
    # The cache too: allauth keeps used TOTP codes and sign-in counts there, by user id.
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": settings.REDIS_URL}}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # Under pytest-xdist (make test: --dist loadgroup --no-loadscope-reorder) a worker runs what it is
    # given in the collection's order, which pytest-django sorts so that transactional tests, which
    # empty every table as they end, come after the other database tests. The transactional tests of
    # a module that starts servers once for the module (a module-scoped fixture) go to one worker
    # together, so each server is started once; the others are handed out one at a time.
    if not hasattr(config, "workerinput"):
        return
    for item in items:
        marker = item.get_closest_marker("django_db")
        if not (marker and marker.kwargs.get("transaction")):
            continue
        if any(definitions[-1].scope == "module" for definitions in item._fixtureinfo.name2fixturedefs.values()):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


@pytest.fixture(scope="session", autouse=True)
def _machine_routes_as_production_serves_them():
    """Every test client (``client``, ``Client()``) sends the machine routes' requests through
    ``telemetry.wsgi.application`` (tests/production_client.py)."""
    from django.test import client as test_client

    # Imported now, not by the first test to send such a request: its import runs django.setup(),
    # whose logging set-up would drop that test's log capture (caplog) from the root logger.
    import telemetry.wsgi  # noqa: F401
    from tests.production_client import ProductionHandler

    test_client.ClientHandler = ProductionHandler
    yield
    test_client.ClientHandler = ProductionHandler.__base__


@pytest.fixture(scope="session", autouse=True)
def _empty_test_redis():
    # Counters are keyed by database ids, which a new test database hands out again: start clean.
    # REDIS_URL points at a database of the test suite's own (make test: 15, CI: 13), or of this
    # xdist worker's own (pytest_configure).
    from telemetry.lib.redis import get_redis

    client = get_redis()
    if client is not None:
        client.flushdb()


@pytest.fixture(autouse=True)
def _static_files_without_collectstatic(settings):
    # Production serves hashed names from collectstatic's manifest; tests render pages without one.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(scope="session")
def collected_static(request, tmp_path_factory):
    """A data directory whose static files collectstatic made, once for the session (for all its
    xdist workers, in the directory their temporary directories share); a server's data directory
    takes them with ``server_data_dir``."""
    shared = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):
        shared = shared.parent
    directory = shared / "collected"
    with open(shared / "collected.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker collects; the other waits for it
        if not directory.exists():
            collect_static(directory, {})
    return directory


@pytest.fixture(scope="session")
def server_data_dir(tmp_path_factory, collected_static):
    """Makes a new data directory, with the collected static files, for a server that renders pages."""

    def make(name: str = "server"):
        directory = tmp_path_factory.mktemp(name)
        static_files_into(directory, collected_static)
        return directory

    return make


@pytest.fixture(scope="module")
def live_port(django_db_setup, tmp_path_factory):
    """The production server on the test database (PostgreSQL and Redis), one for a module's tests
    (each makes applications of its own); yields its port."""
    with running_server(tmp_path_factory.mktemp("server"), **database_env_for_server()) as port:
        yield port


@pytest.fixture(scope="module")
def live(django_db_setup, tmp_path_factory):
    """The production server with its WebSocket listener, one for a module's tests (each makes
    applications of its own); yields (HTTP port, WebSocket port)."""
    websocket_port = unused_port()
    with running_server(
        tmp_path_factory.mktemp("server"), **database_env_for_server(), APP_SERVER__WEBSOCKET_PORT=str(websocket_port)
    ) as port:
        yield port, websocket_port


@pytest.fixture
def archive_dir(settings, tmp_path):
    """The archive storage (archives and scheduled exports) as a local directory of the test's own."""
    settings.STORAGES = {
        **settings.STORAGES,
        "archives": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "archives"},
        },
    }
    return tmp_path / "archives"


@pytest.fixture
def app_keys(db) -> AppKeys:
    return app_keys_create()


def iso(moment: datetime) -> str:
    """A time as the SDK writes an event's timestamp: UTC, to the second, with a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_event(**overrides) -> dict:
    """An event exactly as the telemetry-kit Rust SDK 0.3 sends it (docs/protocols.md#event-schema)."""
    event = {
        "event_id": str(uuid.uuid4()),
        "schema_version": "1.0.0",
        "timestamp": "2026-11-20T10:30:00Z",
        "user_id": USER_ID,
        "session_id": "sess_" + "c" * 32,
        "service": {"name": "my-app", "version": "1.2.3", "language": "rust", "language_version": "1.95.0"},
        "event": {"type": "command", "category": "cli", "data": {"command": "build", "success": True}},
        "metadata": {"transmission_timestamp": "2026-11-20T10:31:00Z", "batch_size": 1, "retry_count": 0},
    }
    event.update(overrides)
    return event


def sign(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}:{nonce}:".encode() + body, hashlib.sha256).hexdigest()


def signed_headers(
    keys: AppKeys,
    body: bytes,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
    batch_size: int | None = None,
    **extra,
) -> dict:
    timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or str(uuid.uuid4())
    headers = {
        "HTTP_X_SIGNATURE": sign(keys.hmac_secret, timestamp_text, nonce, body),
        "HTTP_X_TIMESTAMP": timestamp_text,
        "HTTP_X_NONCE": nonce,
        "HTTP_X_SDK_VERSION": "telemetry-kit-rust/0.3.0",
        "HTTP_X_SCHEMA_VERSION": "1.0.0",
    }
    if batch_size is not None:
        headers["HTTP_X_BATCH_SIZE"] = str(batch_size)
    headers.update(extra)
    return headers


def batch_body(events: list) -> bytes:
    return json.dumps({"events": events}).encode()


@pytest.fixture
def signed_post():
    """Posts ``body`` (bytes, or a list of events) to ``keys``' ingest URL, signed like the SDK."""
    client = Client()

    def post(keys: AppKeys, body, **options):
        if isinstance(body, list):
            options.setdefault("batch_size", len(body))
            body = batch_body(body)
        content_type = options.pop("content_type", "application/json")
        url = options.pop("url", keys.url)
        return client.post(url, data=body, content_type=content_type, **signed_headers(keys, body, **options))

    return post

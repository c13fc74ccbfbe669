"""The live server and the client settings that the SDK's end-to-end tests share."""

import time

import pytest

from ingest.models import Event
from telemetry_kit import Client
from tests.server import database_env_for_server, running_server


@pytest.fixture(autouse=True)
def _tracking_allowed(monkeypatch):
    # A developer's own DO_NOT_TRACK must not turn these tests into no-ops.
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)


@pytest.fixture(scope="module")
def endpoint(django_db_setup, tmp_path_factory):
    """One server for the module's tests: each test has an application of its own."""
    with running_server(tmp_path_factory.mktemp("server"), **database_env_for_server()) as port:
        yield f"http://127.0.0.1:{port}"


def sdk_settings(keys, endpoint: str, queue_path) -> dict:
    """Settings for a client of ``keys``' application that sends and retries quickly, so tests stay short."""
    return {
        "endpoint": endpoint,
        "org_id": keys.org_id,
        "app_id": keys.app_id,
        "secret": keys.hmac_secret,
        "token": keys.api_token,
        "service_name": "sdk-e2e",
        "service_version": "2.1.0",
        "queue_path": str(queue_path),
        "flush_interval": 0.2,
        "backoff_base": 0.1,
        "backoff_max": 0.5,
    }


def sdk_client(keys, endpoint: str, queue_path, **settings) -> Client:
    return Client(**sdk_settings(keys, endpoint, queue_path), **settings)


def stored_ids(keys) -> list[str]:
    return sorted(
        str(event_id)
        for event_id in Event.objects.filter(application=keys.application).values_list("event_id", flat=True)
    )


def eventually(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)

"""Broken on purpose: two server instances sharing PostgreSQL and Redis, and a web worker killed
while it stores a batch. Real servers (``python -m telemetry.server``) over real HTTP."""

import http.client
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from accounts.models import Tier
from ingest.models import Event
from tests.conftest import app_keys_create, batch_body, make_event, signed_headers
from tests.server import database_env_for_server, running_server, wsgi_to_http

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def post(port: int, keys, body: bytes, headers: dict | None = None, timeout: float = 30) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(
        "POST",
        keys.url,
        body=body,
        headers={"Content-Type": "application/json", **(headers or wsgi_to_http(signed_headers(keys, body)))},
    )
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


@pytest.fixture(scope="module")
def two_servers(django_db_setup, tmp_path_factory):
    """Two instances on the same database and Redis, one pair for the module's tests."""
    env = database_env_for_server()
    with (
        running_server(tmp_path_factory.mktemp("a"), **env) as first,
        running_server(tmp_path_factory.mktemp("b"), **env) as second,
    ):
        yield first, second


def test_a_nonce_used_on_one_instance_is_refused_by_the_other(two_servers):
    first, second = two_servers
    keys = app_keys_create()
    body = batch_body([make_event()])
    headers = wsgi_to_http(signed_headers(keys, body))

    assert post(first, keys, body, headers)[0] == 200
    status, answer = post(second, keys, body, headers)

    assert status == 401 and "already used" in answer["error"]["message"]
    assert Event.objects.filter(application=keys.application).count() == 1


def test_the_monthly_quota_stays_exact_across_instances(two_servers):
    tiny = Tier.objects.create(
        slug="tiny-shared", name="Tiny", monthly_event_quota=10, requests_per_minute=10_000, retention_days=30
    )
    keys = app_keys_create(organization__tier=tiny)

    def send(number):
        return post(two_servers[number % 2], keys, batch_body([make_event()]))[0]

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(send, range(40)))

    assert (statuses.count(200), statuses.count(429)) == (10, 30)
    assert Event.objects.filter(application=keys.application).count() == 10


def worker_pids(port: int) -> list[int]:
    """The server's worker processes: those started with its port whose parent was too."""

    def started_with_port(pid) -> bool:
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                return f"APP_SERVER__PORT={port}\0".encode() in handle.read()
        except OSError:
            return False

    def parent(pid) -> int:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])

    return [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and started_with_port(pid) and started_with_port(parent(pid))
    ]


def wait_until_answering(port: int, deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not come back")


@pytest.mark.parametrize("kill_after", [0.0, 0.02, 0.03, 0.04, 0.06])  # before, during, after storing
def test_a_worker_killed_while_storing_leaves_all_or_none_and_the_retry_stores_once(tmp_path, kill_after):
    keys = app_keys_create()
    events = [make_event() for _ in range(1000)]
    with running_server(tmp_path, **database_env_for_server()) as port:
        wait_until_answering(port)
        (worker,) = worker_pids(port)
        sending = threading.Thread(target=lambda: _ignore_connection_errors(post, port, keys, batch_body(events)))
        sending.start()
        time.sleep(kill_after)
        os.kill(worker, signal.SIGKILL)
        sending.join()
        stored_after_kill = Event.objects.filter(application=keys.application).count()

        wait_until_answering(port)  # granian starts a new worker
        status, answer = post(port, keys, batch_body(events))  # the client's retry, signed anew

    assert stored_after_kill in (0, 1000)
    assert (status, answer["accepted"]) == (200, 1000)
    assert Event.objects.filter(application=keys.application).count() == 1000


def _ignore_connection_errors(function, *args):
    try:
        function(*args)
    except (OSError, http.client.HTTPException):
        pass  # the worker died under the request: the client sees a dropped connection

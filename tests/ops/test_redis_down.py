"""Broken on purpose: a Redis of the test's own, stopped in the middle of a load and started again.

Ingest fails closed (replay protection cannot be promised without Redis): 503 with Retry-After,
never a 500 and never a 200 for events not stored. Pages keep working. When Redis is back, every
acknowledged event is stored and the client's retries of the refused batches store each event once.
"""

import http.client
import json
import subprocess
import time
from contextlib import contextmanager

import pytest

from ingest.models import Event
from tests.conftest import app_keys_create, batch_body, make_event, signed_headers
from tests.server import database_env_for_server, running_server, signed_in_cookie, unused_port, wsgi_to_http

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@contextmanager
def private_redis(port: int):
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG":
                break
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_ingest_fails_closed_while_redis_is_down_and_nothing_is_lost(server_data_dir):
    keys = app_keys_create()
    cookie = signed_in_cookie(keys.application.organization)
    redis_port = unused_port()
    env = {**database_env_for_server(), "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    batches = [[make_event() for _ in range(5)] for _ in range(12)]
    answers = {}

    def send(port, number):
        body = batch_body(batches[number])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request(
            "POST",
            keys.url,
            body=body,
            headers={"Content-Type": "application/json", **wsgi_to_http(signed_headers(keys, body))},
        )
        response = conn.getresponse()
        answers[number] = (response.status, response.getheader("Retry-After"), json.loads(response.read()))

    def page(port, path):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path, headers={"Cookie": cookie})
        return conn.getresponse().status

    with running_server(server_data_dir(), **env) as port:
        with private_redis(redis_port):
            for number in range(4):
                send(port, number)
        # Redis is stopped.
        for number in range(4, 8):
            send(port, number)
        while_down = [answers[number] for number in range(4, 8)]
        pages_while_down = [
            page(port, "/"),
            page(port, f"/orgs/{keys.org_id}/"),
            page(port, f"/orgs/{keys.org_id}/apps/{keys.app_id}/"),
            page(port, "/health"),
        ]
        with private_redis(redis_port):
            for number in range(8, 12):
                send(port, number)
            refused = [number for number, (status, _, _) in answers.items() if status != 200]
            for number in refused:  # the client's retries, signed anew
                send(port, number)

    assert [(status, int(retry_after) > 0, answer["error"]["code"]) for status, retry_after, answer in while_down] == [
        (503, True, "service_unavailable")
    ] * 4
    assert pages_while_down == [200, 200, 200, 200]
    assert refused == [4, 5, 6, 7]
    assert [answers[number][0] for number in range(12)] == [200] * 12  # after the retries
    assert Event.objects.filter(application=keys.application).count() == 12 * 5

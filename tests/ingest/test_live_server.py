"""The production server (``python -m telemetry.server``) against the test database, over real HTTP."""

import http.client
import json
import socket

import pytest

from ingest.models import Event
from ingest.storage.services import COPY_MIN_EVENTS
from tests.conftest import app_keys_create, batch_body, make_event, signed_headers
from tests.server import wsgi_to_http

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_signed_batch_sent_over_http_is_stored(live_port):
    keys = app_keys_create()
    events = [make_event() for _ in range(3)]
    body = batch_body(events)
    conn = http.client.HTTPConnection("127.0.0.1", live_port, timeout=10)

    conn.request(
        "POST",
        keys.url,
        body=body,
        headers={"Content-Type": "application/json", **wsgi_to_http(signed_headers(keys, body, batch_size=3))},
    )
    response = conn.getresponse()

    assert response.status == 200
    assert response.getheader("X-Clacks-Overhead") == "GNU Terry Pratchett"
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert Event.objects.filter(application=keys.application).count() == 3


def test_machine_routes_skip_the_browser_middleware_and_pages_keep_it(live_port):
    conn = http.client.HTTPConnection("127.0.0.1", live_port, timeout=10)

    conn.request("GET", "/health")
    health = conn.getresponse()
    health.read()
    conn.request("GET", "/")
    page = conn.getresponse()

    assert health.status == 200 and page.status == 302  # to the sign-in page
    # Sign-in and clickjacking protection are for pages; the health check (like ingest) skips them.
    assert page.getheader("X-Frame-Options") == "DENY"
    assert health.getheader("X-Frame-Options") is None


def test_large_batch_resent_with_new_events_is_stored_once_each(live_port):
    keys = app_keys_create()
    events = [make_event() for _ in range(COPY_MIN_EVENTS)]  # large enough to go by COPY
    conn = http.client.HTTPConnection("127.0.0.1", live_port, timeout=10)
    answers = []

    for batch in (events, events + [make_event()]):  # the second time the COPY meets stored events
        body = batch_body(batch)
        conn.request(
            "POST",
            keys.url,
            body=body,
            headers={"Content-Type": "application/json", **wsgi_to_http(signed_headers(keys, body))},
        )
        response = conn.getresponse()
        answers.append((response.status, json.loads(response.read())["accepted"]))

    assert answers == [(200, COPY_MIN_EVENTS), (200, COPY_MIN_EVENTS + 1)]
    assert Event.objects.filter(application=keys.application).count() == COPY_MIN_EVENTS + 1


def test_chunked_body_without_content_length_is_read_and_stored(live_port):
    keys = app_keys_create()
    body = batch_body([make_event()])
    conn = http.client.HTTPConnection("127.0.0.1", live_port, timeout=10)

    conn.request(
        "POST",
        keys.url,
        body=iter([body[:20], body[20:]]),
        encode_chunked=True,
        headers={"Content-Type": "application/json", **wsgi_to_http(signed_headers(keys, body))},
    )
    response = conn.getresponse()

    assert response.status == 200
    assert Event.objects.filter(application=keys.application).count() == 1


def test_oversized_body_is_refused_before_it_is_sent(live_port):
    keys = app_keys_create()
    with socket.create_connection(("127.0.0.1", live_port), timeout=10) as sock:
        sock.sendall(
            f"POST {keys.url} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: 100000000\r\n\r\n".encode()
            + b"x" * 1000
        )
        answer = b""
        while b'"payload_too_large"' not in answer and (chunk := sock.recv(4096)):
            answer += chunk

    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"payload_too_large"' in answer


def test_event_the_database_refuses_is_reported_and_the_rest_of_the_batch_stored(live_port):
    keys = app_keys_create()
    good = make_event()
    body = batch_body([good, make_event(event={"type": "t", "data": {"n": 1}})]).replace(b'"n": 1', b'"n": 1e999999')
    conn = http.client.HTTPConnection("127.0.0.1", live_port, timeout=10)

    conn.request(
        "POST",
        keys.url,
        body=body,
        headers={"Content-Type": "application/json", **wsgi_to_http(signed_headers(keys, body, batch_size=2))},
    )
    response = conn.getresponse()

    assert response.status == 207
    assert [str(event_id) for event_id in Event.objects.values_list("event_id", flat=True)] == [good["event_id"]]


def test_credential_revoked_elsewhere_stops_working_on_a_running_server_at_once(live_port):
    from accounts.services import credential_revoke

    keys = app_keys_create()

    def send():
        body = batch_body([make_event()])
        conn = http.client.HTTPConnection("127.0.0.1", live_port, timeout=10)
        conn.request(
            "POST",
            keys.url,
            body=body,
            headers={"Content-Type": "application/json", **wsgi_to_http(signed_headers(keys, body))},
        )
        return conn.getresponse().status

    assert send() == 200  # the server process now holds the credential in its cache
    credential_revoke(credential=keys.application.credentials.get())

    assert send() == 401


def test_quota_stays_exact_under_concurrent_requests(live_port):
    from concurrent.futures import ThreadPoolExecutor

    from accounts.models import Tier

    tiny = Tier.objects.create(
        slug="tiny", name="Tiny", monthly_event_quota=10, requests_per_minute=10_000, retention_days=30
    )
    keys = app_keys_create(organization__tier=tiny)

    def send(_):
        body = batch_body([make_event()])
        conn = http.client.HTTPConnection("127.0.0.1", live_port, timeout=30)
        conn.request(
            "POST",
            keys.url,
            body=body,
            headers={"Content-Type": "application/json", **wsgi_to_http(signed_headers(keys, body))},
        )
        return conn.getresponse().status

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(send, range(40)))

    assert statuses.count(200) == 10
    assert statuses.count(429) == 30
    assert Event.objects.filter(application=keys.application).count() == 10

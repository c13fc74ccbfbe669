"""Attacks on event streams (seed 002) over real sockets: HTTP bodies against the production server,
and WebSockets against its WebSocket listener."""

import http.client

import pytest

from ingest.models import Event, Stream
from tests.conftest import app_keys_create
from tests.server import database_env_for_server, running_server

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# Headers that carry a client's address (or its credentials): a stream must never keep them.
ADDRESS_HEADERS = {"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=203.0.113.7;proto=https",
                   "X-Real-IP": "203.0.113.7", "CF-Connecting-IP": "203.0.113.7", "True-Client-IP": "203.0.113.7",
                   "X-Client-IP": "203.0.113.7", "Via": "1.1 203.0.113.9", "Referer": "http://203.0.113.7/",
                   "Cookie": "session=1"}


def stream_post(port: int, keys, body: bytes, *, timeout: float = 60, **headers) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", f"/v1/streams/{keys.org_id}/{keys.app_id}", body=body,
                 headers={"Authorization": f"Bearer {keys.api_token}", "Content-Type": "application/x-ndjson",
                          **headers})
    return conn.getresponse()


def test_an_unfinished_value_followed_by_many_lines_is_parsed_once(live_port):
    keys = app_keys_create()
    # 800 KB of an open array, then 20,000 blank lines. Parsing the unfinished value again at each
    # line costs 20,000 parses of 800 KB: many minutes of CPU, far past this client's 60 s timeout.
    body = b"[" + b"0," * 400_000 + b"\n" * 20_000 + b"0]\n"

    response = stream_post(live_port, keys, body)

    assert (response.status, response.read()) == (200, b"1")
    event = Event.objects.get(application=keys.application)
    assert len(event.data) == 400_001


def test_a_deeply_nested_value_stops_the_stream_with_400_and_keeps_what_came_before(live_port):
    keys = app_keys_create()
    body = b'{"n": 1}\n' + b"[" * 100_000 + b"]" * 100_000 + b'\n{"n": 3}\n'

    response = stream_post(live_port, keys, body)

    assert (response.status, response.read()) == (400, b"1")
    assert response.getheader("X-Error-Code") == "invalid_json"
    assert list(Event.objects.filter(application=keys.application).values_list("data", flat=True)) == [{"n": 1}]


def test_a_stream_body_over_its_maximum_stops_with_413_and_keeps_the_values_before(tmp_path):
    keys = app_keys_create()
    line = b'{"pad": "%s"}\n' % (b"x" * 88)  # 100 bytes
    body = line * 2_000  # 200 KB against a 64 KiB maximum

    with running_server(tmp_path, APP_INGESTION__STREAM_MAX_BODY_SIZE=str(64 * 1024),
                        **database_env_for_server()) as port:
        response = stream_post(port, keys, body)
        answer = response.read()

    assert response.status == 413
    assert response.getheader("X-Error-Code") == "payload_too_large"
    stored = Event.objects.filter(application=keys.application).count()
    assert int(answer) == stored == 64 * 1024 // len(line)
    assert Stream.objects.get(application=keys.application).ending == "payload_too_large"


def test_a_stream_keeps_no_header_that_carries_a_client_address(live_port):
    keys = app_keys_create()

    response = stream_post(live_port, keys, b'{"n": 1}\n', **ADDRESS_HEADERS, **{"User-Agent": "seed-002/1",
                                                                                 "X-Request-Id": "r-7"})

    assert (response.status, response.read()) == (200, b"1")
    headers = Stream.objects.get(application=keys.application).headers
    assert (headers["user-agent"], headers["x-request-id"]) == ("seed-002/1", "r-7")
    assert not {name.lower() for name in ADDRESS_HEADERS} & set(headers)
    assert "203.0.113" not in repr(headers)

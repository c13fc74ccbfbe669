"""Attacks on event streams over real sockets: HTTP bodies against the production server,
and WebSockets against its WebSocket listener."""

import base64
import http.client
import json
import os
import socket
import struct

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from ingest.models import Event, Stream
from tests.conftest import app_keys_create
from tests.ingest.test_limits import keys_on, tier
from tests.server import database_env_for_server, running_server, stream_url, unused_port
from tests.streams.test_live import wait_until

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# Headers that carry a client's address (or its credentials): a stream must never keep them.
ADDRESS_HEADERS = {
    "X-Forwarded-For": "203.0.113.7",
    "Forwarded": "for=203.0.113.7;proto=https",
    "X-Real-IP": "203.0.113.7",
    "CF-Connecting-IP": "203.0.113.7",
    "True-Client-IP": "203.0.113.7",
    "X-Client-IP": "203.0.113.7",
    "Via": "1.1 203.0.113.9",
    "Referer": "http://203.0.113.7/",
    "Cookie": "session=1",
}


@pytest.fixture(scope="module")
def live_port(live):
    """The HTTP side of the live server the WebSocket tests use: one server for the module."""
    return live[0]


def stream_post(port: int, keys, body: bytes, *, timeout: float = 60, **headers) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(
        "POST",
        f"/v1/streams/{keys.org_id}/{keys.app_id}",
        body=body,
        headers={"Authorization": f"Bearer {keys.api_token}", "Content-Type": "application/x-ndjson", **headers},
    )
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

    with running_server(
        tmp_path, APP_INGESTION__STREAM_MAX_BODY_SIZE=str(64 * 1024), **database_env_for_server()
    ) as port:
        response = stream_post(port, keys, body)
        answer = response.read()

    assert response.status == 413
    assert response.getheader("X-Error-Code") == "payload_too_large"
    stored = Event.objects.filter(application=keys.application).count()
    assert int(answer) == stored == 64 * 1024 // len(line)
    assert Stream.objects.get(application=keys.application).ending == "payload_too_large"


def test_a_stream_keeps_no_header_that_carries_a_client_address(live_port):
    keys = app_keys_create()

    response = stream_post(
        live_port, keys, b'{"n": 1}\n', **ADDRESS_HEADERS, **{"User-Agent": "seed-002/1", "X-Request-Id": "r-7"}
    )

    assert (response.status, response.read()) == (200, b"1")
    headers = Stream.objects.get(application=keys.application).headers
    assert (headers["user-agent"], headers["x-request-id"]) == ("seed-002/1", "r-7")
    assert not {name.lower() for name in ADDRESS_HEADERS} & set(headers)
    assert "203.0.113" not in repr(headers)


# WebSocket streams: on the shared live server, or on one started with the settings a test needs.


@pytest.fixture
def websocket_server(tmp_path):
    """Starts the server with its WebSocket listener and the given settings; returns the listener's port."""
    started = []

    def start(**env) -> int:
        port = unused_port()
        server = running_server(tmp_path, APP_SERVER__WEBSOCKET_PORT=str(port), **env, **database_env_for_server())
        server.__enter__()
        started.append(server)
        return port

    yield start
    for server in started:
        server.__exit__(None, None, None)


def closed_with(socket_) -> tuple[int, str]:
    """Waits (within the client's timeout) for the server to close the connection; its code and reason."""
    with pytest.raises(ConnectionClosed):
        while True:
            socket_.recv(timeout=20)
    close = socket_.protocol.close_rcvd
    return (close.code, close.reason) if close is not None else (None, "")


def raw_handshake(port: int, keys) -> socket.socket:
    """A WebSocket opened by hand, for frames no well-behaved client library would send."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/streams/{keys.org_id}/{keys.app_id}?token={keys.api_token} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101")
    return sock


def test_a_websocket_message_announced_too_large_is_refused_before_it_arrives(websocket_server):
    port = websocket_server(APP_INGESTION__STREAM_MAX_VALUE_SIZE=str(64 * 1024))
    keys = app_keys_create()
    sock = raw_handshake(port, keys)
    mask = os.urandom(4)
    # A binary frame that announces 1 GiB, of which only 64 KiB ever come: the server must not wait
    # for (or hold) the rest to find out that it is too large.
    payload = bytes(byte ^ mask[n % 4] for n, byte in enumerate(b"x" * 65_536))
    sock.sendall(bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 1 << 30) + mask + payload)

    frame = b""
    while len(frame) < 4:
        chunk = sock.recv(4096)  # raises on the client's timeout if the server never answers
        if not chunk:
            break
        frame += chunk
    sock.close()

    assert frame[0] == 0x88  # a close frame
    assert struct.unpack("!H", frame[2:4])[0] == 1009
    wait_until(
        lambda: Stream.objects.filter(application=keys.application).exclude(ending="").exists(), "the stream is closed"
    )
    assert Stream.objects.get(application=keys.application).ending == "payload_too_large"


def test_connections_per_token_are_capped(websocket_server):
    port = websocket_server(APP_INGESTION__STREAM_MAX_CONNECTIONS_PER_TOKEN="2")
    keys = app_keys_create()
    url = stream_url(port, keys)

    with connect(url) as first, connect(url) as second:
        first.send("{}")
        second.send("{}")
        assert (first.recv(timeout=20), second.recv(timeout=20)) == ("1", "1")
        with connect(url) as third:
            assert closed_with(third) == (1013, "too_many_connections")
    wait_until(
        lambda: not Stream.objects.filter(application=keys.application, ending="").exists(),
        "the two streams are closed",
    )
    with connect(url) as again:  # the two before have hung up: their slots are free
        again.send("{}")
        assert again.recv(timeout=20) == "1"

    assert Event.objects.filter(application=keys.application).count() == 3


def test_an_idle_websocket_is_closed(websocket_server):
    port = websocket_server(APP_INGESTION__STREAM_IDLE_TIMEOUT="1")
    keys = app_keys_create()

    with connect(stream_url(port, keys)) as socket_:
        socket_.send("{}")
        assert socket_.recv(timeout=20) == "1"
        code, reason = closed_with(socket_)  # sends nothing more

    assert (code, reason) == (1001, "idle_timeout")
    wait_until(
        lambda: Stream.objects.filter(application=keys.application).exclude(ending="").exists(), "the stream is closed"
    )
    stream = Stream.objects.get(application=keys.application)
    assert (stream.ending, stream.event_count) == ("idle_timeout", 1)


def test_the_rate_limit_counts_what_a_websocket_sends_not_the_connection(live):
    port = live[1]
    keys = keys_on(tier(requests_per_minute=3))

    with connect(stream_url(port, keys)) as socket_:
        counts = []
        for n in range(3):  # one message at a time: each answered before the next is sent
            socket_.send(f'{{"n": {n}}}')
            counts.append(socket_.recv(timeout=20))
        socket_.send('{"n": 3}')
        code, reason = closed_with(socket_)

    # The connection carries the first message; each later one (a group of its own) is a request.
    assert counts == ["1", "2", "3"]
    assert (code, reason.split(":")[0]) == (1013, "rate_limit_exceeded")
    assert Event.objects.filter(application=keys.application).count() == 3


def test_a_websocket_keeps_no_header_that_carries_a_client_address(live):
    port = live[1]
    keys = app_keys_create()

    with connect(stream_url(port, keys), additional_headers=ADDRESS_HEADERS, user_agent_header="seed-002/1") as ws:
        ws.send("{}")
        assert ws.recv(timeout=20) == "1"

    headers = Stream.objects.get(application=keys.application).headers
    assert headers["user-agent"] == "seed-002/1"
    assert not {name.lower() for name in ADDRESS_HEADERS} & set(headers)
    assert "203.0.113" not in repr(headers)


def test_http_streams_per_token_are_capped_with_the_websockets(tmp_path):
    keys = app_keys_create()
    env = {"APP_INGESTION__STREAM_MAX_CONNECTIONS_PER_TOKEN": "2", **database_env_for_server()}
    opening = (
        f"POST /v1/streams/{keys.org_id}/{keys.app_id} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {keys.api_token}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3\r\n{}\n\r\n"
    ).encode()  # one value, and the body goes on
    with running_server(tmp_path, **env) as port:
        first, second = (socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(2))
        with first, second:
            for conn in (first, second):
                conn.sendall(opening)
            wait_until(lambda: Event.objects.filter(application=keys.application).count() == 2, "both streams open")
            third = stream_post(port, keys, b"{}\n")
            refused = (third.status, json.loads(third.read())["error"]["code"])
            first.sendall(b"0\r\n\r\n")  # the first ends: its place is free again
            ended = first.makefile("rb").readline()
        fourth = stream_post(port, keys, b"{}\n")

    assert refused == (429, "too_many_connections")
    assert ended.startswith(b"HTTP/1.1 200")
    assert (fourth.status, fourth.read()) == (200, b"1")

"""Slow and idle clients hold no request thread: the server reads headers and bodies with deadlines
before any thread sees a request, and caps what one address may hold."""

import http.client
import json
import socket
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pytest

from ingest.models import Event
from tests.conftest import app_keys_create, batch_body, make_event, signed_headers
from tests.hostile.conftest import running_nginx, tls_client
from tests.server import database_env_for_server, running_server, wsgi_to_http

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# Long enough that no healthy answer on a loaded machine comes near it; a stalled server never answers.
ANSWER_TIMEOUT = 10


def _attacker(port: int, source: str) -> socket.socket:
    """A connection from ``source`` (any 127.0.0.0/8 address is this machine's)."""
    return socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT, source_address=(source, 0))


@dataclass
class Front:
    """Where clients connect: the server itself, or the shipped nginx before it (TLS)."""

    port: int
    tls: bool = False

    def connect(self, source: str) -> socket.socket:
        conn = _attacker(self.port, source)
        return tls_client().wrap_socket(conn, server_hostname="localhost") if self.tls else conn

    def http(self) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=ANSWER_TIMEOUT, context=tls_client())
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=ANSWER_TIMEOUT)


@contextmanager
def _attackers(front: Front, count: int, first_line: bytes, *, sources: int = 16):
    """``count`` connections spread over ``sources`` addresses, each having sent ``first_line``."""
    with ExitStack() as stack:
        for i in range(count):
            conn = stack.enter_context(front.connect(f"127.0.1.{1 + i % sources}"))
            conn.sendall(first_line)
        yield


def _slow_body(keys) -> bytes:
    # Public ids and a made-up signature (checking it needs the body): a length announced, one byte
    # sent, then nothing.
    headers = wsgi_to_http(signed_headers(keys, b"not this body"))
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (
        f"POST {keys.url} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{lines}"
        f"Content-Length: 5000000\r\n\r\n{{"
    ).encode()


def _get(front: Front, path: str) -> int:
    conn = front.http()
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response.status


def _ingest_ten(front: Front, keys) -> tuple[int, dict]:
    body = batch_body([make_event() for _ in range(10)])
    conn = front.http()
    conn.request(
        "POST",
        keys.url,
        body=body,
        headers={"Content-Type": "application/json", **wsgi_to_http(signed_headers(keys, body, batch_size=10))},
    )
    response = conn.getresponse()
    return response.status, json.loads(response.read())


@pytest.fixture(scope="module", params=["server", "nginx"])
def front(request, django_db_setup, server_data_dir):
    """The server with its static files collected (the admin's sign-in page renders), reached
    directly or through the shipped nginx configuration; one of each for the module's tests."""
    tmp_path = server_data_dir(request.param)
    env = database_env_for_server()
    if request.param == "server":
        with running_server(tmp_path, **env) as port:
            yield Front(port)
    else:
        with (
            running_server(tmp_path, APP_SERVER__TRUSTED_PROXIES="127.0.0.1", **env) as port,
            running_nginx(tmp_path / "nginx", port) as tls_port,
        ):
            yield Front(tls_port, tls=True)


@pytest.mark.parametrize("attack", ["body", "headers", "idle"])
def test_256_slow_connections_leave_health_sign_in_and_ingest_answering(front, attack):
    keys = app_keys_create()
    first_line = {
        "body": _slow_body(keys),
        "headers": b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a",  # headers never finished
        "idle": b"",
    }[attack]

    with _attackers(front, 256, first_line):
        health = _get(front, "/health")
        sign_in = _get(front, "/admin/login/")
        ingest = _ingest_ten(front, keys)

    assert (health, sign_in) == (200, 200)
    assert (ingest[0], ingest[1]["accepted"]) == (200, 10)
    assert Event.objects.filter(application=keys.application).count() == 10


def test_a_body_that_does_not_arrive_in_time_is_refused_with_408(tmp_path):
    keys = app_keys_create()
    with running_server(tmp_path, APP_SERVER__BODY_TIMEOUT="1", **database_env_for_server()) as port:
        with _attacker(port, "127.0.1.1") as conn:
            conn.sendall(_slow_body(keys))
            quiet = conn.makefile("rb").read()  # the server answers, then closes
        with _attacker(port, "127.0.1.2") as conn:
            # A chunked body that keeps coming, a chunk every 0.2 s: the deadline is the whole body's.
            conn.sendall(f"POST {keys.url} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            conn.settimeout(0.2)
            trickling = b""
            for _ in range(50):
                try:
                    conn.sendall(b"1\r\n[\r\n")
                    trickling += conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break  # answered and closed
                if trickling:
                    break

    for answer in (quiet, trickling):
        assert answer.startswith(b"HTTP/1.1 408")
        assert b'"code": "request_timeout"' in answer


def test_headers_that_do_not_arrive_in_time_close_the_connection(tmp_path):
    with running_server(tmp_path, APP_SERVER__HEADER_TIMEOUT="1", **database_env_for_server()) as port:
        with _attacker(port, "127.0.1.1") as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            answer = conn.makefile("rb").read()  # nothing more is sent: the server gives up and closes

    assert b"200 OK" not in answer


def test_one_address_holding_too_many_requests_gets_429_and_others_are_served(tmp_path):
    keys = app_keys_create()
    env = {"APP_SERVER__MAX_REQUESTS_PER_ADDRESS": "4", **database_env_for_server()}
    with running_server(tmp_path, **env) as port:
        with _attackers(Front(port), 4, _slow_body(keys), sources=1):
            with _attacker(port, "127.0.1.1") as fifth:
                fifth.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                refused = fifth.makefile("rb").read()
            elsewhere = _get(Front(port), "/health")  # from 127.0.0.1

    assert refused.startswith(b"HTTP/1.1 429")
    assert b'"code": "too_many_requests"' in refused
    assert elsewhere == 200


def test_a_body_announced_over_the_limit_is_refused_unread(live_port):
    keys = app_keys_create()
    with _attacker(live_port, "127.0.1.1") as conn:
        conn.sendall(f"POST {keys.url} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999999999\r\n\r\n".encode())
        answer = conn.recv(65536)

    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"code": "payload_too_large"' in answer


def test_a_chunked_body_growing_over_the_limit_is_refused(live_port, settings):
    keys = app_keys_create()
    chunk = b"x" * 65536
    with _attacker(live_port, "127.0.1.1") as conn:
        conn.sendall(f"POST {keys.url} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        try:
            for _ in range(settings.SERVER_MAX_BODY_SIZE // len(chunk) + 2):
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        answer = conn.recv(65536)

    assert answer.startswith(b"HTTP/1.1 413")
    assert Event.objects.filter(application=keys.application).count() == 0


def _open_stream(port: int, keys, source: str) -> socket.socket:
    conn = _attacker(port, source)
    conn.sendall(
        (
            f"POST /v1/streams/{keys.org_id}/{keys.app_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-Api-Key: {keys.api_token}\r\nTransfer-Encoding: chunked\r\n\r\n"
            '6\r\n{"a":1\r\n'
        ).encode()
    )  # a value begun, never finished
    return conn


def test_slow_event_streams_hold_no_request_thread_and_are_capped(tmp_path):
    keys = app_keys_create()
    env = {"APP_SERVER__THREADS": "2", "APP_SERVER__STREAM_THREADS": "3", **database_env_for_server()}
    with running_server(tmp_path, **env) as port, ExitStack() as stack:
        for i in range(3):
            stack.enter_context(_open_stream(port, keys, f"127.0.1.{1 + i}"))
        health = _get(Front(port), "/health")  # more streams open than request threads, and they answer
        ingest = _ingest_ten(Front(port), keys)
        with _open_stream(port, keys, "127.0.1.9") as fourth:
            refused = fourth.makefile("rb").read()

    assert health == 200
    assert (ingest[0], ingest[1]["accepted"]) == (200, 10)
    assert refused.startswith(b"HTTP/1.1 503")
    assert b'"code": "busy"' in refused

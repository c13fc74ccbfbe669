import http.server
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from django.db import connection

from telemetry.celery import app as celery_app

# A fixed evaluation time, half a minute into a minute: rollup rows are made relative to it.
NOW = datetime(2026, 12, 7, 12, 30, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    """The receivers these tests start listen on the loopback, which deliveries may not reach by
    default; as an operator would allow a private network, the tests allow this one."""
    settings.ALERTS_PRIVATE_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]


@dataclass
class Receiver:
    """A local HTTP server recording each POST; answers the statuses in ``script`` in turn, then 200."""

    port: int
    script: list[int] = field(default_factory=list)
    pause: float = 0.0  # seconds before each answer, so that concurrent senders overlap
    received: list[tuple[dict, bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver():
    state = Receiver(port=0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.received.append(({name.lower(): value for name, value in self.headers.items()}, body))
            time.sleep(state.pause)
            status = state.script.pop(0) if state.script else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def eager_celery():
    """Tasks run in the calling process when enqueued, retries included (their delays skipped)."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@dataclass
class MailServer:
    """A local SMTP server (aiosmtpd) keeping each message; refuses the first ``refusals`` with 451."""

    port: int = 0
    refusals: int = 0
    messages: list[tuple[list[str], bytes]] = field(default_factory=list)


@pytest.fixture
def smtp_server(settings):
    from aiosmtpd.controller import Controller

    state = MailServer()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            if state.refusals:
                state.refusals -= 1
                return "451 Try again later"
            state.messages.append((list(envelope.rcpt_tos), envelope.content))
            return "250 Message accepted"

    with socket.socket() as probe:  # aiosmtpd checks it is up by connecting, so it needs a port named
        probe.bind(("127.0.0.1", 0))
        state.port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=state.port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", state.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield state
    controller.stop()


def at_once(call, threads: int = 2) -> list[Exception]:
    """Runs ``call`` on ``threads`` threads released together, each with its own database
    connection; returns what they raised (an assertion inside a thread would be lost)."""
    start, errors = threading.Barrier(threads), []

    def run():
        try:
            start.wait(timeout=30)
            call()
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    running = [threading.Thread(target=run) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return errors

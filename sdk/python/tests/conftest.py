import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from telemetry_kit import Client


class Collector:
    """An ingest endpoint on a local port that accepts every batch and keeps its events: what a
    client sent, as the server would read it."""

    def __init__(self):
        self.events: list[dict] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["events"]
                collector.events.extend(batch)
                body = json.dumps(
                    {"status": "success", "accepted": len(batch), "rejected": 0, "message": "stored", "errors": []}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def data(self, event_type: str = "http_request") -> list[dict]:
        """The ``data`` of the events of ``event_type`` received so far, in the order tracked."""
        return [event["event"]["data"] for event in self.events if event["event"]["type"] == event_type]


@pytest.fixture
def collector():
    collector = Collector()
    thread = threading.Thread(target=collector.server.serve_forever, daemon=True)
    thread.start()
    yield collector
    collector.server.shutdown()
    collector.server.server_close()


@pytest.fixture
def collecting_client(collector, tmp_path, monkeypatch):
    """A client that sends to ``collector``; ``flush()`` it before reading what arrived."""
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    client = Client(
        endpoint=collector.endpoint,
        org_id="org_test",
        app_id="app_0000abcd",
        secret="test_secret",
        service_name="shop-api",
        service_version="3.2.1",
        queue_path=str(tmp_path / "queue.sqlite3"),
    )
    yield client
    client.close(timeout=5)

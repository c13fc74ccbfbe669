"""Attacks on the production server, one after the other, and how the service held up.

Starts ``python -m telemetry.server`` as ``make run`` does (PostgreSQL and Redis, one worker a
core), then runs each attack from other loopback addresses (127.0.1.x) while probing from
127.0.0.1: GET /health and a signed 10-event ingest, every half second. Prints a table: what the
service did with the attack, and the slowest /health and ingest answers meanwhile.

    .venv/bin/python benchmarks/hostile.py
    .venv/bin/python benchmarks/hostile.py --connections 512
"""

import argparse
import gzip
import hashlib
import hmac
import http.client
import importlib.util
import json
import re
import socket
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "benchmarks" / "ingest.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

PROBE_TIMEOUT = 30


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=256, help="attacking connections of the slow attacks")
    parser.add_argument("--hold", type=float, default=15, help="seconds each slow attack is held while probing")
    parser.add_argument("--port", type=int, default=8182)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--duration", type=int, default=0, help=argparse.SUPPRESS)  # bench.server_env reads it
    parser.add_argument("--unlimited", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dev-venv", action="store_true", help="run the server from .venv, not var/bench-venv")
    return parser.parse_args()


class Prober:
    """GET /health and a signed 10-event POST from 127.0.0.1, every half second, in a thread."""

    def __init__(self, port: int, credentials: dict):
        self.port, self.credentials = port, credentials
        self.health, self.ingest, self.failures = [], [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _timed(self, method: str, path: str, body=None, headers=None) -> tuple[float, int]:
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=PROBE_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            response.read()
            return (time.perf_counter() - started) * 1000, response.status
        finally:
            conn.close()

    def _run(self):
        secret = self.credentials["hmac_secret"].encode()
        path = urllib.parse.urlsplit(self.credentials["ingest_url"]).path
        while not self._stop.is_set():
            for figures, call in (
                (self.health, lambda: self._timed("GET", "/health")),
                (self.ingest, lambda: self._timed("POST", path, *bench.signed_request(secret, 10))),
            ):
                try:
                    ms, status = call()
                    figures.append(ms)
                    if status != 200:
                        self.failures.append(status)
                except OSError as error:
                    figures.append(PROBE_TIMEOUT * 1000)
                    self.failures.append(type(error).__name__)
            self._stop.wait(0.5)

    def summary(self) -> tuple[str, str]:
        def text(figures):
            if not figures:
                return "-"
            return f"{max(figures):.1f} ms max, {statistics.median(figures):.1f} median"

        return text(self.health), text(self.ingest)


def _connect(port: int, i: int) -> socket.socket:
    return socket.create_connection(
        ("127.0.0.1", port), timeout=PROBE_TIMEOUT, source_address=(f"127.0.1.{1 + i % 32}", 0)
    )


def slow_attack(port: int, count: int, hold: float, first_bytes: bytes, trickle: bytes = b"") -> str:
    """``count`` connections send ``first_bytes``, then ``trickle`` every second; returns what became of them."""
    answered = closed = 0
    with ExitStack() as stack:
        conns = [stack.enter_context(_connect(port, i)) for i in range(count)]
        for conn in conns:
            conn.sendall(first_bytes)
        ends = time.time() + hold
        while time.time() < ends:
            time.sleep(1)
            if trickle:
                for conn in conns:
                    try:
                        conn.sendall(trickle)
                    except OSError:
                        pass
        for conn in conns:
            conn.setblocking(False)
            try:
                data = conn.recv(200)
                answered += bool(data)
                closed += not data
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
    return f"{count} connections held {hold:g} s: {answered} answered, {closed} closed, the rest still waiting"


def signed_lines(credentials: dict, body: bytes) -> bytes:
    secret = credentials["hmac_secret"].encode()
    _, headers = bench.signed_request(secret, 1)
    headers = {
        **headers,
        "X-Signature": hmac.new(
            secret, f"{headers['X-Timestamp']}:{headers['X-Nonce']}:".encode() + body, hashlib.sha256
        ).hexdigest(),
    }
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode()


def post(port: int, path: str, body: bytes, headers: dict) -> tuple[int, bytes, float]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    answer = response.read()
    return response.status, answer, time.perf_counter() - started


def error_code(answer: bytes) -> str:
    try:
        return json.loads(answer)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return answer[:40].decode(errors="replace")


def deep_nesting(port: int, credentials: dict, requests: int = 50) -> str:
    secret = credentials["hmac_secret"].encode()
    path = urllib.parse.urlsplit(credentials["ingest_url"]).path
    outcomes = {}
    for _ in range(requests):
        body, headers = bench.signed_request(secret, 1)
        body = body.replace(b'"data":{', b'"data":{"deep":' + b"[" * 5000 + b"]" * 5000 + b",", 1)
        headers["X-Signature"] = hmac.new(
            secret, f"{headers['X-Timestamp']}:{headers['X-Nonce']}:".encode() + body, hashlib.sha256
        ).hexdigest()
        status, answer, _ = post(port, path, body, headers)
        key = f"{status} {error_code(answer) if status >= 400 else ''}".strip()
        outcomes[key] = outcomes.get(key, 0) + 1
    return f"{requests} signed batches nesting 5,000 deep: " + ", ".join(f"{n} x {k}" for k, n in outcomes.items())


def _stored_bytes(database_url: str, app_id: str) -> tuple[int, int]:
    """Rows and bytes of ``data`` (as JSON text: PostgreSQL's compression would hide repeats) stored
    from OTLP for the application (the probes' events are not)."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*), coalesce(sum(octet_length(e.data::text)), 0) FROM ingest_event e "
            "JOIN accounts_application a ON a.id = e.application_id "
            "WHERE a.public_id = %s AND e.schema_version LIKE 'otlp/%%'",
            (app_id,),
        ).fetchone()


def otlp_amplification(port: int, credentials: dict, database_url: str) -> str:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    now = time.time_ns()
    points = [NumberDataPoint(time_unix_nano=now - i, as_int=i) for i in range(25)]
    request = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(
                    attributes=[
                        KeyValue(key="service.name", value=AnyValue(string_value="bench")),
                        KeyValue(key="padding", value=AnyValue(string_value="x" * 4_000_000)),
                    ]
                ),
                scope_metrics=[ScopeMetrics(metrics=[Metric(name="m", gauge=Gauge(data_points=points))])],
            )
        ]
    )
    body = gzip.compress(request.SerializeToString())
    before = _stored_bytes(database_url, credentials["app_id"])
    base = f"/v1/otlp/{credentials['org_id']}/{credentials['app_id']}/v1/metrics"
    status, answer, _ = post(
        port,
        base,
        body,
        {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "gzip",
            "Authorization": f"Bearer {credentials['api_token']}",
        },
    )
    after = _stored_bytes(database_url, credentials["app_id"])
    rows, stored = after[0] - before[0], after[1] - before[1]
    return (
        f"{len(body) / 1024:.0f} KB gzip, 4 MB resource, 25 points: {status}, {rows} rows, "
        f"{stored / 1e6:.1f} MB stored ({stored / 4e6:.1f} x the decompressed body)"
    )


def stream_blank_lines(port: int, credentials: dict, lines: int = 400) -> str:
    body = b"[" + b'"' + b"x" * 800_000 + b'"' + b"\n" * lines
    status, answer, seconds = post(
        port,
        f"/v1/streams/{credentials['org_id']}/{credentials['app_id']}",
        body,
        {"X-Api-Key": credentials["api_token"]},
    )
    code = error_code(answer) if status >= 400 else answer.decode()[:20]
    return f"open JSON array of 800 KB then {lines} blank lines: {status} {code} in {seconds * 1000:.0f} ms"


def made_up_methods(port: int, requests: int = 300) -> str:
    for i in range(requests):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(f"M{i:04d}X", "/health")
        conn.getresponse().read()
        conn.close()
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    methods = set(re.findall(r'^http_requests_total\{[^}]*method="([^"]*)"', text, re.MULTILINE))
    return f"{requests} requests with made-up methods: {len(methods)} method label values in /metrics"


def main():
    args = parse_args()
    server, credentials, database_url = bench.start_server(args)
    port = args.port
    ingest_path = urllib.parse.urlsplit(credentials["ingest_url"]).path
    slow_body = (
        (f"POST {ingest_path} HTTP/1.1\r\nHost: 127.0.0.1\r\n").encode()
        + signed_lines(credentials, b"not this body")
        + b"Content-Length: 5000000\r\n\r\n{"
    )
    n = args.connections
    attacks = [
        ("slow bodies", lambda: slow_attack(port, n, args.hold, slow_body, trickle=b" ")),
        (
            "slow headers",
            lambda: slow_attack(port, n, args.hold, b"GET /health HTTP/1.1\r\nHost: x\r\n", trickle=b"X-A: b\r\n"),
        ),
        ("idle connections", lambda: slow_attack(port, n, args.hold, b"")),
        ("deep nesting", lambda: deep_nesting(port, credentials)),
        ("OTLP amplification", lambda: otlp_amplification(port, credentials, database_url)),
        ("stream blank lines", lambda: stream_blank_lines(port, credentials)),
        ("made-up methods", lambda: made_up_methods(port)),
    ]
    rows = []
    try:
        for name, attack in attacks:
            with Prober(port, credentials) as prober:
                time.sleep(0.3)
                try:
                    outcome = attack()
                except Exception as error:  # the table says what failed rather than stopping
                    outcome = f"attack failed: {error!r}"[:200]
                time.sleep(0.5)
            health, ingest = prober.summary()
            failures = f"; probe failures: {sorted(map(str, prober.failures))}" if prober.failures else ""
            rows.append((name, outcome + failures, health, ingest))
            print(f"{name}: {outcome}{failures} | /health {health} | ingest {ingest}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print()
    print("| attack | what the service did | /health meanwhile | signed 10-event ingest meanwhile |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

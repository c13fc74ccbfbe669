"""What the Python SDK's request middleware costs a request, and how fast the SDK takes and delivers events.

1. Per-request cost of ``telemetry_kit.asgi`` (in a Starlette and a FastAPI app) and of
   ``telemetry_kit.django``: the same app called bare and wrapped, alternately, in process (no HTTP
   in between, so the middleware's share is not lost in a server's noise); median and p99 of each,
   and the difference.
2. ``track()``: events/s that one thread's calls accept.
3. With ``--live``: events/s from ``track()`` to stored by a production server started as
   ``benchmarks/ingest.py`` starts it (``DATABASE_URL``, ``REDIS_URL``), and stored == tracked. The
   middleware's client then sends to that server while its cost is measured.

    .venv/bin/python benchmarks/middleware.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/telemetry_bench .venv/bin/python benchmarks/middleware.py --live
"""

import argparse
import asyncio
import io
import os
import socket
import statistics
import tempfile
import time

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpResponse
from django.urls import path
from fastapi import FastAPI
from load_test import load_test as ingest_bench
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from telemetry_kit import Client
from telemetry_kit.asgi import TelemetryMiddleware

CONSUMER = [(b"x-consumer-id", b"mobile-app")]
# A sample for the middleware's event: what track() encodes on each request.
REQUEST_DATA = {
    "method": "GET",
    "endpoint": "/items/{item_id}",
    "status": 200,
    "response_time": 0.123,
    "consumer": "mobile-app",
    "node": "web-1",
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="requests to each app, bare and wrapped")
    parser.add_argument("--events", type=int, default=100_000, help="events for the track() figure")
    parser.add_argument("--live", action="store_true", help="also start a server and measure delivery")
    parser.add_argument("--live-events", type=int, default=50_000, help="events to deliver to the live server")
    parser.add_argument("--port", type=int, default=8182)
    return parser.parse_args()


def offline_client(directory: str, **settings) -> Client:
    """A client whose sender stores events in its SQLite queue and never reaches a server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return Client(
        endpoint=f"http://127.0.0.1:{port}",
        org_id="org_bench",
        app_id="app_0000bench",
        secret="bench",
        service_name="bench",
        queue_path=f"{directory}/offline-{time.monotonic_ns()}.sqlite3",
        backoff_base=3600,
        max_queue_events=10**7,
        max_queue_bytes=10**10,
        **settings,
    )


def live_client(credentials, directory: str, **settings) -> Client:
    return Client(
        endpoint=credentials["ingest_url"].split("/v1/")[0],
        org_id=credentials["org_id"],
        app_id=credentials["app_id"],
        secret=credentials["hmac_secret"],
        token=credentials["api_token"],
        service_name="bench",
        queue_path=f"{directory}/live-{time.monotonic_ns()}.sqlite3",
        max_queue_events=10**7,
        max_queue_bytes=10**10,
        **settings,
    )


def summary(samples_ns: list[int]) -> tuple[float, float]:
    """Median and p99 in microseconds."""
    ordered = sorted(samples_ns)
    return statistics.median(ordered) / 1000, ordered[int(len(ordered) * 0.99)] / 1000


def row(name: str, bare: list[int], wrapped: list[int]) -> str:
    (bare_p50, bare_p99), (wrapped_p50, wrapped_p99) = summary(bare), summary(wrapped)
    return (
        f"{name:<10} {bare_p50:>9.1f} {bare_p99:>9.1f} {wrapped_p50:>12.1f} {wrapped_p99:>12.1f} "
        f"{wrapped_p50 - bare_p50:>11.1f} {wrapped_p99 - bare_p99:>11.1f}"
    )


# -- ASGI -------------------------------------------------------------------------------------------


def starlette_app() -> Starlette:
    async def item(request):
        return PlainTextResponse(str(request.path_params["item_id"]))

    return Starlette(routes=[Route("/items/{item_id:int}", item)])


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        return {"item_id": item_id}

    return app


def asgi_samples(make_app, client: Client, requests: int) -> tuple[list[int], list[int]]:
    bare = make_app()
    wrapped = make_app()
    wrapped.add_middleware(TelemetryMiddleware, client=client, node="web-1")

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    async def run() -> tuple[list[int], list[int]]:
        times = {id(bare): [], id(wrapped): []}
        for n in range(requests + 1000):  # the first thousand warm up
            for app in (bare, wrapped) if n % 2 else (wrapped, bare):
                scope = {
                    "type": "http",
                    "asgi": {"version": "3.0"},
                    "http_version": "1.1",
                    "method": "GET",
                    "scheme": "http",
                    "path": f"/items/{n}",
                    "raw_path": f"/items/{n}".encode(),
                    "query_string": b"",
                    "root_path": "",
                    "headers": list(CONSUMER),
                    "client": ("127.0.0.1", 5000),
                    "server": ("127.0.0.1", 8000),
                }
                started = time.perf_counter_ns()
                await app(scope, receive, send)
                times[id(app)].append(time.perf_counter_ns() - started)
        return times[id(bare)][1000:], times[id(wrapped)][1000:]

    return asyncio.run(run())


# -- Django -----------------------------------------------------------------------------------------


def item(request, item_id):
    return HttpResponse(str(item_id))


urlpatterns = [path("items/<int:item_id>", item)]


def django_samples(client: Client, requests: int) -> tuple[list[int], list[int]]:
    settings.configure(
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="bench",
        USE_TZ=True,
        MIDDLEWARE=[],
        TELEMETRY_KIT={"client": client, "node": "web-1"},
    )
    django.setup()
    bare = WSGIHandler()
    settings.MIDDLEWARE = ["telemetry_kit.django.TelemetryMiddleware"]
    wrapped = WSGIHandler()

    def start_response(status, headers):
        pass

    times = {id(bare): [], id(wrapped): []}
    for n in range(requests + 1000):
        for handler in (bare, wrapped) if n % 2 else (wrapped, bare):
            environ = {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": f"/items/{n}",
                "SCRIPT_NAME": "",
                "QUERY_STRING": "",
                "SERVER_NAME": "localhost",
                "SERVER_PORT": "8000",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REMOTE_ADDR": "127.0.0.1",
                "HTTP_X_CONSUMER_ID": "mobile-app",
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(b""),
                "wsgi.errors": io.StringIO(),
            }
            started = time.perf_counter_ns()
            handler(environ, start_response).close()
            times[id(handler)].append(time.perf_counter_ns() - started)
    return times[id(bare)][1000:], times[id(wrapped)][1000:]


# -- the SDK ----------------------------------------------------------------------------------------


def track_rate(client: Client, events: int) -> float:
    started = time.perf_counter()
    for _ in range(events):
        client.track("http_request", REQUEST_DATA, category="http")
    return events / (time.perf_counter() - started)


def delivery(credentials, directory: str, events: int, database_url: str) -> tuple[float, int, int]:
    """Events/s from the first track() to the last event stored, events tracked, events stored."""
    # Room for the whole burst: with the default 10,000 a loop that tracks faster than the sender
    # stores drops the oldest (counted in stats().dropped), and this figure is about delivery.
    client = live_client(credentials, directory, max_buffer_events=events)
    before = ingest_bench.stored_count(database_url, credentials["app_id"])
    started = time.perf_counter()
    tracked = sum(client.track("http_request", REQUEST_DATA, category="http") is not None for _ in range(events))
    delivered = client.flush(timeout=600)
    elapsed = time.perf_counter() - started
    client.close()
    stored = ingest_bench.stored_count(database_url, credentials["app_id"]) - before
    assert delivered, "the client did not deliver everything within 10 minutes"
    return tracked / elapsed, tracked, stored


def main() -> None:
    args = parse_args()
    os.environ.pop("DO_NOT_TRACK", None)
    print(f"CPU calibration: {ingest_bench.cpu_calibration_ms():.0f} ms")
    server = credentials = None
    with tempfile.TemporaryDirectory() as directory:
        try:
            if args.live:
                server_args = argparse.Namespace(port=args.port, unlimited=True, workers=None, duration=0)
                server, credentials, database_url = ingest_bench.start_server(server_args)

            def middleware_client() -> Client:
                # A client of its own for each app: its sender starts from an empty queue, as in a
                # process whose server keeps up.
                return live_client(credentials, directory) if credentials else offline_client(directory)

            print(
                f"\nPer request, µs, {args.requests} requests each (middleware's client: "
                f"{'sending to the live server' if credentials else 'offline, storing to its queue'}):"
            )
            print(
                f"{'app':<10} {'bare p50':>9} {'bare p99':>9} {'wrapped p50':>12} {'wrapped p99':>12} "
                f"{'cost p50':>11} {'cost p99':>11}"
            )
            for name, samples in (
                ("starlette", lambda client: asgi_samples(starlette_app, client, args.requests)),
                ("fastapi", lambda client: asgi_samples(fastapi_app, client, args.requests)),
                ("django", lambda client: django_samples(client, args.requests)),
            ):
                client = middleware_client()
                print(row(name, *samples(client)))
                client.close(timeout=0)

            tracking = offline_client(directory, max_buffer_events=args.events)
            rate = track_rate(tracking, args.events)
            print(
                f"\ntrack(): {rate:,.0f} events/s accepted by one thread ({1e6 / rate:.1f} µs a call), "
                f"{tracking.stats().dropped} dropped"
            )
            tracking.close(timeout=0)

            if credentials:
                rate, tracked, stored = delivery(credentials, directory, args.live_events, database_url)
                print(
                    f"delivered to the live server: {rate:,.0f} events/s from the first track() to the last "
                    f"event stored ({tracked} tracked, {stored} stored, "
                    f"stored == tracked: {'yes' if stored == tracked else 'NO'})"
                )
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)


if __name__ == "__main__":
    main()

"""The published Malti client (malti-telemetry) in a small Starlette app, sending to the
production server over real HTTP, on the test database: no change to the client but its URL and key."""

import asyncio

import httpx
import pytest
from malti_telemetry import core as malti_core
from malti_telemetry.middleware import MaltiMiddleware
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from accounts.services import credential_issue
from ingest.models import Event
from tests.factories import ApplicationFactory
from tests.ingest.test_limits import tier
from tests.server import database_env_for_server, running_server

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SERVICE = "orders-api"


@pytest.fixture(scope="module")
def server_url(django_db_setup, tmp_path_factory):
    """One server for the module's tests: each test has an application of its own."""
    with running_server(tmp_path_factory.mktemp("server"), **database_env_for_server()) as port:
        yield f"http://127.0.0.1:{port}"


async def order(request):
    return JSONResponse({"order": request.path_params["order_id"]})


async def create_order(request):
    return JSONResponse({"created": True}, status_code=201)


async def fail(request):
    return PlainTextResponse("broken", status_code=503)


def shop() -> Starlette:
    """An ASGI app as a Malti user writes one: the middleware added, nothing else."""
    app = Starlette(
        routes=[
            Route("/orders/{order_id}", order),
            Route("/orders", create_order, methods=["POST"]),
            Route("/fail", fail),
        ]
    )
    app.add_middleware(MaltiMiddleware)
    return app


@pytest.fixture
def malti(monkeypatch, server_url):
    """Configures the client as its README says, by environment, for one test; it reads the
    environment once, into a process-wide instance, which is dropped before and after."""

    def configure(api_key: str, service: str = SERVICE):
        for name, value in {
            "MALTI_URL": server_url,
            "MALTI_API_KEY": api_key,
            "MALTI_SERVICE_NAME": service,
            "MALTI_NODE": "web-01",
            "MALTI_BATCH_INTERVAL": "3600",
            "MALTI_MAX_RETRIES": "0",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(malti_core, "_telemetry_system", None)

    yield configure
    monkeypatch.setattr(malti_core, "_telemetry_system", None)


class Lifespan:
    """Runs an ASGI app's lifespan as a server does: startup before the requests, shutdown after
    (when the Malti client sends what it holds)."""

    def __init__(self, app):
        self.app, self.incoming, self.outgoing = app, asyncio.Queue(), asyncio.Queue()

    async def __aenter__(self):
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.create_task(self.app(scope, self.incoming.get, self.outgoing.put))
        await self.incoming.put({"type": "lifespan.startup"})
        assert (await self.outgoing.get())["type"] == "lifespan.startup.complete"

    async def __aexit__(self, *exc_info):
        await self.incoming.put({"type": "lifespan.shutdown"})
        assert (await self.outgoing.get())["type"] == "lifespan.shutdown.complete"
        await self.task


async def _serve_traffic(app) -> dict:
    async with Lifespan(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            assert (await client.get("/orders/17", headers={"x-consumer-id": "web-shop"})).status_code == 200
            assert (await client.get("/orders/18", headers={"x-consumer-id": "web-shop"})).status_code == 200
            assert (await client.post("/orders", headers={"x-consumer-id": "mobile"})).status_code == 201
            assert (await client.get("/fail")).status_code == 503
            assert (await client.get("/nowhere")).status_code == 404  # clean mode drops 404s: never sent
        system = malti_core.get_telemetry_system()
    return system.get_stats()


def serve_traffic(app) -> dict:
    """Requests through the app, then its shutdown; the Malti client's counts of what it sent."""
    return asyncio.run(_serve_traffic(app))


def malti_application(service_name: str = SERVICE, **application_fields):
    application = ApplicationFactory(**application_fields)
    return application, credential_issue(application=application, service_name=service_name).api_token


def test_the_malti_client_delivers_its_batch_and_it_is_stored_as_http_requests(malti):
    application, token = malti_application()
    malti(token)

    stats = serve_traffic(shop())

    assert (stats["total_added"], stats["total_sent"], stats["total_failed"]) == (4, 4, 0)
    events = list(Event.objects.filter(application=application).order_by("timestamp"))
    assert [(e.event_type, e.category, e.service_name, e.schema_version) for e in events] == [
        ("http_request", "http", SERVICE, "malti/1")
    ] * 4
    assert [
        (e.data["method"], e.data["endpoint"], e.data["status"], e.data["consumer"], e.data["node"]) for e in events
    ] == [
        ("GET", "/orders/{order_id}", 200, "web-shop", "web-01"),
        ("GET", "/orders/{order_id}", 200, "web-shop", "web-01"),
        ("POST", "/orders", 201, "mobile", "web-01"),
        ("GET", "/fail", 503, "anonymous", "web-01"),
    ]
    assert all(isinstance(e.data["response_time"], int) and "context" not in e.data for e in events)
    assert events[0].sdk_version.startswith("python-httpx/")


def test_a_key_of_another_service_gets_its_batch_refused_and_the_client_counts_it_failed(malti):
    application, token = malti_application(service_name="billing")
    malti(token)

    stats = serve_traffic(shop())

    assert (stats["total_sent"], stats["total_failed"]) == (0, 4)
    assert not Event.objects.filter(application=application).exists()


def test_an_unknown_key_gets_the_batch_refused(malti):
    application, token = malti_application()
    malti(token[:-1])

    stats = serve_traffic(shop())

    assert (stats["total_sent"], stats["total_failed"]) == (0, 4)
    assert not Event.objects.filter(application=application).exists()


def test_a_batch_over_the_quota_is_refused_whole_and_nothing_is_stored(malti):
    application, token = malti_application(organization__tier=tier(monthly_event_quota=3))
    malti(token)

    stats = serve_traffic(shop())

    assert (stats["total_sent"], stats["total_failed"]) == (0, 4)
    assert not Event.objects.filter(application=application).exists()

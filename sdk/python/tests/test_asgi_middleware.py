"""The ASGI middleware in FastAPI and Starlette apps: what each request becomes on the wire."""

import socket

import pytest
from fastapi import FastAPI, HTTPException, Request
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from telemetry_kit.asgi import TelemetryMiddleware


def shop_api(**middleware_options) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int):
        return {"item_id": item_id}

    @app.get("/private")
    def private():
        raise HTTPException(status_code=401)

    @app.get("/forbidden")
    def forbidden():
        raise HTTPException(status_code=403)

    @app.get("/broken")
    def broken():
        raise RuntimeError("the handler's own bug")

    @app.get("/checkout")
    def checkout(request: Request):
        request.state.telemetry_consumer = "customer-7"
        request.state.telemetry_context = "checkout"
        return {}

    app.add_middleware(TelemetryMiddleware, **middleware_options)
    return app


def requests_sent(collector, client) -> list[dict]:
    assert client.flush(timeout=10)
    return collector.data()


def test_fastapi_request_is_recorded_with_its_route_pattern_not_its_path(collector, collecting_client):
    app = shop_api(client=collecting_client, node="web-1")

    answer = TestClient(app).get("/items/42")

    assert answer.json() == {"item_id": 42}
    [data] = requests_sent(collector, collecting_client)
    response_time = data.pop("response_time")
    assert data == {
        "method": "GET",
        "endpoint": "/items/{item_id}",
        "status": 200,
        "consumer": "anonymous",
        "node": "web-1",
    }
    assert isinstance(response_time, (int, float)) and response_time >= 0


def test_event_carries_the_clients_service_and_the_http_category(collector, collecting_client):
    TestClient(shop_api(client=collecting_client)).get("/items/1")

    assert collecting_client.flush(timeout=10)
    [event] = collector.events
    assert (event["event"]["type"], event["event"]["category"]) == ("http_request", "http")
    assert (event["service"]["name"], event["service"]["version"]) == ("shop-api", "3.2.1")


def test_starlette_route_with_a_convertor_is_recorded_as_its_pattern(collector, collecting_client):
    async def user(request):
        return PlainTextResponse(str(request.path_params["user_id"]))

    app = Starlette(routes=[Route("/users/{user_id:int}", user)])
    app.add_middleware(TelemetryMiddleware, client=collecting_client)

    TestClient(app).get("/users/981")

    assert [data["endpoint"] for data in requests_sent(collector, collecting_client)] == ["/users/{user_id}"]


def test_route_in_mounted_apps_is_recorded_with_the_mounts_patterns(collector, collecting_client):
    orders = FastAPI()

    @orders.get("/orders/{order_id}")
    def order(order_id: str):
        return {}

    async def health(request):
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            Mount("/tenants/{tenant}", routes=[Mount("/v1", app=orders)]),
            Mount("/ops", routes=[Route("/health", health)]),
        ]
    )
    app.add_middleware(TelemetryMiddleware, client=collecting_client)
    browser = TestClient(app)

    browser.get("/tenants/acme/v1/orders/A-17")
    browser.get("/tenants/globex/v1/orders/B-3")
    browser.get("/ops/health")

    assert [data["endpoint"] for data in requests_sent(collector, collecting_client)] == [
        "/tenants/{tenant}/v1/orders/{order_id}",
        "/tenants/{tenant}/v1/orders/{order_id}",
        "/ops/health",
    ]


def test_wrong_method_is_recorded_under_the_route_that_refused_it(collector, collecting_client):
    answer = TestClient(shop_api(client=collecting_client)).post("/items/3")

    assert answer.status_code == 405
    [data] = requests_sent(collector, collecting_client)
    assert (data["endpoint"], data["status"]) == ("/items/{item_id}", 405)


def test_exception_is_recorded_as_500_and_still_raised(collector, collecting_client):
    browser = TestClient(shop_api(client=collecting_client))

    with pytest.raises(RuntimeError, match="the handler's own bug"):
        browser.get("/broken")

    [data] = requests_sent(collector, collecting_client)
    assert (data["endpoint"], data["status"]) == ("/broken", 500)


def test_clean_mode_leaves_out_401_and_404_and_keeps_other_errors(collector, collecting_client):
    browser = TestClient(shop_api(client=collecting_client))

    statuses = [browser.get(path).status_code for path in ("/private", "/wp-login.php", "/forbidden")]

    assert statuses == [401, 404, 403]
    assert [(data["endpoint"], data["status"]) for data in requests_sent(collector, collecting_client)] == [
        ("/forbidden", 403)
    ]


def test_without_clean_mode_an_unmatched_path_is_recorded_under_a_placeholder(collector, collecting_client):
    browser = TestClient(shop_api(client=collecting_client, clean_mode=False))

    browser.get("/private")
    browser.get("/wp-login.php")

    assert [(data["endpoint"], data["status"]) for data in requests_sent(collector, collecting_client)] == [
        ("/private", 401),
        ("<unmatched>", 404),
    ]


def test_consumer_comes_from_the_first_default_header_present(collector, collecting_client):
    browser = TestClient(shop_api(client=collecting_client))

    browser.get("/items/1", headers={"X-User-Id": "user-12"})
    browser.get("/items/1", headers={"User-Id": "user-12", "X-Consumer-Id": "mobile-app"})

    assert [data["consumer"] for data in requests_sent(collector, collecting_client)] == ["user-12", "mobile-app"]


def test_consumer_headers_can_be_configured(collector, collecting_client):
    browser = TestClient(shop_api(client=collecting_client, consumer_headers=["X-Api-Client"]))

    browser.get("/items/1", headers={"X-Api-Client": "partner-9", "X-Consumer-Id": "ignored"})
    browser.get("/items/1", headers={"X-Consumer-Id": "ignored"})

    assert [data["consumer"] for data in requests_sent(collector, collecting_client)] == ["partner-9", "anonymous"]


def test_handler_may_name_the_consumer_and_context_of_its_request(collector, collecting_client):
    browser = TestClient(shop_api(client=collecting_client, context="eu-west"))

    browser.get("/checkout", headers={"X-Consumer-Id": "from-header"})
    browser.get("/items/1")

    checkout, item = requests_sent(collector, collecting_client)
    assert (checkout["consumer"], checkout["context"]) == ("customer-7", "checkout")
    assert item["context"] == "eu-west"


def test_context_is_left_out_when_not_set(collector, collecting_client, monkeypatch):
    monkeypatch.delenv("TK_NODE", raising=False)

    TestClient(shop_api(client=collecting_client)).get("/items/1")

    [data] = requests_sent(collector, collecting_client)
    assert "context" not in data
    assert data["node"] == socket.gethostname()


def test_lifespan_is_passed_through_unrecorded(collector, collecting_client):
    with TestClient(shop_api(client=collecting_client)) as browser:  # runs the app's startup and shutdown
        browser.get("/items/1")

    assert len(requests_sent(collector, collecting_client)) == 1


def test_do_not_track_records_nothing_and_the_app_still_answers(collector, tmp_path, monkeypatch):
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    app = shop_api(
        endpoint=collector.endpoint,
        org_id="org_test",
        app_id="app_0000abcd",
        secret="test_secret",
        queue_path=str(tmp_path / "queue.sqlite3"),
    )
    browser = TestClient(app)

    answer = browser.get("/items/5")

    assert answer.json() == {"item_id": 5}
    middleware = next(layer for layer in iter_layers(app.middleware_stack) if isinstance(layer, TelemetryMiddleware))
    assert not middleware.recorder.enabled
    assert middleware.recorder.client.flush(timeout=1)
    assert collector.events == []
    assert list(tmp_path.iterdir()) == []


def iter_layers(app):
    while app is not None:
        yield app
        app = getattr(app, "app", None)

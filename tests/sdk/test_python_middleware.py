"""The SDK's ASGI middleware in a FastAPI app, sending its requests to the production server."""

import pytest
from fastapi import FastAPI, HTTPException
from starlette.testclient import TestClient

from ingest.models import Event
from telemetry_kit.asgi import TelemetryMiddleware
from tests.conftest import app_keys_create
from tests.sdk.conftest import sdk_client

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def shop_api(client) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int):
        return {"item_id": item_id}

    @app.post("/items", status_code=201)
    def item_create():
        return {}

    @app.get("/private")
    def private():
        raise HTTPException(status_code=401)

    @app.get("/broken")
    def broken():
        raise RuntimeError("the handler's own bug")

    app.add_middleware(TelemetryMiddleware, client=client, node="web-1")
    return app


def test_fastapi_requests_arrive_once_each_as_http_request_events(endpoint, tmp_path):
    keys = app_keys_create()
    client = sdk_client(keys, endpoint, tmp_path / "queue.sqlite3", batch_size=4)
    browser = TestClient(shop_api(client), raise_server_exceptions=False)

    statuses = [browser.get(f"/items/{n}").status_code for n in range(1, 6)]
    statuses.append(browser.get("/items/9", headers={"X-Consumer-Id": "mobile-app"}).status_code)
    statuses.append(browser.post("/items").status_code)
    statuses.append(browser.get("/broken").status_code)
    statuses += [browser.get(path).status_code for path in ("/private", "/wp-login.php")]  # left out: clean mode
    delivered = client.flush(timeout=30)
    client.close()

    assert statuses == [200] * 6 + [201, 500, 401, 404]
    assert delivered
    stored = Event.objects.filter(application=keys.application)
    assert {(event.event_type, event.category, event.service_name) for event in stored} == {
        ("http_request", "http", "sdk-e2e")
    }
    assert sorted(
        (event.data["method"], event.data["endpoint"], event.data["status"], event.data["consumer"]) for event in stored
    ) == sorted(
        [("GET", "/items/{item_id}", 200, "anonymous")] * 5
        + [
            ("GET", "/items/{item_id}", 200, "mobile-app"),
            ("POST", "/items", 201, "anonymous"),
            ("GET", "/broken", 500, "anonymous"),
        ]
    )
    assert all(event.data["node"] == "web-1" and event.data["response_time"] >= 0 for event in stored)
    assert (client.stats().tracked, client.stats().delivered, client.stats().dropped) == (8, 8, 0)


def test_the_middlewares_requests_show_on_the_api_panel(endpoint, tmp_path, client):
    from django.urls import reverse

    from accounts.models import Membership
    from ingest.rollups import rollups_update
    from tests.factories import UserFactory

    keys = app_keys_create()
    sdk = sdk_client(keys, endpoint, tmp_path / "queue.sqlite3", batch_size=4)
    browser = TestClient(shop_api(sdk), raise_server_exceptions=False)
    for n in range(3):
        browser.get(f"/items/{n}", headers={"X-Consumer-Id": "mobile-app"})
    browser.get("/broken")
    assert sdk.flush(timeout=30)
    sdk.close()
    rollups_update()
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=keys.application.organization, role="viewer")
    client.force_login(user)

    page = client.get(reverse("dashboards:application_api", args=[keys.org_id, keys.app_id]) + "?range=1h")

    assert page.status_code == 200
    endpoints = {(row.method, row.endpoint): (row.count, row.errors) for row in page.context["endpoints"]}
    assert endpoints == {("GET", "/items/{item_id}"): (3, 0), ("GET", "/broken"): (1, 1)}
    assert {row.name: row.count for row in page.context["consumers"]} == {"mobile-app": 3, "anonymous": 1}
    assert page.context["total"].count == 4

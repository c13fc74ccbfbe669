"""The Django middleware in a tiny project (this module is its URLconf): what each request becomes on the wire."""

import asyncio

import django
import pytest
from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import include, path, re_path

if not settings.configured:  # run outside the server's test suite, which configures Django itself
    settings.configure(ALLOWED_HOSTS=["testserver"], SECRET_KEY="tests", USE_TZ=True)
    django.setup()


def item(request, item_id):
    return JsonResponse({"item_id": item_id})


def article(request, year):
    return HttpResponse(year)


def missing(request):
    raise Http404("no such thing")


def broken(request):
    raise RuntimeError("the view's own bug")


def checkout(request):
    request.telemetry_consumer = "customer-7"
    request.telemetry_context = "checkout"
    return HttpResponse("ok")


async def async_item(request, item_id):
    return JsonResponse({"item_id": item_id})


urlpatterns = [
    path("", lambda request: HttpResponse("home")),
    path("items/<int:item_id>", item),
    path("api/", include([path("v1/items/<int:item_id>", item), path("v1/async/<int:item_id>", async_item)])),
    re_path(r"^articles/(?P<year>[0-9]{4})/$", article),
    path("missing", missing),
    path("broken", broken),
    path("checkout", checkout),
]


@pytest.fixture
def telemetry_settings(collecting_client):
    """This module's URLconf, with the middleware alone in front of it, sending to the collector."""

    def apply(**options):
        overrides = override_settings(
            ROOT_URLCONF=__name__,
            MIDDLEWARE=["telemetry_kit.django.TelemetryMiddleware"],
            TELEMETRY_KIT={"client": collecting_client, "node": "web-1", **options},
        )
        overrides.enable()
        applied.append(overrides)

    applied = []
    yield apply
    for overrides in applied:
        overrides.disable()


def requests_sent(collector, client) -> list[dict]:
    assert client.flush(timeout=10)
    return collector.data()


def test_request_is_recorded_with_its_url_pattern_not_its_path(telemetry_settings, collector, collecting_client):
    telemetry_settings()

    answer = Client().get("/items/42")

    assert answer.json() == {"item_id": 42}
    [data] = requests_sent(collector, collecting_client)
    response_time = data.pop("response_time")
    assert data == {
        "method": "GET",
        "endpoint": "/items/<int:item_id>",
        "status": 200,
        "consumer": "anonymous",
        "node": "web-1",
    }
    assert isinstance(response_time, (int, float)) and response_time >= 0
    assert (collector.events[0]["event"]["category"], collector.events[0]["service"]["name"]) == ("http", "shop-api")


def test_included_and_regex_patterns_are_recorded_whole(telemetry_settings, collector, collecting_client):
    telemetry_settings()
    browser = Client()

    browser.get("/api/v1/items/7")
    browser.get("/articles/2026/")
    browser.get("/")

    assert [data["endpoint"] for data in requests_sent(collector, collecting_client)] == [
        "/api/v1/items/<int:item_id>",
        "/articles/(?P<year>[0-9]{4})/$",
        "/",
    ]


def test_async_view_is_recorded_like_a_sync_one(telemetry_settings, collector, collecting_client):
    telemetry_settings()

    answer = asyncio.run(AsyncClient().get("/api/v1/async/3", headers={"X-Consumer-Id": "mobile-app"}))

    assert answer.json() == {"item_id": 3}
    [data] = requests_sent(collector, collecting_client)
    assert (data["endpoint"], data["status"], data["consumer"]) == ("/api/v1/async/<int:item_id>", 200, "mobile-app")


def test_exception_is_recorded_as_500_and_still_raised(telemetry_settings, collector, collecting_client):
    telemetry_settings()

    with pytest.raises(RuntimeError, match="the view's own bug"):
        Client().get("/broken")

    [data] = requests_sent(collector, collecting_client)
    assert (data["endpoint"], data["status"]) == ("/broken", 500)


def test_clean_mode_leaves_out_404s_and_keeps_other_errors(telemetry_settings, collector, collecting_client):
    telemetry_settings()
    browser = Client(raise_request_exception=False)

    statuses = [browser.get(url).status_code for url in ("/wp-login.php", "/missing", "/broken")]

    assert statuses == [404, 404, 500]
    assert [(data["endpoint"], data["status"]) for data in requests_sent(collector, collecting_client)] == [
        ("/broken", 500)
    ]


def test_without_clean_mode_an_unmatched_path_is_recorded_under_a_placeholder(
    telemetry_settings, collector, collecting_client
):
    telemetry_settings(clean_mode=False)
    browser = Client()

    browser.get("/wp-login.php")
    browser.get("/missing")

    assert [(data["endpoint"], data["status"]) for data in requests_sent(collector, collecting_client)] == [
        ("<unmatched>", 404),
        ("/missing", 404),
    ]


def test_consumer_comes_from_the_first_configured_header_present(telemetry_settings, collector, collecting_client):
    telemetry_settings(consumer_headers=["X-Api-Client", "X-User-Id"])
    browser = Client()

    browser.get("/items/1", headers={"X-User-Id": "user-12", "X-Api-Client": "partner-9"})
    browser.get("/items/1", headers={"X-User-Id": "user-12"})
    browser.get("/items/1", headers={"X-Consumer-Id": "not-configured"})

    assert [data["consumer"] for data in requests_sent(collector, collecting_client)] == [
        "partner-9",
        "user-12",
        "anonymous",
    ]


def test_view_may_name_the_consumer_and_context_of_its_request(telemetry_settings, collector, collecting_client):
    telemetry_settings(context="eu-west")
    browser = Client()

    browser.get("/checkout", headers={"X-Consumer-Id": "from-header"})
    browser.get("/items/1")

    checkout_data, item_data = requests_sent(collector, collecting_client)
    assert (checkout_data["consumer"], checkout_data["context"]) == ("customer-7", "checkout")
    assert item_data["context"] == "eu-west"


def test_do_not_track_records_nothing_and_the_site_still_answers(collector, tmp_path, monkeypatch):
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    client_settings = {
        "endpoint": collector.endpoint,
        "org_id": "org_test",
        "app_id": "app_0000abcd",
        "secret": "test_secret",
        "queue_path": str(tmp_path / "queue.sqlite3"),
    }
    with override_settings(
        ROOT_URLCONF=__name__, MIDDLEWARE=["telemetry_kit.django.TelemetryMiddleware"], TELEMETRY_KIT=client_settings
    ):
        answer = Client().get("/items/5")

    assert answer.json() == {"item_id": 5}
    assert collector.events == []
    assert list(tmp_path.iterdir()) == []

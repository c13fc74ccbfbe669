"""The signed ingest route as the web server calls it (``telemetry.wsgi.application``): straight to
its view, with the machine routes' middleware and Django's error handling, as any other route."""

import io
import json
import logging
import time

import pytest
from django.db import connection
from django.test import override_settings
from django.utils.datastructures import CaseInsensitiveMapping

from ingest.models import Event
from telemetry.metrics import metrics_text
from telemetry.wsgi import application
from tests.conftest import app_keys_create, batch_body, make_event, signed_headers
from tests.server import unused_port
from tests.test_metrics import samples, total

# The application closes obsolete database connections around each request, as a server's would;
# inside a test's transaction that would roll it back, so these tests commit.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def call(method: str, path: str, body: bytes = b"", **meta) -> tuple[int, CaseInsensitiveMapping, bytes]:
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = int(status.split()[0]), CaseInsensitiveMapping(dict(headers))

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        **meta,
    }
    content = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], content


def post_signed(keys, events: list, **meta) -> tuple[int, CaseInsensitiveMapping, bytes]:
    body = batch_body(events)
    return call("POST", keys.url, body, **signed_headers(keys, body, batch_size=len(events)), **meta)


def requests_counted(**labels) -> float:
    return total(samples(metrics_text().decode()), "http_requests_total", **labels)


def test_a_signed_batch_is_stored_and_answered_with_the_machine_routes_headers():
    keys = app_keys_create()

    status, headers, content = post_signed(keys, [make_event(), make_event()])

    assert status == 200
    assert json.loads(content)["accepted"] == 2
    assert Event.objects.filter(application=keys.application).count() == 2
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Clacks-Overhead"] == "GNU Terry Pratchett"
    assert headers["X-Content-Type-Options"] == "nosniff"  # Django's security middleware ran
    assert "X-Frame-Options" not in headers  # the browser middleware did not


def test_a_refused_request_gets_the_json_error_and_djangos_request_log(caplog):
    keys = app_keys_create()
    body = batch_body([make_event()])
    headers = signed_headers(keys, body)
    headers["HTTP_X_SIGNATURE"] = "0" * 64

    with caplog.at_level(logging.WARNING, logger="django.request"):
        status, answer_headers, content = call("POST", keys.url, body, **headers)

    assert status == 401
    assert json.loads(content)["error"]["code"] == "unauthorized"
    assert answer_headers["X-Clacks-Overhead"] == "GNU Terry Pratchett"
    assert f"Unauthorized: {keys.url}" in caplog.messages
    assert not Event.objects.exists()


def test_requests_are_counted_in_the_metrics_under_the_ingest_route():
    keys = app_keys_create()
    before = requests_counted(method="POST", route="ingest", status="200")

    post_signed(keys, [make_event()])

    assert requests_counted(method="POST", route="ingest", status="200") - before == 1


def test_redis_unreachable_answers_503_with_retry_after_and_stores_nothing():
    keys = app_keys_create()

    with override_settings(REDIS_URL=f"redis://127.0.0.1:{unused_port()}/0"):
        status, headers, content = post_signed(keys, [make_event()])

    assert status == 503
    assert json.loads(content)["error"]["code"] == "service_unavailable"
    assert int(headers["Retry-After"]) > 0
    assert not Event.objects.exists()


def test_a_signed_post_from_an_allowed_origin_gets_the_cors_headers():
    keys = app_keys_create()
    origin = "https://app.example.com"

    with override_settings(CORS_ALLOWED_ORIGINS=[origin]):
        status, headers, _ = post_signed(keys, [make_event()], HTTP_ORIGIN=origin)

    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == origin
    assert "Retry-After" in headers["Access-Control-Expose-Headers"]


def test_other_methods_and_paths_are_answered_as_before():
    keys = app_keys_create()

    get_status, get_headers, get_content = call("GET", keys.url)
    deeper_status, _, deeper_content = call("POST", keys.url + "/more", batch_body([make_event()]))

    assert get_status == 405 and json.loads(get_content)["error"]["code"] == "method_not_allowed"
    assert get_headers["X-Clacks-Overhead"] == "GNU Terry Pratchett"
    assert deeper_status == 404 and json.loads(deeper_content)["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/ingest/more", "/api/v1/other", "/metrics/more", "/ready/more"])
def test_unknown_machine_paths_are_answered_in_json_not_as_a_page(path):
    status, headers, content = call("GET", path)

    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert json.loads(content)["error"]["code"] == "not_found"


def test_ids_in_the_path_are_read_as_utf8_as_django_reads_them(caplog):
    # A WSGI server hands the path over as bytes in a latin-1 string.
    path = "/v1/ingest/örg_1/app_1".encode().decode("latin-1")

    with caplog.at_level(logging.INFO, logger="telemetry.access"):
        status, _, _ = call("POST", path, batch_body([make_event()]))

    assert status == 401
    assert [record.org_id for record in caplog.records if record.name == "telemetry.access"] == ["örg_1"]


def test_a_database_connection_past_its_age_is_replaced_before_and_closed_after_the_request():
    keys = app_keys_create()
    connection.ensure_connection()
    aged = connection.connection
    connection.close_at = time.monotonic() - 1  # past CONN_MAX_AGE
    max_age = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 0  # the connection the request opens is past it at once
    try:
        status, _, _ = post_signed(keys, [make_event()])
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = max_age

    assert status == 200
    assert aged.closed
    assert connection.connection is None
    assert Event.objects.filter(application=keys.application).count() == 1

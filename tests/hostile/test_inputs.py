"""Hostile bodies on every endpoint that decodes one: each is refused with a 4xx and a stable code,
never a 5xx, and what is stored stays bounded by what was sent."""

import gzip
import http.client
import json
import time

import pytest
from django.db import connection
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from accounts.services import credential_issue
from ingest.families.otlp import MAX_ITEMS as OTLP_MAX_ITEMS
from ingest.models import Event
from tests.conftest import app_keys_create, batch_body, make_event, signed_headers
from tests.factories import ApplicationFactory
from tests.server import wsgi_to_http

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

FUNCTION_ELEMENT = {"type": "function", "time": "2022-10-12T00:00:00.000Z", "record": "hello"}
MALTI_RECORD = {
    "service": "orders-api",
    "method": "GET",
    "endpoint": "/orders",
    "status": 200,
    "response_time": 4,
    "consumer": "web",
    "node": "web-01",
    "context": None,
    "created_at": "2026-11-25T10:30:00+00:00",
}


def send(port: int, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def error_code(answer: bytes) -> str:
    return json.loads(answer)["error"]["code"]


class Routes:
    """The JSON endpoints of one application, each sending ``value`` where a client's data goes."""

    def __init__(self, port: int):
        self.port = port
        self.keys = app_keys_create()
        self.malti_token = credential_issue(application=ApplicationFactory(), service_name="orders-api").api_token

    def ingest(self, value: bytes, **headers) -> tuple[int, bytes]:
        body = batch_body([make_event(event={"type": "t", "data": "VALUE"})]).replace(b'"VALUE"', value)
        return send(
            self.port,
            self.keys.url,
            body,
            {"Content-Type": "application/json", **headers, **wsgi_to_http(signed_headers(self.keys, body))},
        )

    def lambda_(self, value: bytes, **headers) -> tuple[int, bytes]:
        body = json.dumps([{**FUNCTION_ELEMENT, "record": "VALUE"}]).encode().replace(b'"VALUE"', value)
        return send(
            self.port,
            f"/v1/lambda/{self.keys.org_id}/{self.keys.app_id}?function=f",
            body,
            {"Content-Type": "application/json", "Authorization": f"Bearer {self.keys.api_token}", **headers},
        )

    def malti(self, value: bytes, **headers) -> tuple[int, bytes]:
        body = json.dumps({"requests": [MALTI_RECORD], "extra": "VALUE"}).encode().replace(b'"VALUE"', value)
        return send(
            self.port,
            "/api/v1/ingest",
            body,
            {"Content-Type": "application/json", "X-API-Key": self.malti_token, **headers},
        )

    def otlp(self, value: bytes, **headers) -> tuple[int, bytes]:
        body = (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "%d", "body": VALUE}]}]}]}'
            % time.time_ns()
        ).replace(b"VALUE", value)
        return send(
            self.port,
            f"/v1/otlp/{self.keys.org_id}/{self.keys.app_id}/v1/logs",
            body,
            {"Content-Type": "application/json", "Authorization": f"Bearer {self.keys.api_token}", **headers},
        )


def test_deep_nesting_is_refused_with_400_nesting_too_deep_on_every_json_endpoint(live_port):
    routes = Routes(live_port)
    deep = b"[" * 5000 + b"]" * 5000
    answers = {name: getattr(routes, name)(deep) for name in ("ingest", "lambda_", "malti")}

    assert {name: (status, error_code(body)) for name, (status, body) in answers.items()} == {
        name: (400, "nesting_too_deep") for name in answers
    }
    status, _ = routes.otlp(b'{"arrayValue": {"values": [' * 2000 + b"{}" + b"]}}" * 2000)
    assert status == 400
    assert not Event.objects.exists()


def test_data_nested_past_the_limit_is_refused_as_nesting_too_deep_and_not_stored(live_port):
    routes = Routes(live_port)
    nested = [b"[" * depth + b"]" * depth for depth in (31, 32, 33)]  # a Lambda element is one level itself

    ingest = [routes.ingest(value) for value in nested[1:]]
    lambda_ = [routes.lambda_(value) for value in nested[:2]]
    otlp_status, _ = routes.otlp(b'{"arrayValue": {"values": [' * 40 + b"{}" + b"]}}" * 40)

    assert [status for status, _ in ingest + lambda_] == [200, 422, 200, 422]
    assert {json.loads(body)["errors"][0]["error"] for _, body in (ingest[1], lambda_[1])} == {"nesting_too_deep"}
    assert otlp_status == 400
    assert Event.objects.count() == 2


@pytest.mark.parametrize("number", [b"1e999", b"-1e99999", b"1" + b"0" * 5000])
def test_numbers_no_reader_can_load_are_refused_and_not_stored(live_port, number):
    routes = Routes(live_port)

    answers = [routes.ingest(b'{"n": %s}' % number), routes.lambda_(b'{"n": %s}' % number)]

    assert [status for status, _ in answers] == [422, 422]
    assert [json.loads(body)["errors"][0]["error"] for _, body in answers] == ["invalid_data", "invalid_data"]
    assert not Event.objects.exists()


def test_a_compressed_or_non_utf8_json_body_is_refused_with_415(live_port):
    routes = Routes(live_port)
    utf16 = {"Content-Type": "application/json; charset=utf-16"}

    answers = [
        routes.ingest(b"1", **{"Content-Encoding": "zstd"}),
        routes.lambda_(b"1", **{"Content-Encoding": "br"}),
        routes.malti(b"1", **{"Content-Encoding": "gzip"}),
        routes.ingest(b"1", **utf16),
        routes.lambda_(b"1", **utf16),
        routes.malti(b"1", **utf16),
    ]

    assert [(status, error_code(body)) for status, body in answers] == [(415, "unsupported_encoding")] * 6
    assert not Event.objects.exists()


@pytest.mark.parametrize("value", [b'{"\\ud800": 1}', b'"\\ud800"', b'"\xff\xfe"', b'"\xed\xa0\x80"', b"NaN"])
def test_broken_text_and_tokens_are_refused_with_400_bad_request_everywhere(live_port, value):
    routes = Routes(live_port)

    answers = [routes.ingest(value), routes.lambda_(value), routes.malti(value)]

    assert [(status, error_code(body)) for status, body in answers] == [(400, "bad_request")] * 3
    assert routes.otlp(b'{"stringValue": %s}' % value)[0] == 400
    assert not Event.objects.exists()


def test_nul_characters_are_never_stored(live_port):
    routes = Routes(live_port)

    answers = [routes.ingest(b'{"a\\u0000": "b\\u0000"}'), routes.lambda_(b'"a\\u0000"')]
    otlp_status, _ = routes.otlp(b'{"stringValue": "a\\u0000b"}')

    assert [(status, json.loads(body)["errors"][0]["error"]) for status, body in answers] == [
        (422, "invalid_data"),
        (422, "invalid_data"),
    ]
    assert otlp_status == 200
    assert list(Event.objects.values_list("data__body", flat=True)) == ["ab"]


def otlp_metrics(resource_size: int, points: int) -> bytes:
    resource = resource_pb2.Resource(
        attributes=[
            common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="checkout")),
            common_pb2.KeyValue(key="padding", value=common_pb2.AnyValue(string_value="x" * resource_size)),
        ]
    )
    now = time.time_ns()
    metric = metrics_pb2.Metric(
        name="queue.depth",
        description="d" * resource_size,
        gauge=metrics_pb2.Gauge(
            data_points=[metrics_pb2.NumberDataPoint(time_unix_nano=now + n, as_int=n) for n in range(points)]
        ),
    )
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=resource,
                scope_metrics=[
                    metrics_pb2.ScopeMetrics(
                        scope=common_pb2.InstrumentationScope(name="s" * resource_size), metrics=[metric]
                    )
                ],
            )
        ]
    ).SerializeToString()


def test_an_otlp_resource_sent_once_is_stored_once_not_in_every_data_point(live_port):
    keys = app_keys_create()
    body = otlp_metrics(1024 * 1024, 25)  # a 1 MiB resource attribute, scope name and description
    compressed = gzip.compress(body)

    status, _ = send(
        live_port,
        f"/v1/otlp/{keys.org_id}/{keys.app_id}/v1/metrics",
        compressed,
        {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "gzip",
            "Authorization": f"Bearer {keys.api_token}",
        },
    )

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), sum(octet_length(data::text)) FROM ingest_event")
        rows, stored_bytes = cursor.fetchone()
    assert status == 200
    assert rows == 25
    assert stored_bytes < 2 * len(body)  # the 3 MiB of text once, not 25 times
    holder = Event.objects.get(data__resource__padding__isnull=False)
    others = Event.objects.exclude(pk=holder.pk)
    assert {event.data["resource_event_id"] for event in others} == {str(holder.event_id)}
    assert {event.service_name for event in others} == {"checkout"}


def test_an_otlp_request_over_the_item_cap_is_refused_with_413_and_nothing_stored(live_port):
    keys = app_keys_create()
    body = gzip.compress(otlp_metrics(10, OTLP_MAX_ITEMS + 1))

    status, _ = send(
        live_port,
        f"/v1/otlp/{keys.org_id}/{keys.app_id}/v1/metrics",
        body,
        {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "gzip",
            "Authorization": f"Bearer {keys.api_token}",
        },
    )

    assert status == 413
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "body, encoding, expected",
    [
        (gzip.compress(b"\x0a" * 10000)[:30], "gzip", 400),  # truncated gzip
        (gzip.compress(b"\x00" * 50_000_000), "gzip", 413),  # inflates past the payload limit
        (b"\x0a\xff\xff\xff\x0f\x01", "", 400),  # a length past the end
        (bytes(range(256)), "", 400),
        (b"x", "zstd", 415),
    ],
    ids=["truncated-gzip", "gzip-inflating-past-the-limit", "length-past-the-end", "every-byte", "zstd"],
)
def test_broken_gzip_and_protobuf_get_a_4xx(live_port, body, encoding, expected):
    keys = app_keys_create()

    status, _ = send(
        live_port,
        f"/v1/otlp/{keys.org_id}/{keys.app_id}/v1/traces",
        body,
        {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": encoding,
            "Authorization": f"Bearer {keys.api_token}",
        },
    )

    assert status == expected
    assert not Event.objects.exists()


def otlp_small_points(points: int, *, text: str | None = None) -> bytes:
    """Metric points of about 20 bytes each; with ``text``, every text the request shares among them
    (resource attributes, scope, metric name, description and unit) is ``text``."""
    names = (
        ("service.name", "service.version", "service.instance.id", "faas.name", "faas.version", "faas.max_memory")
        if text
        else ("service.name",)
    )
    resource = resource_pb2.Resource(
        attributes=[
            common_pb2.KeyValue(key=name, value=common_pb2.AnyValue(string_value=text or "checkout")) for name in names
        ]
    )
    now = time.time_ns()
    metric = metrics_pb2.Metric(
        name=text or "queue.depth",
        description=text or "",
        unit=text or "1",
        gauge=metrics_pb2.Gauge(
            data_points=[metrics_pb2.NumberDataPoint(time_unix_nano=now - i, as_int=i) for i in range(points)]
        ),
    )
    scope = common_pb2.InstrumentationScope(name=text or "checkout.queue", version=text or "1.0")
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=resource, scope_metrics=[metrics_pb2.ScopeMetrics(scope=scope, metrics=[metric])]
            )
        ]
    ).SerializeToString()


def stored_otlp_bytes() -> tuple[int, int]:
    """Rows, and the bytes of what they store: their data as JSON, and their text columns."""
    rows = list(Event.objects.values_list("data", "service_name", "service_version", "category"))
    return len(rows), sum(
        len(json.dumps(data, separators=(",", ":")).encode()) + len(name) + len(version or "") + len(category or "")
        for data, name, version, category in rows
    )


def test_small_otlp_points_with_ordinary_texts_store_a_small_multiple_of_the_body(live_port):
    keys = app_keys_create()
    body = otlp_small_points(1000)

    status, _ = send(
        live_port,
        f"/v1/otlp/{keys.org_id}/{keys.app_id}/v1/metrics",
        body,
        {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {keys.api_token}"},
    )

    rows, stored_bytes = stored_otlp_bytes()
    assert (status, rows) == (200, 1000)
    assert stored_bytes < 16 * len(body)  # points of about 20 bytes each, as JSON rows of about 200


def test_small_otlp_points_sharing_long_texts_are_refused_rather_than_copied_into_each(live_port):
    keys = app_keys_create()
    body = otlp_small_points(1000, text="x" * 255)  # copied to each point: 1 MB stored for 24 KB sent

    status, answer = send(
        live_port,
        f"/v1/otlp/{keys.org_id}/{keys.app_id}/v1/metrics",
        body,
        {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {keys.api_token}"},
    )

    assert status == 413
    assert "16 times its size" in status_pb2.Status.FromString(answer).message
    assert stored_otlp_bytes() == (0, 0)

"""OTLP/HTTP: protobuf and JSON encodings, gzip, partial success and the errors OTLP expects."""

import gzip
import json
import time

import pytest
from django.test import Client
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from ingest.models import Event, Outcome
from tests.conftest import app_keys_create
from tests.ingest.test_limits import keys_on, outcome_totals, tier

pytestmark = pytest.mark.django_db

PROTOBUF = "application/x-protobuf"
NOW_NANOS = time.time_ns()


def otlp_url(keys, signal: str) -> str:
    return f"/v1/otlp/{keys.org_id}/{keys.app_id}/v1/{signal}"


def attribute(key: str, value) -> common_pb2.KeyValue:
    if isinstance(value, str):
        any_value = common_pb2.AnyValue(string_value=value)
    elif isinstance(value, bool):
        any_value = common_pb2.AnyValue(bool_value=value)
    elif isinstance(value, int):
        any_value = common_pb2.AnyValue(int_value=value)
    else:
        any_value = common_pb2.AnyValue(double_value=value)
    return common_pb2.KeyValue(key=key, value=any_value)


def resource(**values) -> resource_pb2.Resource:
    values = {"service.name": "checkout", "service.version": "2.1.0", **values}
    return resource_pb2.Resource(attributes=[attribute(key, value) for key, value in values.items()])


def span(name: str, *, span_id: int = 1, start: int = NOW_NANOS, **attributes) -> trace_pb2.Span:
    return trace_pb2.Span(
        trace_id=bytes(range(16)),
        span_id=span_id.to_bytes(8, "big"),
        name=name,
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 12_500_000,
        attributes=[attribute(key, value) for key, value in attributes.items()],
    )


def traces(*spans, **resource_values) -> trace_service_pb2.ExportTraceServiceRequest:
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource(**resource_values),
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        scope=common_pb2.InstrumentationScope(name="tests", version="1"), spans=list(spans)
                    )
                ],
            )
        ]
    )


def gauge(name: str, value: float, *, at: int = NOW_NANOS, **attributes) -> metrics_pb2.Metric:
    return metrics_pb2.Metric(
        name=name,
        unit="ms",
        gauge=metrics_pb2.Gauge(
            data_points=[
                metrics_pb2.NumberDataPoint(
                    time_unix_nano=at, as_double=value, attributes=[attribute(k, v) for k, v in attributes.items()]
                )
            ]
        ),
    )


def metrics(*metric_list, **resource_values) -> metrics_service_pb2.ExportMetricsServiceRequest:
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=resource(**resource_values),
                scope_metrics=[metrics_pb2.ScopeMetrics(metrics=list(metric_list))],
            )
        ]
    )


def logs(*bodies: str) -> logs_service_pb2.ExportLogsServiceRequest:
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource(),
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        log_records=[
                            logs_pb2.LogRecord(
                                time_unix_nano=NOW_NANOS + i,
                                severity_text="INFO",
                                severity_number=9,
                                body=common_pb2.AnyValue(string_value=body),
                            )
                            for i, body in enumerate(bodies)
                        ]
                    )
                ],
            )
        ]
    )


def export(keys, signal: str, body: bytes, *, content_type: str = PROTOBUF, token: str | None = None, **headers):
    headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {token or keys.api_token}")
    return Client().post(otlp_url(keys, signal), data=body, content_type=content_type, **headers)


def test_protobuf_spans_are_stored_with_service_from_the_resource(app_keys):
    request = traces(span("GET /orders", span_id=1, **{"http.status_code": 200}), span("SELECT", span_id=2))

    response = export(app_keys, "traces", request.SerializeToString())

    assert response.status_code == 200
    assert response["Content-Type"] == PROTOBUF
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(response.content)
    assert not answer.HasField("partial_success")
    stored = {event.data["name"]: event for event in Event.objects.filter(application=app_keys.application)}
    assert set(stored) == {"GET /orders", "SELECT"}
    event = stored["GET /orders"]
    assert (event.event_type, event.schema_version, event.category) == ("otel.span", "otlp/1", "GET /orders")
    assert (event.service_name, event.service_version) == ("checkout", "2.1.0")
    assert event.data["trace_id"] == bytes(range(16)).hex()
    assert event.data["span_id"] == "0000000000000001"
    assert event.data["kind"] == "SPAN_KIND_SERVER"
    assert event.data["duration_ms"] == 12.5
    assert event.data["attributes"] == {"http.status_code": 200}
    assert event.data["resource"] == {"service.name": "checkout", "service.version": "2.1.0"}
    assert event.data["scope"] == {"name": "tests", "version": "1"}
    assert event.timestamp.timestamp() == pytest.approx(NOW_NANOS / 1e9, abs=1e-5)


def test_a_retried_export_is_stored_once(app_keys):
    body = traces(span("GET /orders")).SerializeToString()
    export(app_keys, "traces", body)

    response = export(app_keys, "traces", body)

    assert response.status_code == 200
    assert Event.objects.count() == 1


def test_metric_points_and_log_records_are_stored(app_keys):
    request = metrics(
        gauge("queue.depth", 4.0, queue="orders"),
        metrics_pb2.Metric(
            name="requests",
            sum=metrics_pb2.Sum(
                is_monotonic=True,
                aggregation_temporality=2,
                data_points=[metrics_pb2.NumberDataPoint(time_unix_nano=NOW_NANOS, as_int=7)],
            ),
        ),
    )

    assert export(app_keys, "metrics", request.SerializeToString()).status_code == 200
    assert export(app_keys, "logs", logs("started", "done").SerializeToString()).status_code == 200

    points = {event.data["name"]: event.data for event in Event.objects.filter(event_type="otel.metric")}
    assert points["queue.depth"]["value"] == 4.0
    assert points["queue.depth"]["attributes"] == {"queue": "orders"}
    assert points["requests"] | {"resource": None} == points["requests"] | {
        "type": "sum",
        "value": 7,
        "is_monotonic": True,
        "temporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
        "resource": None,
    }
    records = Event.objects.filter(event_type="otel.log").order_by("timestamp")
    assert [record.data["body"] for record in records] == ["started", "done"]
    assert {record.category for record in records} == {"INFO"}


def test_json_encoding_is_answered_in_json(app_keys):
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "charge",
                                "kind": 2,
                                "startTimeUnixNano": str(NOW_NANOS),
                                "endTimeUnixNano": str(NOW_NANOS + 1_000_000),
                                "attributes": [{"key": "amount", "value": {"intValue": "1200"}}],
                            }
                        ]
                    }
                ],
            }
        ]
    }

    response = export(app_keys, "traces", json.dumps(body).encode(), content_type="application/json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {}
    event = Event.objects.get()
    assert event.service_name == "billing"
    assert event.data["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert event.data["span_id"] == "eee19b7ec3c1b174"
    assert event.data["attributes"] == {"amount": 1200}


def test_gzip_bodies_are_inflated(app_keys):
    body = gzip.compress(logs("compressed").SerializeToString())

    response = export(app_keys, "logs", body, HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 200
    assert Event.objects.get().data["body"] == "compressed"


def test_a_gzip_body_that_inflates_past_the_limit_is_refused_with_413(app_keys, settings):
    settings.INGEST_MAX_PAYLOAD_SIZE = 4096
    body = gzip.compress(logs("x" * 100_000).SerializeToString())
    assert len(body) < 4096

    response = export(app_keys, "logs", body, HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 413
    assert "limit" in status_pb2.Status.FromString(response.content).message
    assert not Event.objects.exists()


def test_items_without_a_time_are_rejected_as_a_partial_success(app_keys):
    request = traces(span("kept", span_id=1), span("no time", span_id=2, start=0))

    response = export(app_keys, "traces", request.SerializeToString())

    assert response.status_code == 200
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "invalid_timestamp" in answer.partial_success.error_message
    assert list(Event.objects.values_list("data__name", flat=True)) == ["kept"]


def test_partial_success_in_json_names_the_rejected_count(app_keys):
    request = metrics(gauge("ok", 1.0), gauge("late", 2.0, at=0))

    response = export(
        app_keys, "metrics", json.dumps(json_format.MessageToDict(request)).encode(), content_type="application/json"
    )

    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedDataPoints"] == "1"
    assert Event.objects.count() == 1


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_an_undecodable_body_is_answered_400_with_a_status(app_keys, signal):
    response = export(app_keys, signal, b"\xff\xff\xff not protobuf")

    assert response.status_code == 400
    status = status_pb2.Status.FromString(response.content)
    assert status.code == 3  # INVALID_ARGUMENT
    assert "not a valid Export" in status.message
    assert outcome_totals(app_keys)["invalid:bad_request"] == 1


def test_bad_json_is_answered_400_with_a_json_status(app_keys):
    response = export(app_keys, "logs", b'{"resourceLogs": [{"scopeLogs": "no"}]}', content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == 3


def test_an_unknown_content_type_is_answered_415(app_keys):
    response = export(app_keys, "traces", b"spans", content_type="text/plain")

    assert response.status_code == 415
    assert response.json()["message"].startswith("Content-Type must be")


def test_an_unknown_content_encoding_is_answered_415(app_keys):
    response = export(app_keys, "traces", b"x", HTTP_CONTENT_ENCODING="br")

    assert response.status_code == 415


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
@pytest.mark.parametrize("case", ["no token", "wrong token", "another organization's application"])
def test_a_token_that_is_not_the_applications_is_refused_with_401(app_keys, signal, case):
    other = app_keys_create()
    url_keys, token = app_keys, app_keys.api_token
    if case == "wrong token":
        token = "tk_" + "0" * 32
    elif case == "another organization's application":
        url_keys = other
    headers = {} if case == "no token" else {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    response = Client().post(
        otlp_url(url_keys, signal), data=logs("x").SerializeToString(), content_type=PROTOBUF, **headers
    )

    assert response.status_code == 401
    assert status_pb2.Status.FromString(response.content).code == 16  # UNAUTHENTICATED
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "signal, body",
    [
        ("traces", traces(span("a", span_id=1), span("b", span_id=2), span("c", span_id=3))),
        ("metrics", metrics(gauge("a", 1.0), gauge("b", 2.0), gauge("c", 3.0))),
        ("logs", logs("a", "b", "c")),
    ],
)
def test_the_quota_rejects_what_it_cannot_admit_then_answers_429(signal, body):
    keys = keys_on(tier(monthly_event_quota=2))

    partial = export(keys, signal, body.SerializeToString())
    spent = export(keys, signal, body.SerializeToString())

    assert partial.status_code == 200
    answer = otlp_response(signal, partial.content)
    assert answer.partial_success.error_message.startswith("1 of 3 rejected (over_quota: 1)")
    assert spent.status_code == 429
    assert int(spent["Retry-After"]) > 0
    assert "quota" in status_pb2.Status.FromString(spent.content).message
    assert Event.objects.filter(application=keys.application).count() == 2


def otlp_response(signal: str, content: bytes):
    return {
        "traces": trace_service_pb2.ExportTraceServiceResponse,
        "logs": logs_service_pb2.ExportLogsServiceResponse,
        "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    }[signal].FromString(content)


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_the_rate_limit_answers_429_with_retry_after(signal):
    keys = keys_on(tier(requests_per_minute=1))
    body = (
        logs("x").SerializeToString()
        if signal == "logs"
        else (traces(span("a")) if signal == "traces" else metrics(gauge("a", 1.0))).SerializeToString()
    )
    assert export(keys, signal, body).status_code == 200

    response = export(keys, signal, body)

    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert status_pb2.Status.FromString(response.content).code == 8  # RESOURCE_EXHAUSTED
    assert outcome_totals(keys)["rate_limited"] == 1


def test_an_empty_export_is_answered_200_and_stores_nothing(app_keys):
    response = export(app_keys, "traces", b"", CONTENT_TYPE=PROTOBUF)  # the test client drops it for no body

    assert response.status_code == 200
    assert not Event.objects.exists()
    assert not Outcome.objects.filter(application_id=app_keys.application.pk).exists()


def test_more_items_than_an_export_may_hold_are_refused_with_413(app_keys, monkeypatch):
    monkeypatch.setattr("ingest.families.otlp.MAX_ITEMS", 2)

    response = export(app_keys, "logs", logs("a", "b", "c").SerializeToString())

    assert response.status_code == 413
    assert "limit is 2" in status_pb2.Status.FromString(response.content).message
    assert not Event.objects.exists()


def test_gzip_json_is_inflated_and_answered_in_json(app_keys):
    body = gzip.compress(json.dumps(json_format.MessageToDict(logs("zipped json"))).encode())

    response = export(app_keys, "logs", body, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 200
    assert response.json() == {}
    assert Event.objects.get().data["body"] == "zipped json"


def test_a_body_that_is_not_gzip_is_answered_400(app_keys):
    response = export(app_keys, "logs", logs("plain").SerializeToString(), HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 400
    assert "gzip" in status_pb2.Status.FromString(response.content).message

"""The real OpenTelemetry Python SDK and OTLP/HTTP exporter against the production server.

The exporter runs in a process of its own, configured only by the standard environment variables
the README documents (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS), as a user's would be.
"""

import subprocess
import sys
import textwrap

import pytest

from ingest.models import Event
from tests.conftest import app_keys_create
from tests.server import ROOT, database_env_for_server, running_server

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

EXPORTING_PROGRAM = textwrap.dedent("""
    import logging

    from opentelemetry import metrics, trace
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    resource = Resource.create({"service.name": "orders-api", "service.version": "4.2.0"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    tracer = tracer_provider.get_tracer("e2e")
    with tracer.start_as_current_span("GET /orders") as parent:
        parent.set_attribute("http.response.status_code", 200)
        with tracer.start_as_current_span("SELECT orders"):
            pass

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=60_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meter_provider.get_meter("e2e")
    meter.create_counter("orders.created").add(3, {"channel": "web"})
    meter.create_histogram("orders.amount", unit="EUR").record(12.5)
    meter_provider.shutdown()  # exports once more, then stops

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter()))
    logger = logging.getLogger("orders")
    logger.addHandler(LoggingHandler(logger_provider=logger_provider))
    logger.setLevel(logging.INFO)
    logger.warning("payment retried", extra={"order.id": "o-17"})
    logger_provider.shutdown()
    tracer_provider.shutdown()
""")


@pytest.fixture(scope="module")
def endpoint(django_db_setup, tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("server"), **database_env_for_server()) as port:
        yield f"http://127.0.0.1:{port}"


def run_exporter(environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", EXPORTING_PROGRAM],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def exporter_environment(base: str, token: str, **extra) -> dict[str, str]:
    import os

    environment = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    return {
        **environment,
        "OTEL_EXPORTER_OTLP_ENDPOINT": base,
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {token}",
        **extra,
    }


def test_the_opentelemetry_exporter_sends_spans_metrics_and_logs(endpoint):
    keys = app_keys_create()
    base = f"{endpoint}/v1/otlp/{keys.org_id}/{keys.app_id}"

    finished = run_exporter(exporter_environment(base, keys.api_token, OTEL_EXPORTER_OTLP_COMPRESSION="gzip"))

    assert finished.returncode == 0, finished.stderr
    assert "Failed to export" not in finished.stderr
    events = Event.objects.filter(application=keys.application)
    spans = {event.data["name"]: event for event in events.filter(event_type="otel.span")}
    assert set(spans) == {"GET /orders", "SELECT orders"}
    assert spans["SELECT orders"].data["parent_span_id"] == spans["GET /orders"].data["span_id"]
    assert spans["GET /orders"].data["attributes"] == {"http.response.status_code": 200}
    assert {(event.service_name, event.service_version) for event in events} == {("orders-api", "4.2.0")}
    points = {event.data["name"]: event.data for event in events.filter(event_type="otel.metric")}
    assert points["orders.created"]["value"] == 3
    assert points["orders.created"]["attributes"] == {"channel": "web"}
    assert (points["orders.amount"]["type"], points["orders.amount"]["count"], points["orders.amount"]["sum"]) == (
        "histogram",
        1,
        12.5,
    )
    record = events.get(event_type="otel.log")
    assert (record.data["body"], record.data["severity_text"], record.category) == ("payment retried", "WARN", "WARN")
    assert record.data["attributes"]["order.id"] == "o-17"
    assert events.first().sdk_version.startswith("OTel-OTLP-Exporter-Python/")


def test_the_exporter_is_refused_with_another_applications_token(endpoint):
    keys, other = app_keys_create(), app_keys_create()
    base = f"{endpoint}/v1/otlp/{keys.org_id}/{keys.app_id}"

    finished = run_exporter(exporter_environment(base, other.api_token))

    assert "401" in finished.stderr
    assert not Event.objects.filter(application__in=[keys.application, other.application]).exists()

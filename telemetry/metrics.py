"""Prometheus metrics, correct across the web server's worker processes.

Each process writes its counters to files under PROMETHEUS_MULTIPROC_DIR (set by telemetry.server
before the workers start); a scrape adds them up. Without that directory (tests, manage.py)
metrics stay in the process.
"""

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_INGESTED = Counter("events_ingested_total", "Events stored by the ingest API")
EVENTS_FAILED = Counter(
    "events_failed_total", "Events the ingest API did not store, by outcome and reason", ["outcome", "reason"]
)


class DatabaseConnections:
    """db_connections_active, read from the database at scrape time."""

    def collect(self):
        from django.db import connection

        gauge = GaugeMetricFamily("db_connections_active", "Open connections to this service's database")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
                gauge.add_metric([], cursor.fetchone()[0])
        return [gauge]


def metrics_text() -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    text = generate_latest(registry)
    return text + generate_latest(_database_registry())


def _database_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(DatabaseConnections())
    return registry

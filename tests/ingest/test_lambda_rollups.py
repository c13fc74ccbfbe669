"""Lambda rollups: from Telemetry API reports and from what the Lambda extension exports over OTLP."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from opentelemetry.proto.metrics.v1 import metrics_pb2

from ingest.models import LAMBDA_DURATION_BOUNDS_MS, Event, LambdaRollup
from ingest.rollups import rollups_prune, rollups_update
from ingest.rollups.aws_lambda import duration_bound
from tests.conftest import make_event
from tests.ingest.test_lambda_api import SEED_FUNCTION, SEED_REPORT, SEED_RUNTIME_DONE, SEED_START, post_array
from tests.ingest.test_otlp_api import attribute, export, metrics, span, traces

pytestmark = pytest.mark.django_db

# Two hours ago: recent enough for 5-minute rows, which are kept for MINUTE_ROLLUPS_HOURS.
HOUR = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)


def report(
    minute: int,
    duration: float,
    *,
    status: str = "success",
    billed: int = 0,
    memory: int = 128,
    used: int = 64,
    init: float | None = None,
) -> dict:
    metrics = {
        "durationMs": duration,
        "billedDurationMs": billed or int(duration) + 1,
        "memorySizeMB": memory,
        "maxMemoryUsedMB": used,
    }
    if init is not None:
        metrics["initDurationMs"] = init
    return {
        **SEED_REPORT,
        "time": f"{HOUR:%Y-%m-%dT%H}:{minute:02d}:00.000Z",
        "record": {"requestId": f"r-{minute}-{duration}", "status": status, "metrics": metrics},
    }


def histogram(row: LambdaRollup) -> dict[int, int]:
    """Invocations per duration bucket (its index) of a row, the empty ones left out."""
    return {
        bucket: getattr(row, name) for bucket, name in enumerate(LambdaRollup.DURATION_FIELDS) if getattr(row, name)
    }


def rollup(granularity: str = "hour", **filters) -> LambdaRollup:
    return LambdaRollup.objects.get(granularity=granularity, **filters)


def test_reports_roll_up_per_function_and_version_by_hour_and_five_minutes(app_keys):
    post_array(
        app_keys,
        [
            report(1, 100.5, billed=200, init=250.0),
            report(2, 40.0, status="error", used=100),
            report(7, 900.0, status="timeout", billed=1000, memory=256, used=200),
        ],
    )
    post_array(app_keys, [report(3, 10.0)], query="?function=checkout&version=8")
    post_array(app_keys, [SEED_REPORT], query="?function=other")  # another function, another hour

    rollups_update()

    row = rollup(function="checkout", version="7")
    assert (row.bucket, row.invocations, row.errors, row.cold_starts, row.init_ms) == (HOUR, 3, 2, 1, 250.0)
    assert (row.duration_ms, row.billed_ms) == (1040.5, 1241.0)
    assert row.gb_seconds == pytest.approx(0.2 * 128 / 1024 + 0.041 * 128 / 1024 + 1.0 * 256 / 1024)
    assert (row.max_memory_used_mb, row.memory_size_mb) == (200, 256)
    assert rollup(function="checkout", version="8").invocations == 1
    assert rollup(function="other", version="").invocations == 1
    five = {r.bucket.minute: r.invocations for r in LambdaRollup.objects.filter(granularity="5min", version="7")}
    assert five == {0: 2, 5: 1}


def test_the_duration_histogram_counts_each_invocation_once_in_its_bucket(app_keys):
    durations = [0.5, 3.0, 100.5, 100.5, 2500.0, 1_000_000.0]
    post_array(app_keys, [report(i, d) for i, d in enumerate(durations)])

    rollups_update()

    counts = histogram(rollup())
    assert counts == {
        0: 1,
        2: 1,
        duration_bound(100.5): 2,
        duration_bound(2500.0): 1,
        len(LAMBDA_DURATION_BOUNDS_MS): 1,
    }
    assert (
        LAMBDA_DURATION_BOUNDS_MS[duration_bound(100.5) - 1] < 100.5 <= LAMBDA_DURATION_BOUNDS_MS[duration_bound(100.5)]
    )


def test_rollups_add_up_across_runs_and_merge_by_addition(app_keys):
    post_array(app_keys, [report(1, 10.0, used=50)])
    rollups_update()
    post_array(app_keys, [report(2, 20.0, used=70), report(3, 30.0, used=60)])

    rollups_update()

    row = rollup()
    assert (row.invocations, row.duration_ms, row.max_memory_used_mb) == (3, 60.0, 70)
    assert sum(histogram(row).values()) == 3


def test_other_lambda_types_and_other_sources_do_not_count_as_invocations(app_keys, signed_post):
    post_array(app_keys, [SEED_START, SEED_RUNTIME_DONE, SEED_FUNCTION])
    signed_post(app_keys, [make_event(event={"type": "platform.report", "data": {"record": "not lambda"}})])

    rollups_update()

    assert Event.objects.count() == 4
    assert not LambdaRollup.objects.exists()


def extension_export(
    keys,
    request_id: str,
    *,
    duration: float,
    billed: float,
    used_mb: int,
    status: str,
    init: float | None = None,
    at: int,
    max_memory: int = 512 * 1024 * 1024,
):
    """What the Lambda extension exports for one platform.report: gauges, and a lambda.invoke span."""
    lambda_resource = {
        "service.name": "resize",
        "faas.name": "resize",
        "faas.version": "$LATEST",
        "faas.max_memory": max_memory,
        "cloud.provider": "aws",
    }
    invocation = {"faas.invocation_id": request_id}

    def gauge(name: str, unit: str, value: float) -> metrics_pb2.Metric:
        return metrics_pb2.Metric(
            name=name,
            unit=unit,
            gauge=metrics_pb2.Gauge(
                data_points=[
                    metrics_pb2.NumberDataPoint(
                        time_unix_nano=at,
                        start_time_unix_nano=at,
                        as_double=value,
                        attributes=[attribute(k, v) for k, v in invocation.items()],
                    )
                ]
            ),
        )

    points = [
        gauge("faas.invocation.duration", "ms", duration),
        gauge("aws.lambda.billed_duration", "ms", billed),
        gauge("aws.lambda.max_memory_used", "By", used_mb * 1024 * 1024),
    ]
    if init is not None:
        points.append(gauge("aws.lambda.init_duration", "ms", init))
    assert export(keys, "metrics", metrics(*points, **lambda_resource).SerializeToString()).status_code == 200
    invoke = span(
        "lambda.invoke", span_id=int(at % 10**9) + 1, start=at, **{"faas.invocation.status": status, **invocation}
    )
    assert export(keys, "traces", traces(invoke, **lambda_resource).SerializeToString()).status_code == 200


def test_the_extensions_otlp_export_feeds_the_same_rollups(app_keys):
    at = int(datetime(2026, 11, 20, 10, 12, tzinfo=UTC).timestamp() * 1e9)
    extension_export(app_keys, "a", duration=120.0, billed=121.0, used_mb=90, status="success", init=300.0, at=at)
    extension_export(app_keys, "b", duration=80.0, billed=81.0, used_mb=95, status="error", at=at + 1000)

    rollups_update()

    row = rollup(function="resize", version="$LATEST")
    assert (row.invocations, row.errors, row.cold_starts, row.init_ms) == (2, 1, 1, 300.0)
    assert (row.duration_ms, row.billed_ms, row.max_memory_used_mb, row.memory_size_mb) == (200.0, 202.0, 95, 512)
    assert row.gb_seconds == pytest.approx(0.202 * 0.5)
    assert sum(histogram(row).values()) == 2


def test_configured_memory_in_megabytes_is_read_as_megabytes(app_keys):
    at = int(datetime(2026, 11, 20, 10, 12, tzinfo=UTC).timestamp() * 1e9)
    extension_export(app_keys, "a", duration=120.0, billed=1000.0, used_mb=90, status="success", at=at, max_memory=1024)

    rollups_update()

    row = rollup(function="resize")
    assert (row.memory_size_mb, row.gb_seconds) == (1024, 1.0)


def test_five_minute_rows_are_built_and_kept_for_recent_events_only(app_keys):
    old = {**report(1, 10.0), "time": "2026-01-15T08:31:00.000Z"}
    post_array(app_keys, [report(1, 10.0), old])
    rollups_update()
    LambdaRollup.objects.filter(granularity="5min").update(bucket=HOUR - timedelta(hours=49))

    assert rollups_prune() == 1

    assert set(LambdaRollup.objects.values_list("granularity", "bucket")) == {
        ("hour", HOUR),
        ("hour", datetime(2026, 1, 15, 8, tzinfo=UTC)),
    }


def test_the_rebuild_command_recomputes_the_lambda_rollups(app_keys):
    post_array(app_keys, [report(1, 10.0, init=100.0), report(7, 300.0, status="error")])
    rollups_update()
    expected = sorted(
        LambdaRollup.objects.values_list("granularity", "bucket", "invocations", "errors", "cold_starts", "duration_ms")
    )
    durations = sorted((row.granularity, row.bucket, *histogram(row).items()) for row in LambdaRollup.objects.all())
    LambdaRollup.objects.update(invocations=999, ms_1=999)

    call_command(
        "rebuild_rollups",
        "--since",
        (HOUR - timedelta(days=1)).date().isoformat(),
        "--until",
        (HOUR + timedelta(days=2)).date().isoformat(),
        stdout=StringIO(),
    )

    assert (
        sorted(
            LambdaRollup.objects.values_list(
                "granularity", "bucket", "invocations", "errors", "cold_starts", "duration_ms"
            )
        )
        == expected
    )
    assert (
        sorted((row.granularity, row.bucket, *histogram(row).items()) for row in LambdaRollup.objects.all())
        == durations
    )

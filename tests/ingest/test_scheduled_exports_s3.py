"""Scheduled exports on S3-compatible object storage, against a local S3 server (moto's server mode)."""

import gzip
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from ingest.models import ExportRun, ExportSchedule
from ingest.retention.archive import day_start
from ingest.retention.scheduled_exports import export_runs_redo, scheduled_exports_run
from tests.factories import ApplicationFactory
from tests.ingest.archive_helpers import events_add
from tests.ingest.conftest import BUCKET

pytestmark = pytest.mark.django_db

NOW = day_start(datetime.now(UTC)) + timedelta(hours=3)
DAY = day_start(NOW) - timedelta(days=1)


def body(client, key: str) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_files_and_manifests_land_in_the_bucket_and_decode_to_the_events(bucket):
    application = ApplicationFactory()
    events_add(application, DAY + timedelta(hours=6), 4)
    ExportSchedule.objects.create(
        organization=application.organization, formats=["ndjson.gz", "parquet"], prefix="lake", start_date=DAY.date()
    )

    assert scheduled_exports_run(now=NOW).files == 2

    runs = {run.format: run for run in ExportRun.objects.all()}
    keys = sorted(item["Key"] for item in bucket.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == sorted(f"events/{runs[fmt].path}{suffix}" for fmt in runs for suffix in ("", ".manifest.json"))
    for run in runs.values():
        content = body(bucket, f"events/{run.path}")
        manifest = json.loads(body(bucket, f"events/{run.path}.manifest.json"))
        assert (
            (manifest["rows"], manifest["bytes"], manifest["checksum"])
            == (4, len(content), f"sha256:{hashlib.sha256(content).hexdigest()}")
            == (run.row_count, run.size_bytes, run.checksum)
        )
    lines = gzip.decompress(body(bucket, f"events/{runs['ndjson.gz'].path}")).decode().splitlines()
    table = pq.read_table(io.BytesIO(body(bucket, f"events/{runs['parquet'].path}")))
    assert [json.loads(line)["data"]["n"] for line in lines] == [0, 1, 2, 3]
    assert [json.loads(data)["n"] for data in table.column("data").to_pylist()] == [0, 1, 2, 3]


def test_a_rerun_replaces_each_object_with_the_same_bytes(bucket):
    application = ApplicationFactory()
    events_add(application, DAY + timedelta(hours=6), 9)
    ExportSchedule.objects.create(
        organization=application.organization, formats=["ndjson.gz", "parquet"], prefix="lake", start_date=DAY.date()
    )
    scheduled_exports_run(now=NOW)
    before = {item["Key"]: body(bucket, item["Key"]) for item in bucket.list_objects_v2(Bucket=BUCKET)["Contents"]}

    export_runs_redo(runs=ExportRun.objects.all())
    assert scheduled_exports_run(now=NOW).files == 2

    after = {item["Key"]: body(bucket, item["Key"]) for item in bucket.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert after == before


def test_a_missing_bucket_fails_the_file_and_the_retry_writes_it(bucket):
    application = ApplicationFactory()
    events_add(application, DAY + timedelta(hours=6), 2)
    ExportSchedule.objects.create(
        organization=application.organization, formats=["parquet"], prefix="lake", start_date=DAY.date()
    )
    bucket.delete_bucket(Bucket=BUCKET)

    assert scheduled_exports_run(now=NOW).failed == 1
    run = ExportRun.objects.get()
    assert (run.state, run.attempts) == (ExportRun.State.FAILED, 1)
    assert "NoSuchBucket" in run.error

    bucket.create_bucket(Bucket=BUCKET)
    assert scheduled_exports_run(now=run.next_attempt_at).files == 1
    run.refresh_from_db()
    assert (run.state, run.attempts, run.row_count) == (ExportRun.State.SUCCEEDED, 2, 2)
    assert pq.read_table(io.BytesIO(body(bucket, f"events/{run.path}"))).num_rows == 2

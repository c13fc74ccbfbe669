"""Archives on S3-compatible object storage, against a local S3 server (moto's server mode)."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.models import Archive, Event
from ingest.retention.archive import archive_restore, archive_run
from ingest.retention.erasure import user_events_erase
from tests.conftest import USER_ID
from tests.ingest.archive_helpers import events_add, free_application, stored
from tests.ingest.conftest import BUCKET

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)


def keys(client) -> list[str]:
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_archive_restore_and_erasure_work_on_object_storage(bucket):
    application = free_application()
    events_add(application, NOW - timedelta(days=40), 3)
    events_add(application, NOW - timedelta(days=40, minutes=-5), 2, user_id="client_" + "1" * 64)
    before = stored(application)

    assert archive_run(now=NOW).events == 5

    archived = Archive.objects.get()
    assert keys(bucket) == [f"events/{archived.path}", f"events/{archived.manifest_path}"]
    manifest = json.loads(bucket.get_object(Bucket=BUCKET, Key=f"events/{archived.manifest_path}")["Body"].read())
    assert manifest["rows"] == 5 and manifest["checksum"] == archived.checksum
    assert archive_restore(archive=archived) == 5
    assert stored(application) == before

    user_events_erase(application=application, user_id=USER_ID, via="command")
    rewritten = Archive.objects.get()
    assert rewritten.row_count == 2
    assert keys(bucket) == sorted([f"events/{rewritten.path}", f"events/{rewritten.manifest_path}"])
    assert not Event.objects.filter(user_id=USER_ID).exists()


def test_settings_choose_s3_when_a_bucket_is_configured(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    environment.update(
        APP_DATA_DIR=str(tmp_path),
        APP_ARCHIVE__S3_BUCKET="my-bucket",
        APP_ARCHIVE__S3_ENDPOINT_URL="https://s3.example.com",
        APP_ARCHIVE__S3_PREFIX="telemetry",
    )
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; import json; print(json.dumps(settings.STORAGES['archives']))",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    configured = json.loads(result.stdout.strip().splitlines()[-1])
    assert configured["BACKEND"] == "storages.backends.s3.S3Storage"
    assert (
        configured["OPTIONS"]["bucket_name"],
        configured["OPTIONS"]["location"],
        configured["OPTIONS"]["endpoint_url"],
    ) == ("my-bucket", "telemetry", "https://s3.example.com")

"""Events past their tier's retention leave the table for verified archive files, and come back."""

import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.core.files.storage import storages
from django.db import DatabaseError, connection

from accounts.models import Tier
from accounts.services import application_delete
from ingest.models import Archive, Event, EventRollup
from ingest.retention import archive, partitions
from ingest.retention.archive import archive_restore, archive_run, archive_write
from ingest.rollups import rollups_rebuild, rollups_update
from tests.factories import ApplicationFactory, OrganizationFactory
from tests.ingest.archive_helpers import events_add, free_application, stored

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("archive_dir")]

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)  # past the free tier's 30 days
RECENT = NOW - timedelta(days=5)


def read_archive(archive_row: Archive) -> tuple[bytes, dict]:
    storage = storages["archives"]
    return storage.open(archive_row.path, "rb").read(), json.loads(storage.open(archive_row.manifest_path).read())


def test_events_past_retention_are_archived_with_a_manifest_and_deleted():
    application = free_application()
    old = events_add(application, OLD, 3)
    recent = events_add(application, RECENT, 2)

    result = archive_run(now=NOW)

    assert (result.archives, result.events) == (1, 3)
    archived = Archive.objects.get()
    assert archived.state == Archive.State.ARCHIVED and archived.checksum_ok
    assert (archived.start, archived.end) == (archive.day_start(OLD), archive.day_start(OLD) + timedelta(days=1))
    content, manifest = read_archive(archived)
    assert manifest["organization"] == application.organization.public_id
    assert manifest["application"] == application.public_id
    assert (manifest["start"], manifest["end"]) == (archived.start.isoformat(), archived.end.isoformat())
    assert manifest["rows"] == archived.row_count == 3
    assert manifest["checksum"] == archived.checksum == f"sha256:{hashlib.sha256(content).hexdigest()}"
    assert gzip.decompress(content).decode().splitlines()[0].split(",")[:3] == [
        "id",
        "organization_id",
        "application_id",
    ]
    assert {str(e.event_id) for e in old} <= set(gzip.decompress(content).decode().replace('"', "").split(","))
    assert set(Event.objects.values_list("pk", flat=True)) == {e.pk for e in recent}


def test_rollups_are_kept_when_their_events_are_archived():
    application = free_application()
    events_add(application, OLD, 3)
    Event.objects.update(received_at=NOW - timedelta(minutes=5))
    rollups_update()
    before = sorted(EventRollup.objects.values_list("granularity", "dimension", "bucket", "count"))

    archive_run(now=NOW)

    assert not Event.objects.exists()
    assert sorted(EventRollup.objects.values_list("granularity", "dimension", "bucket", "count")) == before


def test_rebuilding_rollups_leaves_archived_days_as_they_were():
    application = free_application()
    events_add(application, OLD, 3)
    Event.objects.update(received_at=NOW - timedelta(minutes=5))
    rollups_update()
    archive_run(now=NOW)
    before = sorted(EventRollup.objects.values_list("granularity", "dimension", "bucket", "count"))

    rollups_rebuild(since=archive.day_start(OLD), until=archive.day_start(OLD) + timedelta(days=1))

    assert sorted(EventRollup.objects.values_list("granularity", "dimension", "bucket", "count")) == before


def test_a_second_run_does_nothing(archive_dir):
    application = free_application()
    events_add(application, OLD, 3)
    archive_run(now=NOW)
    files = sorted(archive_dir.rglob("*"))

    result = archive_run(now=NOW)

    assert (result.archives, result.events, result.partitions_dropped) == (0, 0, [])
    assert Archive.objects.count() == 1
    assert sorted(archive_dir.rglob("*")) == files


def test_events_within_retention_stay_and_each_tier_keeps_its_own_days():
    free = free_application()
    events_add(free, NOW - timedelta(days=29), 1)
    pro = ApplicationFactory(organization=OrganizationFactory(tier=Tier.objects.get(slug="pro")))
    events_add(pro, OLD, 2)  # 40 days: within pro's 90

    assert archive_run(now=NOW).events == 0
    assert Event.objects.count() == 3


def test_a_crash_while_writing_the_file_loses_nothing_and_the_next_run_starts_over(settings, archive_dir, tmp_path):
    application = free_application()
    events_add(application, OLD, 3)
    before = stored(application)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the archive directory should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "archives": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": blocked}},
    }

    with pytest.raises(OSError):
        archive_run(now=NOW)

    assert stored(application) == before
    assert Archive.objects.get().state == Archive.State.WRITING

    settings.STORAGES = {
        **settings.STORAGES,
        "archives": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": archive_dir}},
    }
    assert archive_run(now=NOW).events == 3
    assert Archive.objects.get().state == Archive.State.ARCHIVED
    assert not Event.objects.exists()


def test_a_crash_between_writing_and_deleting_is_finished_by_the_next_run_without_a_second_file():
    application = free_application()
    events_add(application, OLD, 3)
    before = stored(application)
    archive_write(
        application=application, start=archive.day_start(OLD), end=archive.day_start(OLD) + timedelta(days=1)
    )  # and the process dies here

    archive_run(now=NOW)

    archived = Archive.objects.get()
    assert (archived.state, archived.row_count) == (Archive.State.ARCHIVED, 3)
    assert not Event.objects.exists()
    assert archive_restore(archive=archived) == 3
    assert stored(application) == before


@pytest.fixture
def failing_deletes():
    """Makes PostgreSQL abort any delete from the events table, as a crash in the middle would."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION pg_temp.crash() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'injected crash'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER crash BEFORE DELETE ON ingest_event FOR EACH ROW EXECUTE FUNCTION pg_temp.crash()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS crash ON ingest_event")


def test_a_crash_while_deleting_rolls_back_and_the_next_run_deletes_each_event_once(failing_deletes):
    application = free_application()
    events_add(application, OLD, 3)
    before = stored(application)

    with pytest.raises(DatabaseError, match="injected crash"):
        archive_run(now=NOW)

    assert stored(application) == before
    assert Archive.objects.get().state == Archive.State.WRITTEN
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER crash ON ingest_event")

    assert archive_run(now=NOW).events == 3
    archived = Archive.objects.get()  # the file already written, retired; no second one
    assert (archived.state, archived.row_count) == (Archive.State.ARCHIVED, 3)
    assert not Event.objects.exists()


def test_a_file_that_does_not_match_its_manifest_is_never_trusted_to_delete(archive_dir):
    application = free_application()
    events_add(application, OLD, 3)
    before = stored(application)
    written = archive_write(
        application=application, start=archive.day_start(OLD), end=archive.day_start(OLD) + timedelta(days=1)
    )
    path = archive_dir / written.path
    path.write_bytes(path.read_bytes()[:-5])

    result = archive_run(now=NOW)

    assert result.failed == 1
    assert stored(application) == before
    assert not Archive.objects.filter(pk=written.pk).exists()
    assert archive_run(now=NOW).events == 3
    assert not Event.objects.exists()


def test_restore_brings_every_column_back_and_a_second_restore_adds_nothing():
    application = free_application()
    events_add(application, OLD, 4)
    before = stored(application)
    archive_run(now=NOW)
    archived = Archive.objects.get()

    assert archive_restore(archive=archived) == 4
    assert stored(application) == before
    assert archive_restore(archive=archived) == 0
    assert stored(application) == before
    assert Archive.objects.get().state == Archive.State.RESTORED


def test_restored_events_stay_for_the_hold_then_leave_again_without_a_second_archive(settings):
    settings.ARCHIVE_RESTORE_HOLD_DAYS = 7
    application = free_application()
    events_add(application, OLD, 2)
    archive_run(now=NOW)
    archive_restore(archive=Archive.objects.get())

    assert archive_run(now=NOW + timedelta(days=1)).events == 0
    assert Event.objects.count() == 2

    archive_run(now=NOW + timedelta(days=8))
    assert not Event.objects.exists()
    assert Archive.objects.get().state == Archive.State.ARCHIVED


def test_a_month_wholly_past_retention_is_dropped_as_a_partition():
    month = datetime(2020, 1, 1, tzinfo=UTC)
    partitions.partition_create(month=month)
    application = free_application()
    events_add(application, month + timedelta(days=3), 2)
    events_add(application, month + timedelta(days=20), 3)
    before = stored(application)

    result = archive_run(now=NOW)

    assert result.partitions_dropped == ["ingest_event_p2020_01"]
    assert "ingest_event_p2020_01" not in {p.name for p in partitions.partitions_list()}
    assert sorted(Archive.objects.values_list("row_count", "state")) == [(2, "archived"), (3, "archived")]
    for archived in Archive.objects.all():
        archive_restore(archive=archived)
    assert stored(application) == before


def test_a_new_partition_takes_its_rows_from_the_default_partition():
    application = free_application()
    month = datetime(2019, 6, 1, tzinfo=UTC)
    events_add(application, month + timedelta(days=2), 2)
    before = stored(application)

    partitions.partition_create(month=month)

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ingest_event_p2019_06")
        assert cursor.fetchone()[0] == 2
    assert stored(application) == before


def test_partitions_are_created_ahead_and_only_once():
    created = partitions.partitions_ensure(months_ahead=5, now=datetime(2031, 3, 15, tzinfo=UTC))

    assert [p.name for p in created] == [f"ingest_event_p2031_{m:02}" for m in range(3, 9)]
    assert partitions.partitions_ensure(months_ahead=5, now=datetime(2031, 3, 15, tzinfo=UTC)) == []


def test_deleting_an_application_deletes_its_archive_files(archive_dir, django_capture_on_commit_callbacks):
    application, other = free_application(), free_application()
    events_add(application, OLD, 2)
    events_add(other, OLD, 2)
    archive_run(now=NOW)
    kept = Archive.objects.get(application=other)

    with django_capture_on_commit_callbacks(execute=True):
        application_delete(application=application)

    assert sorted(p.relative_to(archive_dir).as_posix() for p in archive_dir.rglob("*.gz*")) == [
        kept.path,
        kept.manifest_path,
    ]


def test_archives_are_listed_per_organization_only():
    mine, theirs = free_application(), free_application()
    events_add(mine, OLD, 1)
    events_add(theirs, OLD, 1)
    archive_run(now=NOW)

    listed = archive.archives_in_range(organization=mine.organization, since=OLD - timedelta(days=1), until=NOW)

    assert [a.application_id for a in listed] == [mine.pk]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_busy_month_is_not_dropped_under_a_reader_and_goes_whole_next_run():
    month = datetime(2020, 2, 1, tzinfo=UTC)
    partitions.partition_create(month=month)
    application = free_application()
    events_add(application, month + timedelta(days=3), 2)
    settings = connection.settings_dict
    reader = psycopg.connect(
        dbname=settings["NAME"],
        host=settings["HOST"],
        port=settings["PORT"],
        user=settings["USER"],
        password=settings["PASSWORD"],
    )
    reader.execute("SELECT count(*) FROM ingest_event")  # an export still reading, in its transaction

    try:
        busy = archive_run(now=NOW)
    finally:
        reader.close()

    assert busy.partitions_dropped == [] and busy.events == 0
    assert Event.objects.count() == 2 and Archive.objects.get().state == Archive.State.WRITTEN
    assert archive_run(now=NOW).partitions_dropped == ["ingest_event_p2020_02"]
    assert not Event.objects.exists() and Archive.objects.get().state == Archive.State.ARCHIVED


def test_partitions_and_archives_have_default_schedules_of_registered_tasks():
    from django_celery_beat.models import PeriodicTask

    from ingest import tasks as _registers_the_tasks  # noqa: F401
    from telemetry.celery import app

    tasks = dict(PeriodicTask.objects.values_list("task", "interval__every"))

    assert (tasks["ingest.tasks.partitions_ensure"], tasks["ingest.tasks.archive_run"]) == (86400, 3600)
    assert {"ingest.tasks.partitions_ensure", "ingest.tasks.archive_run"} <= set(app.tasks)


def test_the_archive_task_archives_as_the_job_does():
    from ingest.tasks import archive_run as archive_task

    application = free_application()
    events_add(application, NOW - timedelta(days=45), 2)

    assert archive_task() == 2
    assert Archive.objects.get().state == Archive.State.ARCHIVED

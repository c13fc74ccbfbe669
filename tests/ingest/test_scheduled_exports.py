"""Scheduled exports: each organization's events of a UTC day, a file per application and format on
the archive storage (a local directory here; S3 in test_scheduled_exports_s3.py), with manifests."""

import gzip
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.models import Membership
from ingest.models import Event, ExportRun, ExportSchedule
from ingest.retention.archive import archive_run, day_start
from ingest.retention.erasure import user_events_erase
from ingest.retention.exports import ParquetWriter, parquet_schema
from ingest.retention.scheduled_exports import export_runs_redo, scheduled_exports_run
from tests.conftest import USER_ID
from tests.factories import ApplicationFactory, UserFactory
from tests.ingest.archive_helpers import events_add, export_folder_block, free_application

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("archive_dir")]

NOW = day_start(datetime.now(UTC)) + timedelta(hours=3)
TODAY = day_start(NOW)
DAY = TODAY - timedelta(days=3)
FORMATS = ["ndjson.gz", "parquet"]


def schedule_for(
    application, *, start=DAY, formats=FORMATS, prefix="daily", applications=(), **fields
) -> ExportSchedule:
    """A schedule as the admin saves it: of the ``applications`` chosen, or of all of them."""
    schedule = ExportSchedule.objects.create(
        organization=application.organization,
        formats=formats,
        prefix=prefix,
        start_date=start.date(),
        every_application=not applications,
        **fields,
    )
    schedule.applications.set(applications)
    return schedule


def file_bytes(run: ExportRun) -> bytes:
    with storages["archives"].open(run.path, "rb") as stored:
        return stored.read()


def manifest(run: ExportRun) -> dict:
    with storages["archives"].open(f"{run.path}.manifest.json", "rb") as stored:
        return json.loads(stored.read())


def run_of(application, day, fmt) -> ExportRun:
    return ExportRun.objects.get(application=application, day=day.date(), format=fmt)


def ndjson_records(run: ExportRun) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(file_bytes(run)).decode().splitlines()]


def parquet_records(run: ExportRun) -> list[dict]:
    table = pq.read_table(io.BytesIO(file_bytes(run)))
    assert table.schema.equals(parquet_schema())
    return [{**row, "data": json.loads(row["data"])} for row in table.to_pylist()]


def stored_records(application, day, *, as_text: bool) -> list[dict]:
    """The application's events of ``day`` as the files must hold them, by timestamp and id."""
    events = Event.objects.filter(
        application=application, timestamp__gte=day, timestamp__lt=day + timedelta(days=1)
    ).order_by("timestamp", "id")
    moment = (lambda value: value.isoformat()) if as_text else (lambda value: value)
    return [
        {
            "application": application.public_id,
            "event_id": str(event.event_id),
            "schema_version": event.schema_version,
            "user_id": event.user_id,
            "session_id": event.session_id,
            "event_type": event.event_type,
            "category": event.category,
            "data": event.data,
            "timestamp": moment(event.timestamp),
            "received_at": moment(event.received_at),
            "service_name": event.service_name,
            "service_version": event.service_version,
            "service_language": event.service_language,
            "sdk_version": event.sdk_version,
        }
        for event in events
    ]


def test_a_day_is_written_per_application_and_format_and_decodes_to_the_events_stored():
    application = ApplicationFactory()
    events_add(application, DAY + timedelta(hours=5), 4)
    events_add(application, DAY - timedelta(minutes=1), 1)  # the day before, not due: before the start
    events_add(application, DAY + timedelta(days=1, minutes=1), 2)
    schedule_for(application, start=DAY, prefix="warehouse/telemetry")

    result = scheduled_exports_run(now=NOW)

    assert (result.files, result.failed, result.more) == (6, 0, False)  # three ended days, two formats
    ndjson, parquet = run_of(application, DAY, "ndjson.gz"), run_of(application, DAY, "parquet")
    org, app = application.organization.public_id, application.public_id
    assert ndjson.path == f"exports/{org}/warehouse/telemetry/{app}/{DAY:%Y/%m/%d}/events.ndjson.gz"
    assert parquet.path == f"exports/{org}/warehouse/telemetry/{app}/{DAY:%Y/%m/%d}/events.parquet"
    assert ndjson_records(ndjson) == stored_records(application, DAY, as_text=True)
    assert parquet_records(parquet) == stored_records(application, DAY, as_text=False)
    assert len(ndjson_records(ndjson)) == 4
    assert [run.row_count for run in ExportRun.objects.filter(format="parquet").order_by("day")] == [4, 2, 0]


def test_each_file_has_a_manifest_whose_figures_match_it():
    application = ApplicationFactory()
    events_add(application, DAY + timedelta(hours=1), 3)
    schedule_for(application, start=DAY)

    scheduled_exports_run(now=NOW)

    for fmt in FORMATS:
        run = run_of(application, DAY, fmt)
        content = file_bytes(run)
        assert run.state == ExportRun.State.SUCCEEDED and run.attempts == 1
        assert (run.row_count, run.size_bytes, run.checksum) == (
            3,
            len(content),
            f"sha256:{hashlib.sha256(content).hexdigest()}",
        )
        assert manifest(run) == {
            "format": fmt,
            "organization": application.organization.public_id,
            "application": application.public_id,
            "start": DAY.isoformat(),
            "end": (DAY + timedelta(days=1)).isoformat(),
            "rows": 3,
            "bytes": len(content),
            "checksum": run.checksum,
            "columns": [field.name for field in parquet_schema()],
        }


def test_the_ndjson_file_holds_exactly_what_export_events_gives_for_the_day(tmp_path):
    application = ApplicationFactory()
    events_add(application, DAY + timedelta(hours=2), 5)
    events_add(ApplicationFactory(organization=application.organization), DAY + timedelta(hours=2), 2)
    schedule_for(application, start=DAY)
    output = tmp_path / "day.ndjson"

    scheduled_exports_run(now=NOW)
    call_command(
        "export_events",
        "--org",
        application.organization.public_id,
        "--app",
        application.public_id,
        "--since",
        f"{DAY:%Y-%m-%d}",
        "--until",
        f"{DAY + timedelta(days=1):%Y-%m-%d}",
        "--format",
        "ndjson",
        "--output",
        str(output),
        stderr=io.StringIO(),
    )

    assert gzip.decompress(file_bytes(run_of(application, DAY, "ndjson.gz"))) == output.read_bytes()


def test_rerunning_a_day_writes_the_same_bytes_and_checksums():
    application = ApplicationFactory()
    events_add(application, DAY + timedelta(hours=7), 20)
    schedule_for(application, start=DAY)
    scheduled_exports_run(now=NOW)
    first = {
        fmt: (file_bytes(run_of(application, DAY, fmt)), manifest(run_of(application, DAY, fmt))) for fmt in FORMATS
    }

    export_runs_redo(runs=ExportRun.objects.filter(day=DAY.date()))
    assert scheduled_exports_run(now=NOW + timedelta(hours=5)).files == 2

    for fmt in FORMATS:
        run = run_of(application, DAY, fmt)
        assert (file_bytes(run), manifest(run)) == first[fmt]
        assert run.checksum == first[fmt][1]["checksum"]
    # gzip's header: no file name flag, and a modification time of 0.
    assert first["ndjson.gz"][0][3:8] == b"\x00\x00\x00\x00\x00"
    assert set(pq.ParquetFile(io.BytesIO(first["parquet"][0])).metadata.metadata) == {b"ARROW:schema"}


def test_a_day_archived_since_it_was_exported_is_read_from_the_archive_into_the_same_bytes():
    application = free_application()  # 30 days of retention
    old_day = TODAY - timedelta(days=40)
    events_add(application, old_day + timedelta(hours=9), 6)
    schedule_for(application, start=old_day, formats=FORMATS)
    scheduled_exports_run(now=NOW)
    before = {fmt: file_bytes(run_of(application, old_day, fmt)) for fmt in FORMATS}

    assert archive_run(now=NOW).events == 6
    assert not Event.objects.filter(application=application).exists()
    export_runs_redo(runs=ExportRun.objects.filter(day=old_day.date()))
    scheduled_exports_run(now=NOW)

    for fmt in FORMATS:
        run = run_of(application, old_day, fmt)
        assert (run.state, run.row_count, file_bytes(run)) == (ExportRun.State.SUCCEEDED, 6, before[fmt])


def test_missed_days_are_caught_up_oldest_first_a_bounded_number_of_days_a_pass(settings):
    settings.EXPORTS_DAYS_PER_RUN = 2
    application = ApplicationFactory()
    first_day = TODAY - timedelta(days=5)
    for offset in range(5):
        events_add(application, first_day + timedelta(days=offset, hours=1), offset + 1)
    schedule_for(application, start=first_day, formats=["ndjson.gz"])

    passes = [scheduled_exports_run(now=NOW) for _ in range(4)]

    assert [(result.files, result.more) for result in passes] == [(2, True), (2, True), (1, False), (0, False)]
    written = ExportRun.objects.filter(state=ExportRun.State.SUCCEEDED).order_by("day")
    assert [(run.day, run.row_count) for run in written] == [
        ((first_day + timedelta(days=offset)).date(), offset + 1) for offset in range(5)
    ]


def test_a_day_is_due_only_once_it_has_ended():
    application = ApplicationFactory()
    events_add(application, TODAY + timedelta(minutes=30), 2)
    schedule_for(application, start=TODAY)

    assert scheduled_exports_run(now=NOW).files == 0
    assert scheduled_exports_run(now=TODAY + timedelta(days=1, minutes=20)).files == 2


def test_a_failed_write_is_recorded_and_retried_after_its_backoff(archive_dir):
    application = ApplicationFactory()
    events_add(application, DAY + timedelta(hours=1), 3)
    schedule_for(application, start=DAY, formats=["parquet"])
    blocker = export_folder_block(archive_dir, application)

    failed = scheduled_exports_run(now=NOW)
    run = run_of(application, DAY, "parquet")
    assert (failed.files, failed.failed) == (0, 3)
    assert (run.state, run.attempts, run.next_attempt_at) == (ExportRun.State.FAILED, 1, NOW + timedelta(hours=1))
    assert "Error" in run.error and run.path == ""

    assert scheduled_exports_run(now=NOW + timedelta(minutes=30)).failed == 0  # still backing off
    blocker.unlink()
    retried = scheduled_exports_run(now=NOW + timedelta(hours=1))

    run.refresh_from_db()
    assert (retried.files, retried.failed) == (3, 0)
    assert (run.state, run.attempts, run.row_count, run.error, run.next_attempt_at) == (
        ExportRun.State.SUCCEEDED,
        2,
        3,
        "",
        None,
    )
    assert pq.read_table(io.BytesIO(file_bytes(run))).num_rows == 3


def test_a_file_that_keeps_failing_backs_off_longer_then_waits_for_a_re_export(archive_dir, settings):
    settings.EXPORTS_MAX_ATTEMPTS = 3
    application = ApplicationFactory()
    schedule_for(application, start=TODAY - timedelta(days=1), formats=["ndjson.gz"])
    blocker = export_folder_block(archive_dir, application)

    scheduled_exports_run(now=NOW)
    scheduled_exports_run(now=NOW + timedelta(hours=1))
    run = ExportRun.objects.get()
    assert (run.attempts, run.next_attempt_at) == (2, NOW + timedelta(hours=3))
    scheduled_exports_run(now=NOW + timedelta(hours=3))
    run.refresh_from_db()
    assert (run.state, run.attempts, run.next_attempt_at) == (ExportRun.State.FAILED, 3, None)

    blocker.unlink()
    assert scheduled_exports_run(now=NOW + timedelta(hours=10)).files == 0
    export_runs_redo(runs=ExportRun.objects.all())
    assert scheduled_exports_run(now=NOW + timedelta(hours=10)).files == 1
    run.refresh_from_db()
    assert (run.state, run.attempts) == (ExportRun.State.SUCCEEDED, 1)


def test_an_export_holds_only_its_own_organization_events():
    mine, theirs = ApplicationFactory(), ApplicationFactory()
    events_add(mine, DAY + timedelta(hours=1), 2, user_id="client_" + "a" * 64)
    events_add(theirs, DAY + timedelta(hours=1), 3, user_id="client_" + "b" * 64)
    # The same prefix for both, and an application of the other organization slipped into the subset.
    schedule_for(mine, start=DAY, formats=["ndjson.gz"], applications=[mine, theirs])
    schedule_for(theirs, start=DAY, formats=["ndjson.gz"])

    scheduled_exports_run(now=NOW)

    mine_run, theirs_run = run_of(mine, DAY, "ndjson.gz"), run_of(theirs, DAY, "ndjson.gz")
    assert {record["user_id"] for record in ndjson_records(mine_run)} == {"client_" + "a" * 64}
    assert {record["user_id"] for record in ndjson_records(theirs_run)} == {"client_" + "b" * 64}
    assert mine_run.path != theirs_run.path
    assert set(ExportRun.objects.filter(organization=mine.organization).values_list("application", flat=True)) == {
        mine.pk
    }


def test_a_schedule_with_chosen_applications_exports_those_only():
    chosen = ApplicationFactory()
    other = ApplicationFactory(organization=chosen.organization)
    for application in (chosen, other):
        events_add(application, DAY + timedelta(hours=1), 1)
    schedule_for(chosen, start=DAY, formats=["parquet"], applications=[chosen])

    scheduled_exports_run(now=NOW)

    assert set(ExportRun.objects.values_list("application", flat=True)) == {chosen.pk}


def test_a_schedule_whose_chosen_applications_are_all_deleted_exports_nothing():
    chosen = ApplicationFactory()
    other = ApplicationFactory(organization=chosen.organization)
    events_add(other, DAY + timedelta(hours=1), 1)
    schedule = schedule_for(chosen, start=DAY, formats=["ndjson.gz"], applications=[chosen])
    chosen.delete()

    assert scheduled_exports_run(now=NOW).files == 0
    assert not ExportRun.objects.filter(schedule=schedule).exists()


def test_a_disabled_schedule_writes_nothing():
    application = ApplicationFactory()
    schedule_for(application, start=DAY, enabled=False)

    assert scheduled_exports_run(now=NOW).files == 0
    assert not ExportRun.objects.exists()


@pytest.mark.parametrize(
    "prefix",
    [
        "../up",
        "/absolute",
        "a/../b",
        "a//b",
        "trailing/",
        "x..y",
        "with space",
        "back\\slash",
        ".hidden",
        "a/./b",
        "",
        "ünï",
    ],
)
def test_a_prefix_that_could_leave_the_organization_folder_is_refused(prefix):
    schedule = ExportSchedule(organization=ApplicationFactory().organization, formats=FORMATS, prefix=prefix)

    with pytest.raises(ValidationError) as refused:
        schedule.full_clean()

    assert "prefix" in refused.value.message_dict


@pytest.mark.parametrize("prefix", ["daily", "warehouse/telemetry", "v1.2/raw_events-x", "_staging"])
def test_a_plain_folder_path_is_a_valid_prefix(prefix):
    ExportSchedule(organization=ApplicationFactory().organization, formats=FORMATS, prefix=prefix).full_clean()


def test_parquet_is_written_in_row_groups_of_bounded_size():
    application = ApplicationFactory()
    events = events_add(application, DAY, 7)
    rows = [
        (
            str(event.event_id),
            event.schema_version,
            event.user_id,
            event.session_id,
            event.event_type,
            event.category,
            json.dumps(event.data),
            event.timestamp,
            event.received_at,
            event.service_name,
            event.service_version,
            event.service_language,
            event.sdk_version,
        )
        for event in events
    ]
    out = io.BytesIO()

    writer = ParquetWriter(out, row_group=3)
    writer.rows(application, rows[:2])
    writer.rows(application, rows[2:])
    writer.close()

    parquet = pq.ParquetFile(io.BytesIO(out.getvalue()))
    assert [parquet.metadata.row_group(n).num_rows for n in range(parquet.num_row_groups)] == [3, 3, 1]
    assert parquet.read().column("event_id").to_pylist() == [str(event.event_id) for event in events]


def test_an_empty_day_gives_files_with_no_rows_and_the_full_schema():
    application = ApplicationFactory()
    schedule_for(application, start=TODAY - timedelta(days=1))

    scheduled_exports_run(now=NOW)

    day = TODAY - timedelta(days=1)
    assert gzip.decompress(file_bytes(run_of(application, day, "ndjson.gz"))) == b""
    table = pq.read_table(io.BytesIO(file_bytes(run_of(application, day, "parquet"))))
    assert (table.num_rows, table.schema.equals(parquet_schema())) == (0, True)
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")


def test_the_export_days_command_writes_days_again_even_before_the_schedule_started():
    application = ApplicationFactory()
    early = DAY - timedelta(days=10)
    events_add(application, early + timedelta(hours=4), 2)
    schedule_for(application, start=DAY, formats=["ndjson.gz"])
    scheduled_exports_run(now=NOW)
    written_at = run_of(application, DAY, "ndjson.gz").finished_at
    errors = io.StringIO()

    call_command(
        "export_days",
        "--org",
        application.organization.public_id,
        "--since",
        f"{early:%Y-%m-%d}",
        "--until",
        f"{early + timedelta(days=1):%Y-%m-%d}",
        stderr=errors,
    )
    call_command(
        "export_days",
        "--org",
        application.organization.public_id,
        "--app",
        application.public_id,
        "--since",
        f"{DAY:%Y-%m-%d}",
        "--until",
        f"{DAY + timedelta(days=1):%Y-%m-%d}",
        stderr=errors,
    )

    assert run_of(application, early, "ndjson.gz").row_count == 2
    assert len(ndjson_records(run_of(application, early, "ndjson.gz"))) == 2
    assert run_of(application, DAY, "ndjson.gz").finished_at > written_at
    assert "1 files written." in errors.getvalue()


def test_a_day_before_the_start_asked_for_again_is_retried_when_it_fails(archive_dir):
    application = ApplicationFactory()
    early = DAY - timedelta(days=10)
    schedule_for(application, start=DAY, formats=["ndjson.gz"])
    scheduled_exports_run(now=NOW)
    blocker = archive_dir / "exports" / application.organization.public_id / "daily" / application.public_id
    blocker.rename(blocker.with_name("moved"))
    blocker.write_text("in the way")

    with pytest.raises(CommandError, match="1 files failed"):
        call_command(
            "export_days",
            "--org",
            application.organization.public_id,
            "--since",
            f"{early:%Y-%m-%d}",
            "--until",
            f"{early + timedelta(days=1):%Y-%m-%d}",
            stderr=io.StringIO(),
        )
    blocker.unlink()
    retried = scheduled_exports_run(now=run_of(application, early, "ndjson.gz").next_attempt_at)

    run = run_of(application, early, "ndjson.gz")
    assert (retried.files, run.state, run.attempts) == (1, ExportRun.State.SUCCEEDED, 2)


def test_export_days_refuses_an_organization_without_an_enabled_schedule():
    application = ApplicationFactory()
    schedule_for(application, enabled=False)

    with pytest.raises(CommandError, match="no enabled export schedule"):
        call_command(
            "export_days",
            "--org",
            application.organization.public_id,
            "--since",
            f"{DAY:%Y-%m-%d}",
            "--until",
            f"{DAY + timedelta(days=1):%Y-%m-%d}",
            stderr=io.StringIO(),
        )
    assert not ExportRun.objects.exists()


def test_scheduled_exports_have_an_hourly_schedule_of_a_registered_task():
    from django_celery_beat.models import PeriodicTask

    from ingest import tasks
    from telemetry.celery import app

    application = ApplicationFactory()
    events_add(application, TODAY - timedelta(hours=20), 1)
    schedule_for(application, start=TODAY - timedelta(days=1), formats=["parquet"])

    assert PeriodicTask.objects.get(task="ingest.tasks.scheduled_exports_run").interval.every == 3600
    assert "ingest.tasks.scheduled_exports_run" in app.tasks
    assert tasks.scheduled_exports_run() == 1


def member(application, role=Membership.Role.ADMIN):
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=application.organization, role=role)
    return user


def test_members_see_only_their_organization_runs_and_schedules_in_the_admin(client):
    mine, theirs = ApplicationFactory(name="Mine"), ApplicationFactory(name="Theirs")
    schedule_for(mine, start=DAY, prefix="mine-folder")
    schedule_for(theirs, start=DAY, prefix="their-folder")
    scheduled_exports_run(now=NOW)
    client.force_login(member(mine, Membership.Role.VIEWER))

    runs = client.get(reverse("admin:ingest_exportrun_changelist")).content.decode()
    schedules = client.get(reverse("admin:ingest_exportschedule_changelist")).content.decode()
    my_run = ExportRun.objects.filter(application=mine).first()
    their_run = ExportRun.objects.filter(application=theirs).first()

    assert "Mine" in runs and "Theirs" not in runs
    assert "mine-folder" in schedules and "their-folder" not in schedules
    assert client.get(reverse("admin:ingest_exportrun_change", args=[my_run.pk])).status_code == 200
    assert client.get(reverse("admin:ingest_exportrun_change", args=[their_run.pk])).status_code == 404


def test_a_manager_re_exports_from_the_admin_and_only_their_own_files(client):
    mine, theirs = ApplicationFactory(), ApplicationFactory()
    schedule_for(mine, start=DAY, formats=["ndjson.gz"])
    schedule_for(theirs, start=DAY, formats=["ndjson.gz"])
    scheduled_exports_run(now=NOW)
    client.force_login(member(mine))

    response = client.post(
        reverse("admin:ingest_exportrun_changelist"),
        {"action": "reexport_selected", "_selected_action": list(ExportRun.objects.values_list("pk", flat=True))},
    )

    assert response.status_code == 302
    assert set(ExportRun.objects.filter(state=ExportRun.State.PENDING).values_list("application", flat=True)) == {
        mine.pk
    }
    assert not ExportRun.objects.filter(application=theirs).exclude(state=ExportRun.State.SUCCEEDED).exists()


def test_the_admin_form_makes_a_schedule_of_the_manager_organization_only(client):
    mine, theirs = ApplicationFactory(), ApplicationFactory()
    client.force_login(member(mine))
    url = reverse("admin:ingest_exportschedule_add")
    form = {
        "organization": mine.organization.pk,
        "enabled": "on",
        "formats": ["ndjson.gz", "parquet"],
        "prefix": "nightly/raw",
        "start_date": f"{DAY:%Y-%m-%d}",
    }

    refused = client.post(url, {**form, "applications": [theirs.pk]})
    wrong_prefix = client.post(url, {**form, "prefix": "../theirs"})
    other_organization = client.post(url, {**form, "organization": theirs.organization.pk})
    created = client.post(url, {**form, "applications": [mine.pk]})

    assert refused.status_code == wrong_prefix.status_code == other_organization.status_code == 200
    assert created.status_code == 302
    schedule = ExportSchedule.objects.get()
    assert (
        schedule.organization,
        schedule.formats,
        schedule.prefix,
        list(schedule.applications.all()),
        schedule.every_application,
    ) == (mine.organization, ["ndjson.gz", "parquet"], "nightly/raw", [mine], False)


def test_a_viewer_cannot_re_export(client):
    application = ApplicationFactory()
    schedule_for(application, start=DAY, formats=["parquet"])
    scheduled_exports_run(now=NOW)
    client.force_login(member(application, Membership.Role.VIEWER))

    client.post(
        reverse("admin:ingest_exportrun_changelist"),
        {"action": "reexport_selected", "_selected_action": list(ExportRun.objects.values_list("pk", flat=True))},
    )

    assert set(ExportRun.objects.values_list("state", flat=True)) == {ExportRun.State.SUCCEEDED}


def test_a_manager_opens_their_schedule_and_not_another_organization(client):
    mine, theirs = ApplicationFactory(), ApplicationFactory()
    my_schedule, their_schedule = schedule_for(mine), schedule_for(theirs)
    client.force_login(member(mine))

    page = client.get(reverse("admin:ingest_exportschedule_change", args=[my_schedule.pk]))

    assert page.status_code == 200
    assert f"exports/{mine.organization.public_id}/daily/&lt;app id&gt;/YYYY/MM/DD/" in page.content.decode()
    assert client.get(reverse("admin:ingest_exportschedule_change", args=[their_schedule.pk])).status_code == 404
    assert client.get(reverse("admin:ingest_exportschedule_add")).status_code == 200


def test_erasing_a_user_rewrites_the_export_files_of_the_days_that_held_them_and_only_those():
    application = ApplicationFactory()
    gone = "client_" + "9" * 64
    events_add(application, DAY + timedelta(hours=2), 3)
    events_add(application, DAY + timedelta(hours=4), 2, user_id=gone)
    events_add(application, DAY + timedelta(days=1, hours=2), 1)  # a day without the user
    schedule_for(application, start=DAY, formats=["ndjson.gz"])
    scheduled_exports_run(now=NOW)
    untouched = file_bytes(run_of(application, DAY + timedelta(days=1), "ndjson.gz"))

    erasure = user_events_erase(application=application, user_id=gone, via="command")

    assert erasure.export_files_to_rewrite == 1
    assert run_of(application, DAY, "ndjson.gz").state == ExportRun.State.PENDING
    assert scheduled_exports_run(now=NOW).files == 1
    rewritten = run_of(application, DAY, "ndjson.gz")
    assert rewritten.state == ExportRun.State.SUCCEEDED and rewritten.row_count == 3
    assert {record["user_id"] for record in ndjson_records(rewritten)} == {USER_ID}
    assert manifest(rewritten)["rows"] == 3
    assert file_bytes(run_of(application, DAY + timedelta(days=1), "ndjson.gz")) == untouched

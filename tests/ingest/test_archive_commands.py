"""The operators' commands: restore_archive, export_events and archive_events."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from ingest.models import Archive, Event
from ingest.retention.archive import archive_run
from tests.ingest.archive_helpers import events_add, free_application, stored

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("archive_dir")]

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=2)


def day(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d}"


def test_restore_archive_restores_the_range_once_and_says_so(capsys):
    application = free_application()
    events_add(application, OLD, 3)
    before = stored(application)
    archive_run(now=NOW)
    arguments = [
        "--org",
        application.organization.public_id,
        "--since",
        day(OLD),
        "--until",
        day(OLD + timedelta(days=1)),
    ]

    call_command("restore_archive", *arguments)
    assert "1 archives read, 3 events restored" in capsys.readouterr().out
    call_command("restore_archive", *arguments)

    assert "0 events restored (3 were already in the database)" in capsys.readouterr().out
    assert stored(application) == before


def test_restore_archive_does_not_reach_another_organizations_archives():
    mine, theirs = free_application(), free_application()
    events_add(theirs, OLD, 2)
    archive_run(now=NOW)

    with pytest.raises(CommandError, match="No application"):
        call_command(
            "restore_archive",
            "--org",
            mine.organization.public_id,
            "--app",
            theirs.public_id,
            "--since",
            day(OLD),
            "--until",
            day(NOW),
        )
    call_command("restore_archive", "--org", mine.organization.public_id, "--since", day(OLD), "--until", day(NOW))

    assert not Event.objects.exists()


def test_restore_archive_stops_at_a_file_that_does_not_match_its_manifest(tmp_path):
    application = free_application()
    events_add(application, OLD, 3)
    archive_run(now=NOW)
    broken = Archive.objects.get()
    (tmp_path / "archives" / broken.path).write_bytes(b"damaged")

    with pytest.raises(CommandError, match=f"Archive #{broken.pk} does not read back"):
        call_command(
            "restore_archive", "--org", application.organization.public_id, "--since", day(OLD), "--until", day(NOW)
        )
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--org", "nope", "--since", "2026-01-01", "--until", "2026-02-01"], "No organization"),
        (["--since", "yesterday", "--until", "2026-02-01"], "not a date"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "before --until"),
    ],
)
def test_restore_archive_explains_bad_arguments(arguments, message):
    application = free_application()
    if "--org" not in arguments:
        arguments = ["--org", application.organization.public_id, *arguments]

    with pytest.raises(CommandError, match=message):
        call_command("restore_archive", *arguments)


@pytest.fixture
def archived_and_stored():
    application = free_application()
    events_add(application, OLD, 2)
    archive_run(now=NOW)
    events_add(application, RECENT, 1)
    return application


def test_export_events_writes_archived_and_stored_events_as_csv(archived_and_stored, tmp_path):
    output = tmp_path / "export.csv"
    call_command(
        "export_events",
        "--org",
        archived_and_stored.organization.public_id,
        "--since",
        day(OLD - timedelta(days=1)),
        "--until",
        day(NOW + timedelta(days=1)),
        "--output",
        str(output),
        stderr=io.StringIO(),
    )

    rows = list(csv.DictReader(output.open(newline="")))
    assert len(rows) == 3 and Archive.objects.get().state == Archive.State.ARCHIVED
    assert {row["application"] for row in rows} == {archived_and_stored.public_id}
    assert json.loads(rows[0]["data"]) == {"n": 0, "text": 'a "quoted", multi\nline value'}
    assert rows[0]["timestamp"] < rows[2]["timestamp"]


def test_export_events_writes_one_json_object_a_line(archived_and_stored, tmp_path):
    output = tmp_path / "export.ndjson"
    call_command(
        "export_events",
        "--org",
        archived_and_stored.organization.public_id,
        "--app",
        archived_and_stored.public_id,
        "--since",
        day(OLD - timedelta(days=1)),
        "--until",
        day(NOW + timedelta(days=1)),
        "--format",
        "ndjson",
        "--output",
        str(output),
        stderr=io.StringIO(),
    )

    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["data"]["n"] for line in lines] == [0, 1, 0]
    assert {line["session_id"] for line in lines} == {"", None}
    assert {event["event_id"] for event in lines} >= {str(e.event_id) for e in Event.objects.all()}


def test_export_events_holds_only_the_organizations_own_events(archived_and_stored, tmp_path):
    other = free_application()
    events_add(other, OLD, 4)
    archive_run(now=NOW)
    events_add(other, RECENT, 4)
    output = tmp_path / "export.csv"

    call_command(
        "export_events",
        "--org",
        archived_and_stored.organization.public_id,
        "--since",
        day(OLD - timedelta(days=1)),
        "--until",
        day(NOW + timedelta(days=1)),
        "--output",
        str(output),
        stderr=io.StringIO(),
    )

    assert {row["application"] for row in csv.DictReader(output.open(newline=""))} == {archived_and_stored.public_id}
    with pytest.raises(CommandError, match="No application"):
        call_command(
            "export_events",
            "--org",
            archived_and_stored.organization.public_id,
            "--app",
            other.public_id,
            "--since",
            day(OLD),
            "--until",
            day(NOW),
            "--output",
            str(output),
        )


def test_archive_events_runs_the_job_and_reports(capsys):
    application = free_application()
    events_add(application, NOW - timedelta(days=45), 2)

    call_command("archive_events")

    assert "2 events archived in 1 files" in capsys.readouterr().out
    assert not Event.objects.exists()

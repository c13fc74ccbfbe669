"""Scheduled exports: an organization's events, one file per application, UTC day and format, on
the archive storage at ``exports/<org id>/<prefix>/<app id>/<YYYY>/<MM>/<DD>/events.<format>``, each
with a manifest beside it in the archive's form.

An hourly pass (``ingest.tasks.scheduled_exports_run``) writes the files that are due: for every
enabled schedule, each UTC day since its start that has ended and has no written file yet, oldest
first, at most ``EXPORTS_DAYS_PER_RUN`` days a schedule a pass (the next pass goes on). Each file is
an ``ExportRun``; one that fails is recorded and tried again 1, 2, 4 ... hours later, up to
``EXPORTS_MAX_ATTEMPTS`` attempts, and a file written is not written again unless asked for
(``export_runs_redo``).

A file holds exactly what ``export_events`` gives for that application and day, through the same
writers, from the archive for days already archived and from the events table otherwise. The same
rows give the same bytes, and so the same checksum, however often a day is written: the order is
fixed, gzip's header holds no time and no name, Parquet's no time, and the manifest no time.
"""

import hashlib
import logging
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.utils import timezone

from accounts.models import Application, Organization
from ingest.models import ExportRun, ExportSchedule
from ingest.retention.archive import (
    ArchiveCorrupt,
    advisory_lock,
    archive_lock,
    archive_storage,
    day_start,
    files_delete,
    manifest_bytes,
)
from ingest.retention.exports import FIELDS, WRITERS, application_events_write

logger = logging.getLogger(__name__)

ROOT = "exports"
# Serialises passes: two passes (a slow one and the next, or the command) never write one file at once.
LOCK_KEY = 7_391_004_013
# How long a file waits for archive work (a run, a restore, an erasure) before the pass stops; the
# next pass carries on.
ARCHIVE_LOCK_WAIT = 300
RETRY_FIRST = timedelta(hours=1)
RETRY_LONGEST = timedelta(hours=24)
_CHUNK = 1 << 20
State = ExportRun.State


def export_file_name(*, application: Application, prefix: str, day: date, fmt: str) -> str:
    """Where a scheduled file goes: under its organization's own folder, whatever prefix it chose."""
    return f"{ROOT}/{application.organization.public_id}/{prefix}/{application.public_id}/{day:%Y/%m/%d}/events.{fmt}"


def schedule_applications(schedule: ExportSchedule) -> list[Application]:
    """The applications ``schedule`` exports: those chosen, or all of its organization's; never another's."""
    applications = Application.objects.filter(organization_id=schedule.organization_id)
    if not schedule.every_application:
        applications = applications.filter(pk__in=schedule.applications.values("pk"))
    return list(applications.select_related("organization").order_by("pk"))


def schedule_formats(schedule: ExportSchedule) -> list[str]:
    return [fmt for fmt in ExportSchedule.Format.values if fmt in schedule.formats]


def _days(first: date, last: date) -> Iterable[date]:
    for offset in range((last - first).days + 1):
        yield first + timedelta(days=offset)


def exports_due(*, schedule: ExportSchedule, now: datetime) -> tuple[list[tuple[Application, date, str]], bool]:
    """The files of ``schedule`` to write now, oldest day first: ended days since its start without a
    written file, failed files whose retry time has come, and files asked for again; at most
    ``EXPORTS_DAYS_PER_RUN`` days of them. Also whether more are due after those."""
    last = (day_start(now) - timedelta(days=1)).date()
    applications, formats = schedule_applications(schedule), schedule_formats(schedule)
    if not (applications and formats):
        return [], False
    recorded = {
        (application_id, day, fmt): (state, retry_at)
        for application_id, day, fmt, state, retry_at in schedule.runs.filter(day__lte=last).values_list(
            "application_id", "day", "format", "state", "next_attempt_at"
        )
    }

    def due(application: Application, day: date, fmt: str) -> bool:
        state, retry_at = recorded.get((application.pk, day, fmt), (None, None))
        if state == State.SUCCEEDED:
            return False
        if state == State.FAILED:
            return retry_at is not None and retry_at <= now
        # Never tried, asked for again, or left running by a pass that died (passes hold LOCK_KEY).
        return True

    days = set(_days(schedule.start_date, last)) if schedule.start_date <= last else set()
    # Days before the start asked for by export_days, until they are written.
    days |= {day for (_, day, _), (state, _) in recorded.items() if state != State.SUCCEEDED}
    files, more = [], False
    taken = 0
    for day in sorted(days):
        found = [
            (application, day, fmt) for application in applications for fmt in formats if due(application, day, fmt)
        ]
        if not found:
            continue
        if taken == settings.EXPORTS_DAYS_PER_RUN:
            more = True
            break
        files += found
        taken += 1
    return files, more


def _retry_at(attempts: int, now: datetime) -> datetime | None:
    if attempts >= settings.EXPORTS_MAX_ATTEMPTS:
        return None
    return now + min(RETRY_FIRST * 2 ** (attempts - 1), RETRY_LONGEST)


def _file_store(*, application: Application, day: date, fmt: str, path: str) -> tuple[int, int, str]:
    """Writes ``application``'s events of ``day`` as ``fmt`` to ``path`` and its manifest; returns
    rows, bytes and checksum. The file is made whole on local disk first, then replaces the stored one."""
    storage = archive_storage()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    with tempfile.TemporaryFile() as spool:
        writer = WRITERS[fmt](spool)
        rows = application_events_write(application=application, since=start, until=end, writer=writer)
        writer.close()
        spool.seek(0)
        digest = hashlib.sha256()
        while chunk := spool.read(_CHUNK):
            digest.update(chunk)
        size, checksum = spool.tell(), f"sha256:{digest.hexdigest()}"
        spool.seek(0)
        # The storage keeps an existing name by saving under another: the old file goes first.
        files_delete(path)
        saved = storage.save(path, File(spool, name=path))
    if saved != path:
        raise ArchiveCorrupt(f"storage saved {path} as {saved}")
    storage.save(
        f"{path}.manifest.json",
        ContentFile(
            manifest_bytes(
                fmt=fmt,
                application=application,
                start=start,
                end=end,
                rows=rows,
                size=size,
                checksum=checksum,
                columns=["application", *FIELDS],
                created_at=None,
            )
        ),
    )
    return rows, size, checksum


def export_file_write(
    *, schedule: ExportSchedule, application: Application, day: date, fmt: str, now: datetime
) -> ExportRun:
    """Writes one scheduled file and records how it went in its ``ExportRun``; a failure is recorded
    with its error and the time of the next attempt (none once attempts run out), and not raised
    unless it is the task's soft time limit."""
    run, _ = ExportRun.objects.get_or_create(
        schedule=schedule,
        application=application,
        day=day,
        format=fmt,
        defaults={"organization_id": schedule.organization_id},
    )
    run.state, run.attempts, run.started_at, run.finished_at = State.RUNNING, run.attempts + 1, timezone.now(), None
    run.save(update_fields=["state", "attempts", "started_at", "finished_at"])
    path = export_file_name(application=application, prefix=schedule.prefix, day=day, fmt=fmt)
    try:
        run.row_count, run.size_bytes, run.checksum = _file_store(application=application, day=day, fmt=fmt, path=path)
    # Whatever went wrong (the storage, an archive that does not verify, a bad row) is this file's
    # failure, recorded and retried: it must not hold up the other files and organizations.
    except Exception as error:
        logger.exception("scheduled export %s failed", path)
        # The file may be gone or partly written: nothing of it is vouched for until a write succeeds.
        run.path, run.row_count, run.size_bytes, run.checksum = "", 0, 0, ""
        run.state, run.error = State.FAILED, f"{type(error).__name__}: {error}"[:2000]
        run.next_attempt_at = _retry_at(run.attempts, now)
        failure = error
    else:
        run.state, run.path, run.error, run.next_attempt_at = State.SUCCEEDED, path, "", None
        failure = None
    run.finished_at = timezone.now()
    run.save(
        update_fields=[
            "state",
            "path",
            "row_count",
            "size_bytes",
            "checksum",
            "error",
            "next_attempt_at",
            "finished_at",
        ]
    )
    if isinstance(failure, SoftTimeLimitExceeded):
        raise failure  # the task's time is up: recorded, and no other file is started
    return run


@dataclass
class ExportPass:
    files: int = 0
    rows: int = 0
    failed: int = 0
    busy: bool = False
    more: bool = False


def scheduled_exports_run(
    *,
    now: datetime | None = None,
    max_seconds: float | None = None,
    organization: Organization | None = None,
    wait: bool = False,
) -> ExportPass:
    """Writes the scheduled files that are due (of ``organization``'s schedules only, if given);
    see the module's docstring. Another pass in progress makes this one return at once (``busy``),
    unless ``wait``; so does archive work that holds on past ``ARCHIVE_LOCK_WAIT``. Stops starting
    files after ``max_seconds``; ``more`` says files are left for the next pass."""
    result = ExportPass()
    now = now or timezone.now()
    deadline = time.monotonic() + max_seconds if max_seconds else None
    with advisory_lock(LOCK_KEY, wait=wait) as held:
        if not held:
            result.busy = True
            return result
        schedules = ExportSchedule.objects.filter(enabled=True).select_related("organization").order_by("pk")
        if organization is not None:
            schedules = schedules.filter(organization=organization)
        for schedule in schedules:
            files, more = exports_due(schedule=schedule, now=now)
            result.more |= more
            for application, day, fmt in files:
                if deadline and time.monotonic() > deadline:
                    result.more = True
                    return result
                with archive_lock(wait=ARCHIVE_LOCK_WAIT) as archive_free:
                    if not archive_free:
                        result.busy = result.more = True
                        return result
                    run = export_file_write(schedule=schedule, application=application, day=day, fmt=fmt, now=now)
                if run.state == State.SUCCEEDED:
                    result.files += 1
                    result.rows += run.row_count
                else:
                    result.failed += 1
    return result


def export_schedule_delete(*, schedule: ExportSchedule) -> None:
    """Deletes ``schedule`` and its record of runs; the files it wrote stay on the storage."""
    schedule.delete()


def export_runs_redo(*, runs) -> int:
    """Asks for the files of ``runs`` (a queryset) again: the next pass writes them anew, with a fresh
    count of attempts. Returns how many."""
    return runs.update(state=State.PENDING, attempts=0, next_attempt_at=None, error="")


def export_days_request(
    *, organization: Organization, since: date, until: date, application: Application | None = None
) -> int:
    """Asks for the files of ``organization``'s enabled schedules of the UTC days in [since, until)
    (``application``'s only, if given) to be written again, or for the first time; returns how many."""
    requested = 0
    for schedule in organization.export_schedules.filter(enabled=True):
        applications = [app for app in schedule_applications(schedule) if application in (None, app)]
        for day in _days(since, until - timedelta(days=1)):
            for app in applications:
                for fmt in schedule_formats(schedule):
                    ExportRun.objects.update_or_create(
                        schedule=schedule,
                        application=app,
                        day=day,
                        format=fmt,
                        defaults={
                            "organization": organization,
                            "state": State.PENDING,
                            "attempts": 0,
                            "next_attempt_at": None,
                            "error": "",
                        },
                    )
                    requested += 1
    return requested

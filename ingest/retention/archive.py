"""Archive of events past their tier's retention, and restore.

An archive is one CSV.gz file of an application's events over a UTC day, with a JSON manifest
beside it, on the archive storage (a local directory, or S3-compatible object storage). Each step
leaves a state a crash cannot harm:

1. ``WRITING``: the Archive row is committed before its file is written. A crash leaves at most a
   partial file, which the next run deletes with the row before anything else; no event moved.
2. ``WRITTEN``: file and manifest are complete and recorded; the events are still in the table.
3. Retiring, in one transaction: the file is read back from the storage, its checksum and row
   count checked against the manifest, its rows loaded into a temporary table, and exactly those
   rows deleted from the events table (or, for a month wholly past retention, its partition
   dropped), and the archive marked ``ARCHIVED``. A crash rolls all of it back; the next run
   retires again.

So an event leaves the table only once it is in a verified file, and is in one file only. Rollups
are not touched: the dashboards keep the history. Archiving runs on PostgreSQL only; the embedded
SQLite default keeps every event (erasure there covers the table).
"""

import csv
import functools
import gzip
import hashlib
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from psycopg import sql

from accounts.models import Application, Organization
from ingest.models import Archive, Event
from ingest.retention import partitions

logger = logging.getLogger(__name__)

TABLE = Event._meta.db_table
COLUMNS = [f.column for f in Event._meta.concrete_fields]
FORMAT = "csv.gz"
# One PostgreSQL advisory lock serialises archive runs, restores and erasures: each sees the
# others' work whole.
LOCK_KEY = 7_391_004_011
State = Archive.State
PARTITION_LOCK_TIMEOUT = "5s"
_CHUNK = 1 << 20


class ArchiveCorrupt(Exception):
    """An archive file does not read back as its manifest says."""


@functools.cache
def storage_errors() -> tuple[type[Exception], ...]:
    """What the archive storage raises when it cannot be reached (a full disk, S3 down). botocore
    loads on first need, not in every web worker at start."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (OSError, BotoCoreError, ClientError)


def archive_storage():
    return storages["archives"]


def _on_postgresql() -> bool:
    return connection.vendor == "postgresql"


@contextmanager
def advisory_lock(key: int, *, wait: bool | float = True) -> Iterator[bool]:
    """Holds the PostgreSQL advisory lock ``key`` for this session. ``wait``: True waits for it; False
    or a number of seconds gives up at once or after them, and yields False when another process
    still holds it."""
    if not _on_postgresql():
        yield True
        return
    deadline = time.monotonic() + (0 if wait is False else wait)
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT pg_advisory_lock(%s), true" if wait is True else "SELECT pg_try_advisory_lock(%s)", [key]
            )
            held = bool(cursor.fetchone()[-1])
            if held or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def archive_lock(*, wait: bool | float = True):
    """Holds the archive lock (see ``advisory_lock``)."""
    return advisory_lock(LOCK_KEY, wait=wait)


def day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def retention_cutoff(organization: Organization, now: datetime) -> datetime:
    """Events of ``organization`` older than this (a UTC midnight) are past its tier's retention."""
    return day_start(now - timedelta(days=organization.tier.retention_days))


class _HashingWriter:
    def __init__(self, target):
        self.target, self.digest, self.size = target, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


def columns_sql(columns=COLUMNS) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def _events_query(application_id: int, start: datetime, end: datetime) -> sql.Composable:
    return sql.SQL(
        'SELECT {} FROM {} WHERE application_id = {} AND "timestamp" >= {} AND "timestamp" < {} ORDER BY id'
    ).format(columns_sql(), sql.Identifier(TABLE), sql.Literal(application_id), sql.Literal(start), sql.Literal(end))


def _copy_out(cursor, query: sql.Composable, target) -> int:
    """Streams ``query``'s rows as gzip'd CSV (PostgreSQL's, with a header) into ``target``; returns the row count."""
    # COPY hands over a row at a time: compressed a megabyte at a time, which costs a fifth as much.
    pending = bytearray()
    with (
        gzip.GzipFile(fileobj=target, mode="wb", compresslevel=6, mtime=0) as gz,
        cursor.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER true)").format(query)) as copy,
    ):
        for row in copy:
            pending += row
            if len(pending) >= _CHUNK:
                gz.write(pending)
                pending.clear()
        gz.write(pending)
    return cursor.rowcount


def manifest_bytes(
    *,
    fmt: str,
    application: Application,
    start: datetime,
    end: datetime,
    rows: int,
    size: int,
    checksum: str,
    columns: list[str],
    created_at: datetime | None,
) -> bytes:
    """A file's manifest, as written beside archives and scheduled exports. ``created_at`` None
    leaves the time out, so that writing the same file again writes the same manifest."""
    manifest = {
        "format": fmt,
        "organization": application.organization.public_id,
        "application": application.public_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "rows": rows,
        "bytes": size,
        "checksum": checksum,
        "columns": columns,
    }
    if created_at is not None:
        manifest["created_at"] = created_at.isoformat()
    return json.dumps(manifest, indent=2).encode()


def _manifest(archive: Archive) -> bytes:
    return manifest_bytes(
        fmt=FORMAT,
        application=archive.application,
        start=archive.start,
        end=archive.end,
        rows=archive.row_count,
        size=archive.size_bytes,
        checksum=archive.checksum,
        columns=COLUMNS,
        created_at=timezone.now(),
    )


def archive_file_name(application: Application, start: datetime) -> str:
    # A new name for every file written, so a rewrite never replaces a file that is still referenced.
    return (
        f"{application.organization.public_id}/{application.public_id}/{start:%Y/%m/%d}/"
        f"{start:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}.{FORMAT}"
    )


def archive_file_store(archive: Archive, cursor, query: sql.Composable) -> None:
    """Writes ``query``'s rows as ``archive``'s file and manifest, and fills in its count, size and checksum."""
    storage = archive_storage()
    with tempfile.TemporaryFile() as spool:
        writer = _HashingWriter(spool)
        archive.row_count = _copy_out(cursor, query, writer)
        archive.size_bytes, archive.checksum = writer.size, f"sha256:{writer.digest.hexdigest()}"
        spool.seek(0)
        saved = storage.save(archive.path, File(spool, name=archive.path))
    if saved != archive.path:
        raise ArchiveCorrupt(f"storage saved {archive.path} as {saved}")
    storage.save(archive.manifest_path, ContentFile(_manifest(archive)))


def files_delete(path: str) -> None:
    """Deletes an archive file and its manifest, if they are there."""
    storage = archive_storage()
    for name in (path, f"{path}.manifest.json"):
        if storage.exists(name):
            storage.delete(name)


def archive_write(*, application: Application, start: datetime, end: datetime) -> Archive | None:
    """Writes ``application``'s events over [start, end) to a new archive file (step 1 and 2 above).

    The events stay in the table. None when there are none.
    """
    archive = Archive.objects.create(
        organization_id=application.organization_id,
        application=application,
        start=start,
        end=end,
        state=State.WRITING,
        path=archive_file_name(application, start),
    )
    with transaction.atomic(), connection.cursor() as cursor:
        archive_file_store(archive, cursor.cursor, _events_query(application.pk, start, end))
    if archive.row_count == 0:
        files_delete(archive.path)
        archive.delete()
        return None
    archive.state = State.WRITTEN
    archive.save(update_fields=["state", "row_count", "size_bytes", "checksum"])
    return archive


def archive_rows_load(cursor, archive: Archive, *, append: bool = False) -> int:
    """Reads ``archive``'s file into the temporary table ``archive_rows`` (within the caller's
    transaction), checking it against its manifest and record; returns its row count."""
    storage = archive_storage()
    manifest = json.loads(storage.open(archive.manifest_path, "rb").read())
    if not append:
        cursor.execute("DROP TABLE IF EXISTS pg_temp.archive_rows")
        cursor.execute(
            sql.SQL("CREATE TEMPORARY TABLE archive_rows (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
                sql.Identifier(TABLE)
            )
        )
    with tempfile.TemporaryFile() as spool:
        digest = hashlib.sha256()
        with storage.open(archive.path, "rb") as stored:
            while chunk := stored.read(_CHUNK):
                digest.update(chunk)
                spool.write(chunk)
        checksum = f"sha256:{digest.hexdigest()}"
        if not checksum == archive.checksum == manifest["checksum"]:
            raise ArchiveCorrupt(f"{archive.path}: checksum {checksum}, manifest {manifest['checksum']}")
        spool.seek(0)
        with gzip.GzipFile(fileobj=spool, mode="rb") as gz:
            columns = next(csv.reader([gz.readline().decode()]))
            with cursor.copy(
                sql.SQL("COPY archive_rows ({}) FROM STDIN (FORMAT csv)").format(columns_sql(columns))
            ) as copy:
                while chunk := gz.read(_CHUNK):
                    copy.write(chunk)
    rows = cursor.rowcount
    if not rows == archive.row_count == manifest["rows"]:
        raise ArchiveCorrupt(f"{archive.path}: {rows} rows, manifest {manifest['rows']}")
    return rows


def checksum_failed_mark(archive: Archive) -> None:
    logger.error("archive %s does not match its manifest", archive.path)
    Archive.objects.filter(pk=archive.pk).update(checksum_ok=False, verified_at=timezone.now())


def archive_verify(*, archive: Archive) -> bool:
    """Reads ``archive``'s file back and records whether it matches its manifest."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            archive_rows_load(cursor.cursor, archive)
    except ArchiveCorrupt:
        checksum_failed_mark(archive)
        return False
    Archive.objects.filter(pk=archive.pk).update(checksum_ok=True, verified_at=timezone.now())
    return True


def archive_retire(*, archive: Archive) -> int:
    """Verifies ``archive``'s file, then deletes exactly its rows from the events table and marks it
    archived, in one transaction (step 3 above); returns how many rows went."""
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        archive_rows_load(cursor.cursor, archive)
        cursor.execute(
            f"DELETE FROM {TABLE} e USING archive_rows a WHERE e.application_id = %s "
            f'AND e."timestamp" >= %s AND e."timestamp" < %s '
            f'AND e.id = a.id AND e."timestamp" = a."timestamp"',
            [archive.application_id, archive.start, archive.end],
        )
        deleted = cursor.rowcount
        Archive.objects.filter(pk=archive.pk).update(
            state=State.ARCHIVED, archived_at=now, verified_at=now, checksum_ok=True, restored_at=None
        )
    return deleted


def _partition_retire(partition: partitions.Partition, archives: list[Archive]) -> bool:
    """Drops ``partition`` when every one of its rows is in one of ``archives`` (verified files):
    a month wholly past retention goes at once, without deleting row by row."""
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        # Dropping a partition locks the whole events table for a moment; queued behind a long reader
        # (an export, say), that moment would hold up every insert. Better to try again next run.
        cursor.execute(f"SET LOCAL lock_timeout = '{PARTITION_LOCK_TIMEOUT}'")
        # Holds off inserts into this month (an event sent very late) until the partition is gone.
        cursor.execute(f"LOCK TABLE {partition.name} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"SELECT count(*) FROM {partition.name}")
        in_table = cursor.fetchone()[0]
        if in_table != sum(archive.row_count for archive in archives):
            return False
        for number, archive in enumerate(archives):
            archive_rows_load(cursor.cursor, archive, append=number > 0)
        if archives:
            cursor.execute(
                f"SELECT count(*) FROM archive_rows a JOIN {partition.name} e "
                f'ON e.id = a.id AND e."timestamp" = a."timestamp"'
            )
            if cursor.fetchone()[0] != in_table:
                return False
        cursor.execute(f"DROP TABLE {partition.name}")
        Archive.objects.filter(pk__in=[archive.pk for archive in archives]).update(
            state=State.ARCHIVED, archived_at=now, verified_at=now, checksum_ok=True, restored_at=None
        )
    logger.info("dropped partition %s (%d events, all archived)", partition.name, in_table)
    return True


def _days_with_events(application_id: int, since: datetime | None, until: datetime) -> Iterator[datetime]:
    """The UTC days in [since, until) holding events of the application, oldest first, one index probe each."""
    low = since
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT min("timestamp") FROM {TABLE} WHERE application_id = %s '
                f'AND "timestamp" < %s' + (' AND "timestamp" >= %s' if low else ""),
                [application_id, until] + ([low] if low else []),
            )
            oldest = cursor.fetchone()[0]
        if oldest is None:
            return
        day = day_start(oldest)
        yield day
        low = day + timedelta(days=1)


class _Held(Exception):
    """The day's events were restored recently; they stay for the hold period."""


def _day_prepare(application: Application, day: datetime, now: datetime) -> list[Archive]:
    """Gets ``application``'s events of ``day`` into written archives and returns them.

    Archives an earlier run (or a restore past its hold) left written are returned as they are when
    they hold as many rows as the table; otherwise they are retired and the rest written anew.
    Either way retiring deletes only the rows a file holds, so nothing is lost on a wrong guess.
    """
    end = day + timedelta(days=1)
    pending = list(
        Archive.objects.filter(application=application, start=day, state__in=[State.WRITTEN, State.RESTORED])
    )
    hold = timedelta(days=settings.ARCHIVE_RESTORE_HOLD_DAYS)
    if any(archive.state == State.RESTORED and archive.restored_at > now - hold for archive in pending):
        raise _Held
    if (
        pending
        and sum(archive.row_count for archive in pending)
        == Event.objects.filter(application=application, timestamp__gte=day, timestamp__lt=end).count()
    ):
        return pending
    for archive in pending:
        archive_retire(archive=archive)
    written = archive_write(application=application, start=day, end=end)
    return [written] if written else []


@dataclass
class ArchiveRun:
    archives: int = 0
    events: int = 0
    partitions_dropped: list[str] = field(default_factory=list)
    failed: int = 0
    busy: bool = False


def _recover() -> None:
    """Clears what a crash left: files of archives never finished, files replaced by an erasure."""
    for archive in Archive.objects.filter(state=State.WRITING):
        files_delete(archive.path)
        archive.delete()
    for archive in Archive.objects.exclude(stale_path=""):
        files_delete(archive.stale_path)
        Archive.objects.filter(pk=archive.pk).update(stale_path="")


def archive_run(
    *, now: datetime | None = None, max_seconds: float | None = None, progress: Callable[[Archive], None] | None = None
) -> ArchiveRun:
    """Archives every event past its organization's retention; see the module's docstring.

    Idempotent: a second run finds nothing to do. Stops starting new days after ``max_seconds``
    (the next run continues). Another run in progress makes this one return at once (``busy``).
    """
    result = ArchiveRun()
    if not _on_postgresql():
        return result
    now = now or timezone.now()
    deadline = time.monotonic() + max_seconds if max_seconds else None
    with archive_lock(wait=False) as held:
        if not held:
            result.busy = True
            return result
        _recover()
        applications = list(Application.objects.select_related("organization__tier"))
        cutoffs = {app.pk: retention_cutoff(app.organization, now) for app in applications}
        organizations = Organization.objects.select_related("tier")
        oldest_cutoff = min((retention_cutoff(org, now) for org in organizations), default=None)

        def done(archive: Archive) -> None:
            result.archives += 1
            result.events += archive.row_count
            if progress:
                progress(archive)

        # Months wholly past every organization's retention: written to files, then dropped whole.
        deferred: list[partitions.Partition] = []
        for partition in partitions.partitions_list():
            if oldest_cutoff is None or partition.end > oldest_cutoff:
                break
            written = []
            try:
                for application in applications:
                    for day in _days_with_events(application.pk, partition.start, partition.end):
                        written += _day_prepare(application, day, now)
                dropped = _partition_retire(partition, written)
            except _Held:
                continue
            except ArchiveCorrupt:
                # Nothing was deleted; the day-by-day pass below retries, and discards what does not verify.
                logger.exception("partition %s was not archived whole", partition.name)
                continue
            except OperationalError as error:
                if not isinstance(error.__cause__, (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected)):
                    raise
                # The lock was not granted in time: the month stays whole, to be dropped next run.
                logger.warning("partition %s is busy; dropping it next run", partition.name)
                deferred.append(partition)
                continue
            if dropped:
                result.partitions_dropped.append(partition.name)
                for archive in written:
                    done(archive)
        # Then, day by day, each application's events past its organization's retention.
        for application in applications:
            for day in list(_days_with_events(application.pk, None, cutoffs[application.pk])):
                if deadline and time.monotonic() > deadline:
                    return result
                if any(partition.start <= day < partition.end for partition in deferred):
                    continue
                try:
                    for archive in _day_prepare(application, day, now):
                        archive_retire(archive=archive)
                        done(archive)
                except _Held:
                    continue
                except ArchiveCorrupt:
                    # The events are still in the table; the file goes and the next run writes another.
                    logger.exception("archive of application %s, %s did not verify", application.pk, day)
                    result.failed += 1
                    for broken in Archive.objects.filter(application=application, start=day, state=State.WRITTEN):
                        files_delete(broken.path)
                        broken.delete()
    return result


def archives_in_range(
    *, organization: Organization, application: Application | None = None, since: datetime, until: datetime
):
    """Archives of ``organization`` (and ``application``) overlapping [since, until), oldest first."""
    archives = Archive.objects.filter(organization=organization, start__lt=until, end__gt=since).exclude(
        state=State.WRITING
    )
    if application is not None:
        archives = archives.filter(application=application)
    return archives.select_related("application__organization").order_by("start", "id")


def archive_restore(*, archive: Archive) -> int:
    """Puts ``archive``'s events back into the events table, verified first; returns how many were
    added. Events already there are skipped, so a second restore adds nothing. They keep their ids,
    which the rollups have counted already, and stay ``ARCHIVE_RESTORE_HOLD_DAYS`` before the
    archive job takes them out again."""
    columns = columns_sql()
    with archive_lock(), transaction.atomic(), connection.cursor() as cursor:
        archive_rows_load(cursor.cursor, archive)
        cursor.execute(
            sql.SQL(
                "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM archive_rows ON CONFLICT DO NOTHING"
            ).format(sql.Identifier(TABLE), columns, columns)
        )
        added = cursor.rowcount
        now = timezone.now()
        Archive.objects.filter(pk=archive.pk).update(
            state=State.RESTORED, restored_at=now, verified_at=now, checksum_ok=True
        )
    return added

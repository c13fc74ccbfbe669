"""Erasure of one user id's events from an application: from the events table and its archives."""

import hashlib
from dataclasses import dataclass
from datetime import UTC

from django.db import connection, transaction
from django.db.models.functions import TruncDate
from psycopg import sql

from accounts.models import Application, AuditEntry
from accounts.services import COMMAND_LINE, Source, audit_record
from ingest.models import Archive, Event, ExportRun
from ingest.retention.archive import (
    ArchiveCorrupt,
    State,
    archive_file_name,
    archive_file_store,
    archive_lock,
    archive_rows_load,
    checksum_failed_mark,
    columns_sql,
    files_delete,
)
from ingest.retention.scheduled_exports import export_runs_redo
from ingest.rollups.services import user_rollups_forget


@dataclass(frozen=True)
class Erasure:
    receipt: AuditEntry
    events: int
    archived_events: int
    archives_rewritten: int
    archives_unreadable: list[int]
    export_files_to_rewrite: int = 0


def _archive_erase_user(archive: Archive, user_id: str) -> int:
    """Rewrites ``archive`` without ``user_id``'s events (a new file and manifest; the old ones are
    deleted once the archive points at the new); returns how many went."""
    old_path = archive.path
    with transaction.atomic(), connection.cursor() as cursor:
        archive_rows_load(cursor.cursor, archive)
        cursor.execute("DELETE FROM archive_rows WHERE user_id = %s", [user_id])
        erased = cursor.rowcount
        if not erased:
            return 0
        archive.path = archive_file_name(archive.application, archive.start)
        remaining = sql.SQL("SELECT {} FROM archive_rows ORDER BY id").format(columns_sql())
        archive_file_store(archive, cursor.cursor, remaining)
        archive.stale_path = old_path
        archive.save(update_fields=["path", "row_count", "size_bytes", "checksum", "stale_path"])
    files_delete(old_path)
    Archive.objects.filter(pk=archive.pk).update(stale_path="")
    return erased


class ErasureBusy(Exception):
    """The archive lock stayed with an archive run, restore or export for longer than allowed."""


# An erasure asked for over HTTP holds a request thread while it waits: archive work can keep the
# lock for many minutes, so a request gives up after this and the person retries.
REQUEST_LOCK_WAIT_SECONDS = 10


def user_events_erase(
    *,
    application: Application,
    user_id: str,
    via: str,
    by=None,
    source: Source = COMMAND_LINE,
    credential: str = "",
    lock_wait: float | None = None,
) -> Erasure:
    """Erases every event of ``user_id`` in ``application``: from the events table and from its
    archives (rewritten with their manifests); the scheduled export files of the days that held
    them are asked for again, and the next export pass writes them without. The users rollups of
    those days are counted again without them (``user_rollups_forget``); the other rollups hold
    counts by type and dimension only, never a user id, so they stay. Leaves a receipt in the audit log:
    what, when, by whom; the user id itself only as its SHA-256, so the receipt does not keep what
    it erased. With ``lock_wait`` (seconds), raises ``ErasureBusy`` rather than wait longer for the
    archive lock."""
    with archive_lock(wait=True if lock_wait is None else lock_wait) as held:
        if not held:
            raise ErasureBusy("archive work in progress")
        erased_events = Event.objects.filter(application=application, user_id=user_id)
        # The UTC days whose scheduled export files hold the user's events: written again without them.
        days = set(
            erased_events.annotate(day=TruncDate("timestamp", tzinfo=UTC))
            .values_list("day", flat=True)
            .distinct()
            .order_by()
        )
        session_ids = set(
            erased_events.exclude(session_id=None).values_list("session_id", flat=True).distinct().order_by()
        )
        events, _ = erased_events.delete()
        archived = rewritten = 0
        unreadable = []
        if connection.vendor == "postgresql":
            for archive in (
                Archive.objects.filter(application=application)
                .exclude(state=State.WRITING)
                .select_related("application__organization")
            ):
                try:
                    erased = _archive_erase_user(archive, user_id)
                except (ArchiveCorrupt, FileNotFoundError):
                    # Said in the receipt, and flagged in the admin: an operator must look at it.
                    checksum_failed_mark(archive)
                    unreadable.append(archive.pk)
                    continue
                archived += erased
                rewritten += bool(erased)
                if erased:
                    days.add(archive.start.astimezone(UTC).date())
        user_rollups_forget(application=application, user_id=user_id, session_ids=session_ids, days=days)
        exports = export_runs_redo(runs=ExportRun.objects.filter(application=application, day__in=days))
        details = {
            "application": application.public_id,
            "user_id_sha256": hashlib.sha256(user_id.encode()).hexdigest(),
            "events_erased": events,
            "archived_events_erased": archived,
            "archives_rewritten": rewritten,
            "export_files_to_rewrite": exports,
            "via": via,
        }
        if unreadable:
            details["archives_unreadable"] = unreadable
        if credential:
            details["credential"] = credential
        receipt = audit_record(
            action=AuditEntry.Action.EVENTS_ERASED,
            actor=by,
            organization=application.organization,
            target=str(application),
            source=source,
            details=details,
        )
    return Erasure(receipt, events, archived, rewritten, unreadable, exports)

"""Exports of an organization's events as CSV or NDJSON: archived days and the database alike."""

import csv
import io
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime

from django.db import connection, transaction

from accounts.models import Application, Organization
from ingest.archive import archive_rows_load, archive_lock, archives_in_range
from ingest.models import Archive, Event

FORMATS = ("csv", "ndjson")
FIELDS = ["event_id", "schema_version", "user_id", "session_id", "event_type", "category", "data", "timestamp",
          "received_at", "service_name", "service_version", "service_language", "sdk_version"]
_SELECT = ", ".join('CAST(data AS TEXT)' if name == "data" else f'"{name}"' for name in FIELDS)
_BATCH = 5000
# A cell starting with one of these is a formula to Excel, LibreOffice or Google Sheets (the tab and
# carriage return are skipped before one; the full-width forms are read as their ASCII twins).
_FORMULA_START = tuple("=+-@\t\r＝＋－＠")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def csv_cell(value):
    """``value`` as a CSV cell that a spreadsheet shows as the text it is: one that would start a
    formula gets a leading apostrophe (which spreadsheets take as "text" and do not show); numbers,
    which cannot run anything, are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def _text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat() if isinstance(value, datetime) else str(value)


class _Writer:
    def __init__(self, out, fmt: str):
        self.out, self.fmt = out, fmt
        self.buffer = io.StringIO()
        # CRLF ends a row, as RFC 4180 says: the writer quotes a cell holding any character of the line
        # terminator, so a value's lone carriage return cannot start a row of its own making.
        self.csv = csv.writer(self.buffer, lineterminator="\r\n")
        if fmt == "csv":
            self.csv.writerow(["application", *FIELDS])

    def rows(self, application: Application, rows) -> None:
        for row in rows:
            values = [_text(value) for value in row]
            values[0] = str(uuid.UUID(values[0]))  # SQLite keeps the 32 hex digits only
            if self.fmt == "csv":
                self.csv.writerow([application.public_id, *map(csv_cell, values)])
            else:
                record = dict(zip(FIELDS, values))
                data = record.pop("data")
                # The stored JSON as it is, not decoded and encoded again.
                self.buffer.write(json.dumps({"application": application.public_id, **record})[:-1]
                                  + f', "data": {data}}}\n')
        self.out.write(self.buffer.getvalue().encode())
        self.buffer.seek(0)
        self.buffer.truncate()


def _query(cursor, source: str, application_id: int, since: datetime, until: datetime, progress, writer,
           application) -> int:
    cursor.execute(f'SELECT {_SELECT} FROM {source} WHERE application_id = %s AND "timestamp" >= %s '
                   f'AND "timestamp" < %s ORDER BY "timestamp", id',
                   [application_id, connection.ops.adapt_datetimefield_value(since),
                    connection.ops.adapt_datetimefield_value(until)])
    written = 0
    while rows := cursor.fetchmany(_BATCH):
        writer.rows(application, rows)
        written += len(rows)
        if progress:
            progress(len(rows))
    return written


def events_export_size(*, organization: Organization, application: Application | None, since: datetime,
                       until: datetime) -> int:
    """About how many events an export will hold (archived days count whole), for a progress bar."""
    events = Event.objects.filter(organization=organization, timestamp__gte=since, timestamp__lt=until)
    if application is not None:
        events = events.filter(application=application)
    archived = archives_in_range(organization=organization, application=application, since=since, until=until)
    return events.count() + sum(archived.filter(state=Archive.State.ARCHIVED).values_list("row_count", flat=True))


def events_export(*, organization: Organization, application: Application | None, since: datetime,
                  until: datetime, fmt: str, out, progress: Callable[[int], None] | None = None) -> int:
    """Writes ``organization``'s events (``application``'s only, if given) with timestamps in
    [since, until) to the binary stream ``out``; returns how many. Per application: archived days
    first (read from their verified files), then the events in the database, each by timestamp."""
    applications = [application] if application is not None else list(organization.applications.all())
    writer = _Writer(out, fmt)
    written = 0
    with archive_lock():
        for app in applications:
            archived = archives_in_range(organization=organization, application=app, since=since, until=until)
            for archive in archived.filter(state=Archive.State.ARCHIVED):
                with transaction.atomic(), connection.cursor() as cursor:
                    archive_rows_load(cursor.cursor, archive)
                    written += _query(cursor, "archive_rows", app.pk, since, until, progress, writer, app)
            with transaction.atomic(), connection.chunked_cursor() as cursor:
                written += _query(cursor, Event._meta.db_table, app.pk, since, until, progress, writer, app)
    return written

"""Exports of an organization's events, archived days and the database alike, in one of several
formats: CSV and NDJSON for people and scripts, gzip'd NDJSON and Parquet for the scheduled daily
files (``ingest.retention.scheduled_exports``).

Every format is a writer over the same rows in the same order (per application, archived days
first, then the database, each by timestamp and id), so the formats hold the same events, and
writing a range twice gives the same bytes.
"""

import csv
import functools
import gzip
import io
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime

from django.db import connection, transaction

from accounts.models import Application, Organization
from ingest.models import Archive, Event
from ingest.retention.archive import archive_lock, archive_rows_load, archives_in_range

FIELDS = [
    "event_id",
    "schema_version",
    "user_id",
    "session_id",
    "event_type",
    "category",
    "data",
    "timestamp",
    "received_at",
    "service_name",
    "service_version",
    "service_language",
    "sdk_version",
]
_SELECT = ", ".join("CAST(data AS TEXT)" if name == "data" else f'"{name}"' for name in FIELDS)
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


def _event_id(value) -> str:
    return str(uuid.UUID(str(value)))  # SQLite keeps the 32 hex digits only


class CsvWriter:
    """RFC 4180 CSV with a header row; cells that a spreadsheet would run are kept as text."""

    def __init__(self, out):
        self.out = out
        self.buffer = io.StringIO()
        # CRLF ends a row, as RFC 4180 says: the writer quotes a cell holding any character of the line
        # terminator, so a value's lone carriage return cannot start a row of its own making.
        self.csv = csv.writer(self.buffer, lineterminator="\r\n")
        self.csv.writerow(["application", *FIELDS])

    def rows(self, application: Application, rows) -> None:
        for row in rows:
            values = [_text(value) for value in row]
            values[0] = _event_id(values[0])
            self.csv.writerow([application.public_id, *map(csv_cell, values)])
        self.out.write(self.buffer.getvalue().encode())
        self.buffer.seek(0)
        self.buffer.truncate()

    def close(self) -> None:
        """Nothing is held back."""


class NdjsonWriter:
    """One JSON object a line, ``data`` as stored."""

    def __init__(self, out):
        self.out = out
        self.buffer = io.StringIO()

    def rows(self, application: Application, rows) -> None:
        for row in rows:
            values = [_text(value) for value in row]
            values[0] = _event_id(values[0])
            record = dict(zip(FIELDS, values))
            data = record.pop("data")
            # The stored JSON as it is, not decoded and encoded again.
            self.buffer.write(
                json.dumps({"application": application.public_id, **record})[:-1] + f', "data": {data}}}\n'
            )
        self.out.write(self.buffer.getvalue().encode())
        self.buffer.seek(0)
        self.buffer.truncate()

    def close(self) -> None:
        """Nothing is held back."""


class GzipNdjsonWriter(NdjsonWriter):
    """NDJSON, gzip'd with a header that names no file and no time: the same rows give the same bytes."""

    def __init__(self, out):
        self.gzip = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0, filename="")
        super().__init__(self.gzip)

    def close(self) -> None:
        self.gzip.close()


@functools.cache
def parquet_schema():
    """Parquet's columns, fixed here rather than inferred from the rows: a day with no events, or
    with a column null throughout, still has the same schema as every other day. pyarrow is imported
    here, not with the module: it would add 30 MB to every web worker, which never writes Parquet."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("application", pa.string(), nullable=False),
            pa.field("event_id", pa.string(), nullable=False),
            pa.field("schema_version", pa.string(), nullable=False),
            pa.field("user_id", pa.string(), nullable=False),
            pa.field("session_id", pa.string()),
            pa.field("event_type", pa.string(), nullable=False),
            pa.field("category", pa.string()),
            pa.field("data", pa.string(), nullable=False, metadata={"description": "The event's data, as JSON text."}),
            pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("received_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("service_name", pa.string(), nullable=False),
            pa.field("service_version", pa.string()),
            pa.field("service_language", pa.string()),
            pa.field("sdk_version", pa.string()),
        ]
    )


PARQUET_ROW_GROUP = 50_000
_TIMESTAMP, _RECEIVED_AT = FIELDS.index("timestamp") - 1, FIELDS.index("received_at") - 1


class ParquetWriter:
    """Parquet (zstd) in row groups of ``PARQUET_ROW_GROUP`` rows: at most one row group is held in
    memory. pyarrow writes no time into the file (its footer names pyarrow's version, pinned), so the
    same rows give the same bytes."""

    def __init__(self, out, *, row_group: int = PARQUET_ROW_GROUP):
        self.row_group = row_group
        import pyarrow.parquet as pq

        self.schema = parquet_schema()
        self.pending: list[list] = [[] for _ in self.schema]
        self.parquet = pq.ParquetWriter(
            out, self.schema, compression="zstd", version="2.6", write_statistics=True, use_dictionary=True
        )

    def rows(self, application: Application, rows) -> None:
        application_column, event_ids, *others = self.pending
        for row in rows:
            application_column.append(application.public_id)
            event_ids.append(_event_id(row[0]))
            for column, value in zip(others, row[1:]):
                column.append(value)
            if isinstance(others[_TIMESTAMP][-1], str):  # SQLite hands times over as text
                for index in (_TIMESTAMP, _RECEIVED_AT):
                    others[index][-1] = datetime.fromisoformat(others[index][-1])
            if len(event_ids) >= self.row_group:
                self._flush()
                application_column, event_ids, *others = self.pending

    def _flush(self) -> None:
        if self.pending[0]:
            import pyarrow as pa

            self.parquet.write_table(
                pa.Table.from_arrays(self.pending, schema=self.schema), row_group_size=self.row_group
            )
            self.pending = [[] for _ in self.schema]

    def close(self) -> None:
        self._flush()
        self.parquet.close()


WRITERS = {"csv": CsvWriter, "ndjson": NdjsonWriter, "ndjson.gz": GzipNdjsonWriter, "parquet": ParquetWriter}
FORMATS = tuple(WRITERS)


def _query(cursor, source: str, application: Application, since: datetime, until: datetime, progress, writer) -> int:
    cursor.execute(
        f'SELECT {_SELECT} FROM {source} WHERE application_id = %s AND "timestamp" >= %s '
        f'AND "timestamp" < %s ORDER BY "timestamp", id',
        [
            application.pk,
            connection.ops.adapt_datetimefield_value(since),
            connection.ops.adapt_datetimefield_value(until),
        ],
    )
    written = 0
    while rows := cursor.fetchmany(_BATCH):
        writer.rows(application, rows)
        written += len(rows)
        if progress:
            progress(len(rows))
    return written


def events_export_size(
    *, organization: Organization, application: Application | None, since: datetime, until: datetime
) -> int:
    """About how many events an export will hold (archived days count whole), for a progress bar."""
    events = Event.objects.filter(organization=organization, timestamp__gte=since, timestamp__lt=until)
    if application is not None:
        events = events.filter(application=application)
    archived = archives_in_range(organization=organization, application=application, since=since, until=until)
    return events.count() + sum(archived.filter(state=Archive.State.ARCHIVED).values_list("row_count", flat=True))


def application_events_write(
    *, application: Application, since: datetime, until: datetime, writer, progress: Callable[[int], None] | None = None
) -> int:
    """Gives ``writer`` ``application``'s events with timestamps in [since, until): archived days
    first (read from their verified files), then the events in the database, each by timestamp and
    id, in batches. The caller holds the archive lock, so no row moves between the two."""
    written = 0
    archived = archives_in_range(
        organization=application.organization, application=application, since=since, until=until
    )
    for archive in archived.filter(state=Archive.State.ARCHIVED):
        with transaction.atomic(), connection.cursor() as cursor:
            archive_rows_load(cursor.cursor, archive)
            written += _query(cursor, "archive_rows", application, since, until, progress, writer)
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        written += _query(cursor, Event._meta.db_table, application, since, until, progress, writer)
    return written


def events_export(
    *,
    organization: Organization,
    application: Application | None,
    since: datetime,
    until: datetime,
    fmt: str,
    out,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Writes ``organization``'s events (``application``'s only, if given) with timestamps in
    [since, until) to the binary stream ``out`` as ``fmt``; returns how many."""
    applications = [application] if application is not None else list(organization.applications.all())
    writer = WRITERS[fmt](out)
    written = 0
    with archive_lock():
        for app in applications:
            written += application_events_write(
                application=app, since=since, until=until, writer=writer, progress=progress
            )
    writer.close()
    return written

"""On PostgreSQL the events table becomes partitioned by month of the event's timestamp.

A partitioned table's primary key and unique constraints must include the partition key, so the
primary key becomes (id, timestamp) and the per-application uniqueness (application, event_id,
timestamp): a re-sent event carries its original timestamp, so it still lands on the same row.

The table is rebuilt from whatever it holds at this point (columns, defaults and indexes are read
from the catalogue, not written out here), so columns or indexes added by earlier migrations carry
over. Existing rows are copied; on a large table that takes a while and holds the table
(docs/deploying.md). SQLite keeps a plain table with the same unique constraint.
"""

import re
from datetime import UTC, datetime

from django.db import migrations, models

TABLE = "ingest_event"
OLD = "ingest_event_unpartitioned"
UNIQUE = "event_unique_per_application"
MONTHS_AHEAD = 3


def _next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def _indexes(cursor, table: str) -> list[str]:
    """CREATE INDEX statements of ``table``'s plain indexes (not its primary key or constraints)."""
    cursor.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) ORDER BY c.relname",
        [table],
    )
    return [row[0] for row in cursor.fetchall()]


def _rebuild(schema_editor, partitioned: bool) -> None:
    cursor = schema_editor.connection.cursor()
    primary = '(id, "timestamp")' if partitioned else "(id)"
    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
    indexes = _indexes(cursor, OLD)
    cursor.execute(
        f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED "
        f"INCLUDING STORAGE INCLUDING COMMENTS INCLUDING CONSTRAINTS)"
        + (' PARTITION BY RANGE ("timestamp")' if partitioned else "")
    )
    if partitioned:
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
        cursor.execute(f"SELECT DISTINCT date_trunc('month', \"timestamp\" AT TIME ZONE 'UTC') FROM {OLD}")
        months = {row[0].replace(tzinfo=UTC) for row in cursor.fetchall()}
        month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        for _ in range(MONTHS_AHEAD + 1):
            months.add(month)
            month = _next_month(month)
        for month in sorted(months):
            cursor.execute(
                f"CREATE TABLE {TABLE}_p{month:%Y_%m} PARTITION OF {TABLE} FOR VALUES "
                f"FROM ('{month.isoformat()}') TO ('{_next_month(month).isoformat()}')"
            )
    cursor.execute(f"INSERT INTO {TABLE} OVERRIDING SYSTEM VALUE SELECT * FROM {OLD}")
    cursor.execute(f"SELECT pg_get_serial_sequence('{TABLE}', 'id')")
    sequence = cursor.fetchone()[0]
    cursor.execute(f"SELECT setval(%s, COALESCE((SELECT max(id) FROM {OLD}), 0) + 1, false)", [sequence])
    cursor.execute(f"DROP TABLE {OLD}")
    cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {TABLE}_id_seq")
    cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY {primary}")
    cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT {UNIQUE} UNIQUE (application_id, event_id, "timestamp")')
    for statement in indexes:
        # A partitioned table's index reads "ON ONLY table"; on the new table it covers every partition.
        cursor.execute(re.sub(rf" ON (ONLY )?(public\.)?{OLD} ", f" ON {TABLE} ", statement, count=1))


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        _rebuild(schema_editor, partitioned=True)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        _rebuild(schema_editor, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0009_streams"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="event", name=UNIQUE),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.UniqueConstraint(fields=("application", "event_id", "timestamp"), name=UNIQUE),
        ),
        migrations.RunPython(forwards, backwards),
    ]

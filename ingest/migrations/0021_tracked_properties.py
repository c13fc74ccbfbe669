import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

import ingest.models

# ingest.models.EventProperty: each event joined with the properties tracked for its type, its value
# read at the property's JSON path (the same syntax on both databases). On PostgreSQL, OFFSET 0 keeps
# each subquery whole: the chunk's events are read first (a plain join read every event of the
# tracked types, 9-11 s a chunk at 10 million events), and the value is read once, not once for
# each of the 32 aggregates that use it (0.4 s a chunk after both).
VIEW_POSTGRESQL = """
CREATE VIEW ingest_eventproperty AS
SELECT e.id, e.organization_id, e.application_id, e.timestamp, e.user_id, a.user_hash_seed,
  p.id AS property_id,
  CASE WHEN p.kind = 'text' AND jsonb_typeof(x.v) IN ('string', 'number', 'boolean')
    THEN left(x.v #>> '{}', 200) ELSE '' END AS value,
  CASE WHEN p.kind = 'number' AND jsonb_typeof(x.v) = 'number'
    THEN LEAST(GREATEST((x.v)::numeric, -1e15), 1e15)::double precision END AS number
FROM ingest_event e
CROSS JOIN LATERAL (
  SELECT t.id, t.kind, t.json_path FROM ingest_trackedproperty t
  WHERE t.application_id = e.application_id AND t.event_type = e.event_type OFFSET 0
) p
JOIN accounts_application a ON a.id = e.application_id
CROSS JOIN LATERAL (SELECT jsonb_path_query_first(e.data, p.json_path::jsonpath) AS v OFFSET 0) x
"""
VIEW_SQLITE = """
CREATE VIEW ingest_eventproperty AS
SELECT e.id, e.organization_id, e.application_id, e.timestamp, e.user_id, a.user_hash_seed,
  p.id AS property_id,
  CASE WHEN p.kind = 'text' THEN CASE json_type(e.data, p.json_path)
    WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
    WHEN 'text' THEN substr(json_extract(e.data, p.json_path), 1, 200)
    WHEN 'integer' THEN substr(CAST(json_extract(e.data, p.json_path) AS TEXT), 1, 200)
    WHEN 'real' THEN substr(CAST(json_extract(e.data, p.json_path) AS TEXT), 1, 200)
    ELSE '' END ELSE '' END AS value,
  CASE WHEN p.kind = 'number' AND json_type(e.data, p.json_path) IN ('integer', 'real')
    THEN MIN(MAX(CAST(json_extract(e.data, p.json_path) AS REAL), -1e15), 1e15) END AS number
FROM ingest_event e
JOIN ingest_trackedproperty p ON p.application_id = e.application_id AND p.event_type = e.event_type
JOIN accounts_application a ON a.id = e.application_id
"""


def view_create(apps, schema_editor):
    schema_editor.execute(VIEW_POSTGRESQL if schema_editor.connection.vendor == "postgresql" else VIEW_SQLITE)


def view_drop(apps, schema_editor):
    schema_editor.execute("DROP VIEW IF EXISTS ingest_eventproperty")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0018_application_user_hash_seed"),
        ("ingest", "0020_user_rollups"),
    ]

    operations = [
        migrations.CreateModel(
            name="EventProperty",
            fields=[
                ("id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("organization_id", models.BigIntegerField()),
                ("application_id", models.BigIntegerField()),
                ("timestamp", models.DateTimeField()),
                ("user_id", models.CharField(max_length=71)),
                ("user_hash_seed", models.BigIntegerField()),
                ("property_id", models.BigIntegerField()),
                ("value", models.CharField(max_length=200)),
                ("number", models.FloatField(null=True)),
            ],
            options={
                "db_table": "ingest_eventproperty",
                "managed": False,
            },
        ),
        migrations.AlterField(
            model_name="rollupskip",
            name="kind",
            field=models.CharField(
                choices=[
                    ("events", "Event counts"),
                    ("users", "Users and versions"),
                    ("property", "Property values"),
                    ("api", "API requests"),
                    ("lambda", "Lambda invocations"),
                ],
                max_length=8,
            ),
        ),
        migrations.CreateModel(
            name="PropertyRollup",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("organization_id", models.BigIntegerField()),
                ("application_id", models.BigIntegerField()),
                ("property_id", models.BigIntegerField()),
                ("granularity", models.CharField(choices=[("hour", "Hour"), ("day", "Day")], max_length=4)),
                ("bucket", models.DateTimeField()),
                ("value", models.CharField(blank=True, max_length=200)),
                ("count", models.PositiveBigIntegerField(default=0)),
                ("users_ids", ingest.models.IdsField(editable=False, null=True)),
                ("users_sketch", ingest.models.SketchField(editable=False, null=True)),
                ("number_count", models.PositiveBigIntegerField(default=0)),
                ("number_sum", models.FloatField(default=0)),
                ("number_min", models.FloatField(null=True)),
                ("number_max", models.FloatField(null=True)),
                ("ms_1", models.PositiveBigIntegerField(default=0)),
                ("ms_2", models.PositiveBigIntegerField(default=0)),
                ("ms_5", models.PositiveBigIntegerField(default=0)),
                ("ms_10", models.PositiveBigIntegerField(default=0)),
                ("ms_20", models.PositiveBigIntegerField(default=0)),
                ("ms_50", models.PositiveBigIntegerField(default=0)),
                ("ms_100", models.PositiveBigIntegerField(default=0)),
                ("ms_200", models.PositiveBigIntegerField(default=0)),
                ("ms_500", models.PositiveBigIntegerField(default=0)),
                ("ms_1000", models.PositiveBigIntegerField(default=0)),
                ("ms_2000", models.PositiveBigIntegerField(default=0)),
                ("ms_5000", models.PositiveBigIntegerField(default=0)),
                ("ms_10000", models.PositiveBigIntegerField(default=0)),
                ("ms_20000", models.PositiveBigIntegerField(default=0)),
                ("ms_50000", models.PositiveBigIntegerField(default=0)),
                ("ms_100000", models.PositiveBigIntegerField(default=0)),
                ("ms_200000", models.PositiveBigIntegerField(default=0)),
                ("ms_500000", models.PositiveBigIntegerField(default=0)),
                ("ms_1000000", models.PositiveBigIntegerField(default=0)),
                ("ms_2000000", models.PositiveBigIntegerField(default=0)),
                ("ms_5000000", models.PositiveBigIntegerField(default=0)),
                ("ms_10000000", models.PositiveBigIntegerField(default=0)),
                ("ms_20000000", models.PositiveBigIntegerField(default=0)),
                ("ms_50000000", models.PositiveBigIntegerField(default=0)),
                ("ms_100000000", models.PositiveBigIntegerField(default=0)),
                ("ms_200000000", models.PositiveBigIntegerField(default=0)),
                ("ms_500000000", models.PositiveBigIntegerField(default=0)),
                ("ms_more", models.PositiveBigIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("property_id", "granularity", "bucket", "value"), name="property_rollup_unique"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="PropertyValueSlot",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("property_id", models.BigIntegerField()),
                ("day", models.DateTimeField()),
                ("value", models.CharField(blank=True, max_length=200)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("property_id", "day", "value"), name="property_slot_unique")
                ],
            },
        ),
        migrations.CreateModel(
            name="TrackedProperty",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("event_type", models.CharField(max_length=255)),
                (
                    "path",
                    models.CharField(
                        help_text="Where in the event's data, e.g. data.command or data.duration_ms.",
                        max_length=200,
                        validators=[
                            django.core.validators.RegexValidator(
                                '\\A(?:data\\.)?(?:[A-Za-z_][A-Za-z0-9_-]*|"[^"\\\\]+")(?:\\.(?:[A-Za-z_][A-Za-z0-9_-]*|"[^"\\\\]+")){0,7}\\Z',
                                'Write keys joined by dots, as in data.command or data.request.method; put a key holding other characters in double quotes: attributes."http.method".',
                                code="invalid_path",
                            )
                        ],
                    ),
                ),
                ("json_path", models.CharField(editable=False, max_length=250)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("text", "Text: top values"),
                            ("number", "Number: count, sum, min, max and percentiles"),
                        ],
                        default="text",
                        max_length=6,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "application",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="tracked_properties",
                        to="accounts.application",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "tracked properties",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("application", "event_type", "json_path"), name="tracked_property_unique"
                    )
                ],
            },
        ),
        migrations.RunPython(view_create, view_drop),
    ]

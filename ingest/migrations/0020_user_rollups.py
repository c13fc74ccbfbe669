from django.db import migrations, models

import ingest.models

# Keyed hashes, the sets of them that stay exact up to 16,384 (NULL past that, for good), and the
# hll extension's sketches (ingest.rollups.distinct). The extension is Debian's postgresql-15-hll.
FUNCTIONS = """
CREATE EXTENSION IF NOT EXISTS hll;
CREATE OR REPLACE FUNCTION tk_keyed_hash(seed bigint, id text) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT hashtextextended(id, seed) $$;
-- Any array of hashes as a set: sorted, distinct, NULL past 16,384. One sort, which finds a row's
-- set (sorted already) in one pass.
CREATE OR REPLACE FUNCTION tk_ids_set(ids bigint[]) RETURNS bigint[]
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT CASE WHEN ids IS NULL THEN NULL ELSE (
    SELECT CASE WHEN cardinality(s) <= 16384 THEN s END
    FROM (SELECT coalesce(array_agg(DISTINCT x ORDER BY x), '{}') AS s FROM unnest(ids) AS u(x)) AS t) END $$;
-- Two sets' union; NULL (a set past the limit) wins.
CREATE OR REPLACE FUNCTION tk_ids_union(a bigint[], b bigint[]) RETURNS bigint[]
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT CASE WHEN a IS NULL OR b IS NULL OR cardinality(a) > 16384 OR cardinality(b) > 16384 THEN NULL
    ELSE tk_ids_set(a || b) END $$;
-- The aggregate appends, and makes a set only when the pile passes the limit and at the end:
-- unioning at every row sorted the growing set again for each (2 s for a chunk's day rows), and a
-- larger pile sorted many rows' hashes to find what a few already showed (140 ms for a week of hours).
-- Once NULL, the rows left are not even read.
CREATE OR REPLACE FUNCTION tk_ids_append(pile bigint[], ids bigint[]) RETURNS bigint[]
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT CASE WHEN pile IS NULL OR ids IS NULL OR cardinality(ids) > 16384 THEN NULL
    WHEN cardinality(pile) + cardinality(ids) <= 16384 THEN pile || ids
    ELSE tk_ids_set(pile || ids) END $$;
CREATE OR REPLACE AGGREGATE tk_ids_union_agg(bigint[]) (
  SFUNC = tk_ids_append, STYPE = bigint[], FINALFUNC = tk_ids_set, INITCOND = '{}'
);
"""
FUNCTIONS_DROP = """
DROP AGGREGATE IF EXISTS tk_ids_union_agg(bigint[]);
DROP FUNCTION IF EXISTS tk_ids_append(bigint[], bigint[]);
DROP FUNCTION IF EXISTS tk_ids_union(bigint[], bigint[]);
DROP FUNCTION IF EXISTS tk_ids_set(bigint[]);
DROP FUNCTION IF EXISTS tk_keyed_hash(bigint, text);
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0019_lambda_duration_columns"),
        ("accounts", "0018_application_user_hash_seed"),
    ]

    operations = [
        migrations.RunPython(_on_postgresql(FUNCTIONS), _on_postgresql(FUNCTIONS_DROP)),
        migrations.CreateModel(
            name="UserRollup",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("organization_id", models.BigIntegerField()),
                ("application_id", models.BigIntegerField()),
                ("granularity", models.CharField(choices=[("hour", "Hour"), ("day", "Day")], max_length=4)),
                (
                    "dimension",
                    models.CharField(
                        blank=True,
                        choices=[("", "Application"), ("service", "Service and version"), ("sdk", "SDK version")],
                        max_length=8,
                    ),
                ),
                ("bucket", models.DateTimeField()),
                ("value", models.CharField(blank=True, max_length=511)),
                ("events", models.PositiveBigIntegerField(default=0)),
                ("first_seen", models.DateTimeField(help_text="The earliest event's timestamp.")),
                ("last_seen", models.DateTimeField(help_text="The latest event's timestamp.")),
                ("users_ids", ingest.models.IdsField(editable=False, null=True)),
                ("users_sketch", ingest.models.SketchField(editable=False, null=True)),
                ("sessions_ids", ingest.models.IdsField(editable=False, null=True)),
                ("sessions_sketch", ingest.models.SketchField(editable=False, null=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("application_id", "granularity", "dimension", "bucket", "value"),
                        name="user_rollup_unique",
                    )
                ],
            },
        ),
        migrations.AlterField(
            model_name="rollupskip",
            name="kind",
            field=models.CharField(
                choices=[
                    ("events", "Event counts"),
                    ("users", "Users and versions"),
                    ("api", "API requests"),
                    ("lambda", "Lambda invocations"),
                ],
                max_length=8,
            ),
        ),
    ]

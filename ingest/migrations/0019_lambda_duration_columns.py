"""The Lambda duration histogram moves from rows per bucket (LambdaDurationBucket) to a column per
bucket of LambdaRollup, the encoding the API rollups' latency has: one histogram encoding, summed in
the same statement as the other measures. Each bucket's counts are carried over, and back."""

from django.db import migrations, models

# The bounds as they were when this migration was written (ms).
BOUNDS = (
    1,
    2,
    3,
    5,
    7,
    10,
    15,
    20,
    30,
    40,
    50,
    70,
    100,
    150,
    200,
    300,
    400,
    500,
    700,
    1_000,
    1_500,
    2_000,
    3_000,
    5_000,
    7_000,
    10_000,
    15_000,
    20_000,
    30_000,
    60_000,
    120_000,
    300_000,
    900_000,
)
COLUMNS = [f"ms_{bound}" for bound in BOUNDS] + ["ms_more"]
KEY = ("application_id", "granularity", "bucket", "function", "version")

# A bucket's row: its index in BOUNDS (len(BOUNDS) for longer durations).
FORWARD = (
    f"UPDATE ingest_lambdarollup SET {', '.join(f'{c} = h.{c}' for c in COLUMNS)} "
    f"FROM (SELECT {', '.join(KEY)}, "
    + ", ".join(f"SUM(CASE WHEN bound = {n} THEN count ELSE 0 END) AS {c}" for n, c in enumerate(COLUMNS))
    + f" FROM ingest_lambdadurationbucket GROUP BY {', '.join(KEY)}) AS h "
    f"WHERE {' AND '.join(f'ingest_lambdarollup.{k} = h.{k}' for k in KEY)}"
)
BACKWARD = (
    "INSERT INTO ingest_lambdadurationbucket "
    f"(organization_id, {', '.join(KEY)}, bound, count) "
    + " UNION ALL ".join(
        f"SELECT organization_id, {', '.join(KEY)}, {n}, {c} FROM ingest_lambdarollup WHERE {c} > 0"
        for n, c in enumerate(COLUMNS)
    )
)


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0018_export_schedule_every_application"),
    ]

    operations = [
        *(
            migrations.AddField(model_name="lambdarollup", name=column, field=models.PositiveBigIntegerField(default=0))
            for column in COLUMNS
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
        migrations.DeleteModel(name="LambdaDurationBucket"),
    ]

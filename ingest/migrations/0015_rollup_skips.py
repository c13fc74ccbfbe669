"""Records of the events a rollup kind had to skip, so one application's rows never stop the job."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0009_credential_service_name"),
        ("ingest", "0014_event_unique_by_time"),
    ]

    operations = [
        migrations.CreateModel(
            name="RollupSkip",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[("events", "Event counts"), ("api", "API requests"), ("lambda", "Lambda invocations")],
                        max_length=8,
                    ),
                ),
                ("first_event_id", models.BigIntegerField(help_text="The chunk's ids, inclusive.")),
                ("last_event_id", models.BigIntegerField()),
                ("events", models.PositiveIntegerField(help_text="The application's events in the chunk.")),
                ("first_timestamp", models.DateTimeField()),
                ("last_timestamp", models.DateTimeField()),
                ("error", models.CharField(max_length=500)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "application",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.application",
                    ),
                ),
                (
                    "organization",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.organization",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
    ]

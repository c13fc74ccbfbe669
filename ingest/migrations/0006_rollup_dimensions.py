"""Rollups count each event once per dimension (type, category, service, SDK version) instead of by
service version only; existing rollups are recomputed from the events.

The refill reads the events the incremental job has already counted (ids up to its cursor); it
adds the later ones itself, as before. It uses this migration's models only, so later changes to
the rollup code cannot change what it does.
"""

from datetime import UTC, timedelta

from django.db import migrations, models
from django.db.models import Count, Value
from django.db.models.functions import Coalesce, Concat, Now, Trim, Trunc

MINUTE_ROLLUPS_HOURS = 48


def clear(apps, schema_editor):
    apps.get_model("ingest", "EventRollup").objects.all().delete()


def refill(apps, schema_editor):
    Event = apps.get_model("ingest", "Event")
    EventRollup = apps.get_model("ingest", "EventRollup")
    cursor = apps.get_model("ingest", "RollupCursor").objects.filter(name="events").first()
    if cursor is None:
        return
    counted = Event.objects.filter(id__lte=cursor.last_event_id)
    dimensions = {
        "": Value(""),
        "category": Coalesce("category", Value("")),
        "service": Trim(
            Concat(Coalesce("service_name", Value("")), Value(" "), Coalesce("service_version", Value("")))
        ),
        "sdk": Coalesce("sdk_version", Value("")),
    }
    table = EventRollup._meta.db_table
    for granularity in ("minute", "hour", "day"):
        events = (
            counted
            if granularity != "minute"
            else counted.filter(timestamp__gte=Now() - timedelta(hours=MINUTE_ROLLUPS_HOURS))
        )
        for dimension, value in dimensions.items():
            grouped = (
                events.annotate(
                    g=Value(granularity), d=Value(dimension), b=Trunc("timestamp", granularity, tzinfo=UTC), v=value
                )
                .values("organization_id", "application_id", "g", "d", "b", "event_type", "v")
                .annotate(n=Count("id"))
                .order_by()
            )
            sql, params = grouped.query.sql_with_params()
            schema_editor.execute(
                f"INSERT INTO {table} (organization_id, application_id, granularity, dimension, "
                f"bucket, event_type, value, count) {sql}",
                params,
            )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_user_time_zone"),
        ("ingest", "0005_rollups"),
    ]

    operations = [
        migrations.RunPython(clear, migrations.RunPython.noop, elidable=True),
        migrations.RemoveConstraint(
            model_name="eventrollup",
            name="rollup_unique",
        ),
        migrations.RemoveIndex(
            model_name="event",
            name="event_type_idx",
        ),
        migrations.RemoveIndex(
            model_name="eventrollup",
            name="rollup_org_idx",
        ),
        migrations.RemoveField(
            model_name="eventrollup",
            name="service_version",
        ),
        migrations.AddField(
            model_name="eventrollup",
            name="dimension",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "Event type"),
                    ("category", "Category"),
                    ("service", "Service and version"),
                    ("sdk", "SDK version"),
                ],
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="eventrollup",
            name="value",
            field=models.CharField(blank=True, max_length=511),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["application", "event_type", "timestamp"], name="event_app_type_time_idx"),
        ),
        migrations.AddIndex(
            model_name="eventrollup",
            index=models.Index(
                fields=["organization_id", "granularity", "dimension", "bucket"], name="rollup_org_dimension_idx"
            ),
        ),
        migrations.AddConstraint(
            model_name="eventrollup",
            constraint=models.UniqueConstraint(
                fields=("application_id", "granularity", "dimension", "bucket", "event_type", "value"),
                name="rollup_unique_dimension",
            ),
        ),
        migrations.RunPython(refill, clear, elidable=True),
    ]

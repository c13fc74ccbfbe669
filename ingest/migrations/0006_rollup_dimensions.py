"""Rollups gain category, service name and SDK version; existing rollups are recomputed with them.

The refill reads the events the incremental job has already counted (ids up to its cursor); it
adds the later ones itself, as before. It uses this migration's models only, so later changes to
the rollup code cannot change what it does.
"""

from datetime import UTC

from django.db import migrations, models
from django.db.models import Count, Value
from django.db.models.functions import Coalesce, Trunc

DIMENSIONS = ("event_type", "category", "service_name", "service_version", "sdk_version")


def refill(apps, schema_editor):
    Event = apps.get_model("ingest", "Event")
    EventRollup = apps.get_model("ingest", "EventRollup")
    cursor = apps.get_model("ingest", "RollupCursor").objects.filter(name="events").first()
    if cursor is None:
        return
    EventRollup.objects.all().delete()
    events = Event.objects.filter(id__lte=cursor.last_event_id)
    table = EventRollup._meta.db_table
    columns = ", ".join(DIMENSIONS)
    for granularity in ("minute", "hour", "day"):
        grouped = (events.annotate(g=Value(granularity), b=Trunc("timestamp", granularity, tzinfo=UTC),
                                   **{f"d_{name}": Coalesce(name, Value("")) for name in DIMENSIONS})
                   .values("organization_id", "application_id", "g", "b", *(f"d_{name}" for name in DIMENSIONS))
                   .annotate(n=Count("id")).order_by())
        sql, params = grouped.query.sql_with_params()
        schema_editor.execute(f"INSERT INTO {table} (organization_id, application_id, granularity, bucket, "
                              f"{columns}, count) {sql}", params)


class Migration(migrations.Migration):

    dependencies = [
        ('ingest', '0005_rollups'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='eventrollup',
            name='rollup_unique',
        ),
        migrations.AddField(
            model_name='eventrollup',
            name='category',
            field=models.CharField(blank=True, default='', max_length=255),
        ),
        migrations.AddField(
            model_name='eventrollup',
            name='sdk_version',
            field=models.CharField(blank=True, default='', max_length=100),
        ),
        migrations.AddField(
            model_name='eventrollup',
            name='service_name',
            field=models.CharField(blank=True, default='', max_length=255),
        ),
        migrations.AddConstraint(
            model_name='eventrollup',
            constraint=models.UniqueConstraint(fields=('application_id', 'granularity', 'bucket', 'event_type', 'category', 'service_name', 'service_version', 'sdk_version'), name='rollup_unique_dimensions'),
        ),
        migrations.RunPython(refill, migrations.RunPython.noop, elidable=True),
    ]

from django.db import migrations, models


def limited_schedules_mark(apps, schema_editor):
    """Schedules with applications chosen are limited to them."""
    ExportSchedule = apps.get_model("ingest", "ExportSchedule")
    ExportSchedule.objects.filter(applications__isnull=False).distinct().update(every_application=False)


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0017_scheduled_exports"),
    ]

    operations = [
        migrations.AddField(
            model_name="exportschedule",
            name="every_application",
            field=models.BooleanField(default=True, editable=False),
        ),
        migrations.RunPython(limited_schedules_mark, migrations.RunPython.noop),
    ]

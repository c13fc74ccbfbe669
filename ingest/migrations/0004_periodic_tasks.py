"""Once the periodic jobs' defaults; they are now declared in telemetry/schedules.py and installed after
every migrate, so this step does nothing."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0003_outcomes"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop)]

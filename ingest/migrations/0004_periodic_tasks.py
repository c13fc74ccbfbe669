"""The default schedule of every periodic job, in one place; operators change it in the admin."""

from django.db import migrations

# (name, task, every seconds)
SCHEDULE = [
    ("Flush outcome counters", "ingest.tasks.outcomes_flush", 60),
    ("Update rollups and accepted outcomes", "ingest.tasks.rollups_update", 30),
    ("Purge expired nonces", "ingest.tasks.nonces_purge", 600),
    ("Reconcile quota counters with the database", "ingest.tasks.quotas_reconcile", 300),
]


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds in SCHEDULE:
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": interval})


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[name for name, _, _ in SCHEDULE]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0003_outcomes"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create, remove)]

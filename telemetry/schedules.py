"""Every periodic job and its default schedule, in one place.

Celery beat reads the schedules from the database (django-celery-beat's scheduler), where operators
change or pause them in the admin. After every ``migrate``, ``schedules_install`` adds the jobs the
database lacks, with these defaults, and leaves the ones it has as operators set them.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    name: str  # as the admin lists it, and the key a job is found by
    task: str
    every_seconds: int


SCHEDULES = (
    Schedule("Flush outcome counters", "ingest.tasks.outcomes_flush", 60),
    Schedule("Update rollups and accepted outcomes", "ingest.tasks.rollups_update", 30),
    Schedule("Purge expired nonces", "ingest.tasks.nonces_purge", 600),
    Schedule("Reconcile quota counters with the database", "ingest.tasks.quotas_reconcile", 300),
    Schedule("Create event partitions ahead", "ingest.tasks.partitions_ensure", 86400),
    Schedule("Archive events past retention", "ingest.tasks.archive_run", 3600),
    Schedule("Write scheduled exports", "ingest.tasks.scheduled_exports_run", 3600),
    Schedule("Evaluate alert rules", "alerts.tasks.rules_evaluate", 60),
)


def schedules_install(*, using: str = "default", **kwargs) -> int:
    """Adds the periodic jobs the database lacks; returns how many. A post_migrate receiver."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    added = 0
    for schedule in SCHEDULES:
        if PeriodicTask.objects.using(using).filter(name=schedule.name).exists():
            continue
        interval, _ = IntervalSchedule.objects.using(using).get_or_create(
            every=schedule.every_seconds, period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.using(using).create(name=schedule.name, task=schedule.task, interval=interval)
        added += 1
    return added

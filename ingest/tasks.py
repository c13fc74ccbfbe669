"""Periodic and background jobs: thin wrappers over services, idempotent, bounded in time, retried
on outages."""

import redis
from celery import shared_task
from django.db import OperationalError

from ingest import rollups
from ingest.access import admission
from ingest.retention import archive, partitions, scheduled_exports
from ingest.rollups import services as rollup_services
from ingest.storage import services

# Every job but the nonce purge is retried on an outage, with backoff.
_RETRIED_ON_OUTAGES = {
    "autoretry_for": (OperationalError, redis.ConnectionError, redis.TimeoutError),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 5,
}


@shared_task(ignore_result=True, soft_time_limit=100, time_limit=120)
def nonces_purge() -> int:
    return services.nonces_purge()


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60, **_RETRIED_ON_OUTAGES)
def outcomes_flush() -> int:
    return admission.outcomes_flush()


@shared_task(ignore_result=True, soft_time_limit=100, time_limit=120, **_RETRIED_ON_OUTAGES)
def rollups_update() -> int:
    # The follower process (rollups_follow) adds events every half second; this run is the backstop
    # should it be down, and prunes.
    moved = rollups.rollups_update()
    rollups.rollups_prune()
    return moved


@shared_task(ignore_result=True, soft_time_limit=100, time_limit=120, **_RETRIED_ON_OUTAGES)
def quotas_reconcile() -> int:
    return admission.quotas_reconcile()


@shared_task(ignore_result=True, soft_time_limit=300, time_limit=360, **_RETRIED_ON_OUTAGES)
def partitions_ensure() -> int:
    return len(partitions.partitions_ensure())


# Long by nature: it stops starting new days after 50 minutes, and the next run carries on.
@shared_task(ignore_result=True, soft_time_limit=3300, time_limit=3500, **_RETRIED_ON_OUTAGES)
def archive_run() -> int:
    partitions.partitions_ensure()
    return archive.archive_run(max_seconds=3000).events


# Hourly: yesterday's files once the day has ended, missed days caught up a few at a time, failed
# files retried once their backoff has passed. It stops starting files after 50 minutes.
@shared_task(ignore_result=True, soft_time_limit=3300, time_limit=3500, **_RETRIED_ON_OUTAGES)
def scheduled_exports_run() -> int:
    return scheduled_exports.scheduled_exports_run(max_seconds=3000).files


@shared_task(ignore_result=True, soft_time_limit=1700, time_limit=1800, **_RETRIED_ON_OUTAGES)
def property_backfill(*, application_id: int) -> int:
    return rollup_services.property_backfill(application_id=application_id)

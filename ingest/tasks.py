from celery import shared_task

from ingest import services


@shared_task(ignore_result=True, soft_time_limit=100, time_limit=120)
def nonces_purge() -> int:
    return services.nonces_purge()

"""Alert jobs: the evaluation every minute and one task per delivery, retried with backoff."""

from celery import shared_task
from django.db import OperationalError

from alerts import services

# Attempts after the first, and the first retry's delay; each retry waits twice the one before.
DELIVERY_RETRIES = 8
RETRY_BASE_SECONDS = 15
RETRY_MAX_SECONDS = 3600


def retry_delay(retries: int) -> int:
    return min(RETRY_BASE_SECONDS * 2**retries, RETRY_MAX_SECONDS)


@shared_task(
    ignore_result=True,
    soft_time_limit=50,
    time_limit=60,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=2,
)
def rules_evaluate() -> int:
    services.notifications_redispatch()
    return services.rules_evaluate().notifications


@shared_task(bind=True, ignore_result=True, soft_time_limit=50, time_limit=60, max_retries=DELIVERY_RETRIES)
def delivery_send(self, *, notification_id: int, channel_id: int) -> bool:
    result = services.delivery_attempt(
        notification_id=notification_id, channel_id=channel_id, attempt=self.request.retries + 1
    )
    if result.retry and self.request.retries < DELIVERY_RETRIES:
        raise self.retry(countdown=retry_delay(self.request.retries))
    return not result.delivery.error

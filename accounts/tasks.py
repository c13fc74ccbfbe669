"""Background jobs of accounts: thin wrappers over services."""

import smtplib

from celery import shared_task
from django.db import OperationalError

from accounts import services


@shared_task(
    ignore_result=True,
    soft_time_limit=50,
    time_limit=60,
    autoretry_for=(OperationalError, smtplib.SMTPException, OSError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def quota_notify(*, organization_id: int, month: str, level: int) -> bool:
    return services.quota_notice_send(organization_id=organization_id, month=month, level=level)

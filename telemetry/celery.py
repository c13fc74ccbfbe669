import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telemetry.settings")

app = Celery("telemetry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

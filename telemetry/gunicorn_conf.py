"""gunicorn settings, taken from Django's settings so that the environment is read in one place."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telemetry.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

wsgi_app = "telemetry.wsgi:application"
bind = [f"{settings.SERVER_HOST}:{settings.SERVER_PORT}"]
# Sync workers: a request is CPU work (parse, verify) plus short blocking I/O to PostgreSQL and
# Redis, so about two processes a core keeps the cores busy while one waits.
workers = settings.SERVER_WORKERS
worker_class = "sync"
keepalive = 5
timeout = 30
graceful_timeout = 20
max_requests = 50000
max_requests_jitter = 5000
accesslog = None
errorlog = "-"
loglevel = settings.LOG_LEVEL

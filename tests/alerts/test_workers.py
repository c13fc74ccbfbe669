"""End to end with the real processes: Celery beat and two workers on the test database and Redis,
a silence rule on an application that sends nothing, and a receiver that verifies signatures with
the specification's own library. The rule is evaluated by beat and, at the same time, by an extra
evaluation task; the receiver gets the alert once."""

import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import standardwebhooks
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from alerts.models import Delivery, Notification
from alerts.services import channel_create, rule_create
from alerts.tasks import rules_evaluate
from telemetry.celery import app as celery_app
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ROOT = Path(__file__).resolve().parent.parent.parent


def wait_until(condition, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"still not true after {seconds} s: {condition.__doc__}")


@pytest.fixture
def celery_processes(tmp_path):
    """Two workers and beat, started on the test database; their output in tmp_path."""
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "APP_DATA_DIR": str(tmp_path),
        "APP_OBSERVABILITY__LOG_FORMAT": "pretty",
        "APP_ALERTS__PRIVATE_NETWORKS": "127.0.0.0/8",
    }
    # Messages other tests left in the queue are not this test's to run.
    celery_app.control.purge()
    commands = [
        [
            sys.executable,
            "-m",
            "celery",
            "--app",
            "telemetry",
            "worker",
            "--concurrency",
            "1",
            "--hostname",
            f"alerts-{n}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ]
        for n in (1, 2)
    ]
    commands.append(
        [
            sys.executable,
            "-m",
            "celery",
            "--app",
            "telemetry",
            "beat",
            "--loglevel",
            "INFO",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "--pidfile",
            "",
        ]
    )
    processes = []
    for n, command in enumerate(commands):
        log = open(tmp_path / f"celery-{n}.log", "wb")
        processes.append((subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    yield tmp_path
    for process, _log in processes:
        process.terminate()
    for process, log in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def succeeded_evaluations(log_dir) -> int:
    logs = "".join(path.read_text(errors="replace") for path in log_dir.glob("celery-*.log"))
    return len(re.findall(r"Task alerts\.tasks\.rules_evaluate\[[-0-9a-f]+\] succeeded", logs))


def test_beat_and_two_workers_deliver_a_silence_alert_once(receiver, celery_processes):
    application = ApplicationFactory(name="quiet-app")
    issued = channel_create(organization=application.organization, name="pager", kind="webhook", url=receiver.url)
    rule = rule_create(
        organization=application.organization,
        application=application,
        name="quiet-app is quiet",
        kind="silence",
        parameters={"minutes": 1},
        channels=[issued.channel],
    )
    # Due at once rather than a minute after beat started; saved, so that beat reads the change.
    evaluation = PeriodicTask.objects.get(task="alerts.tasks.rules_evaluate")
    evaluation.last_run_at = timezone.now() - timedelta(minutes=5)
    evaluation.save()
    rules_evaluate.delay()  # alongside beat's own run of the same task

    def both_evaluations_ran():
        """beat's evaluation and the extra one both ran"""
        return succeeded_evaluations(celery_processes) >= 2

    def delivered():
        """the alert was delivered"""
        return Delivery.objects.filter(channel=issued.channel, status="sent").exists()

    wait_until(both_evaluations_ran)
    wait_until(delivered)
    assert "Sending due task Evaluate alert rules" in (celery_processes / "celery-2.log").read_text()
    assert Notification.objects.get(rule=rule).type == "alert.firing"
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    payload = standardwebhooks.Webhook(issued.webhook_secret).verify(body, headers)
    assert (payload["alert"]["id"], payload["alert"]["state"]) == (rule.pk, "firing")

"""The WSGI entry point as a web worker loads it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIEW_MODULES = ["telemetry.urls", "ingest.apis", "dashboards.views"]


def test_a_web_worker_has_imported_every_view_before_its_first_request():
    # A fresh interpreter, as a worker starts: loading the application must import the URLconf and
    # the views it names, which Django would otherwise do while the first request waits.
    program = f"import sys, telemetry.wsgi; print(*[m for m in {VIEW_MODULES!r} if m in sys.modules])"
    loaded = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()

    assert loaded == VIEW_MODULES


def test_a_web_worker_leaves_out_what_only_the_celery_worker_runs():
    # Web workers only send tasks and never deliver alerts: the task modules and the alert senders'
    # libraries load where they run, and every module a web worker holds is memory in each of them.
    worker_only = ["ingest.tasks", "accounts.tasks", "alerts.tasks", "smtplib", "standardwebhooks"]
    program = f"import sys, telemetry.wsgi; print(*[m for m in {worker_only!r} if m in sys.modules])"
    loaded = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()

    assert loaded == []


def test_a_web_worker_leaves_protobuf_for_its_first_otlp_request():
    # protobuf and the OTLP message types are ~3 MB in each web worker, which many never need.
    program = "import sys, telemetry.wsgi; print('google.protobuf' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True)

    assert loaded.stdout.strip() == "False"

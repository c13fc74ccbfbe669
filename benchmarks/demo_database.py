"""The dashboards' and read API's benchmarks' database: many demo events and their rollups.

Not named after the app it serves: a module ``dashboards`` here would hide the app from a script
run from this directory.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/telemetry_bench_dashboards"


def bench_organization(*, events: int, apps: int, users: int = 2000):
    """Django set up on the benchmarks' own database, holding at least ``events`` demo events (loaded
    with COPY when fewer are there, from ``users`` distinct user ids) and their rollups: the
    organization they belong to."""
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telemetry.settings")
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["APP_OBSERVABILITY__LOG_LEVEL"] = "warning"
    sys.path.insert(0, str(ROOT))
    import psycopg

    base, name = os.environ["DATABASE_URL"].rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)

    import django

    django.setup()
    from django.conf import settings

    from accounts.models import Organization
    from ingest.models import Event

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    stored = Event.objects.count()
    if stored < events:
        started = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "manage.py",
                "load_demo_data",
                "--events",
                str(events - stored),
                "--apps",
                str(apps),
                "--users",
                str(users),
                "--org",
                "Benchmark dashboards",
            ],
            cwd=ROOT,
            check=True,
        )
        print(f"loaded in {time.monotonic() - started:.0f} s")
        subprocess.run(["psql", os.environ["DATABASE_URL"], "-qc", "VACUUM ANALYZE"], check=True)
    return Organization.objects.get(name="Benchmark dashboards")

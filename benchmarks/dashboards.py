"""Server time of every dashboard page with a large events table.

Loads demo events (``manage.py load_demo_data``, COPY) into its own PostgreSQL database unless it
already holds them, then renders each page in-process many times as a member of the organization
and prints the median and worst server time against the 200 ms target.

    .venv/bin/python benchmarks/dashboards.py --events 10000000
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/telemetry_bench_dashboards"
TARGET_MS = 200


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--apps", type=int, default=5)
    parser.add_argument("--runs", type=int, default=15, help="renders of each page")
    return parser.parse_args()


def main():
    args = parse_args()
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
    from django.test import Client

    from accounts.models import Membership, Organization, User
    from ingest.models import Event

    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    stored = Event.objects.count()
    if stored < args.events:
        started = time.monotonic()
        subprocess.run([sys.executable, "manage.py", "load_demo_data", "--events", str(args.events - stored),
                        "--apps", str(args.apps), "--org", "Benchmark dashboards"], cwd=ROOT, check=True)
        print(f"loaded in {time.monotonic() - started:.0f} s")
        subprocess.run(["psql", os.environ["DATABASE_URL"], "-qc", "VACUUM ANALYZE"], check=True)
    organization = Organization.objects.get(name="Benchmark dashboards")
    user, _ = User.objects.get_or_create(username="bench-viewer", defaults={"is_staff": True})
    Membership.objects.get_or_create(user=user, organization=organization, defaults={"role": "viewer"})
    application = organization.applications.order_by("pk").first()
    client = Client()
    client.force_login(user)
    org, app = organization.public_id, application.public_id
    pages = [("overview", "/")]
    pages += [(f"organization {r} by {b}", f"/orgs/{org}/?range={r}&by={b}")
              for r, b in (("1h", "minute"), ("24h", "hour"), ("24h", "minute"), ("7d", "hour"), ("30d", "day"))]
    pages += [(f"application {r} by {b}", f"/orgs/{org}/apps/{app}/?range={r}&by={b}")
              for r, b in (("1h", "minute"), ("24h", "hour"), ("7d", "hour"), ("30d", "day"), ("30d", "hour"))]
    pages += [("application filtered by type", f"/orgs/{org}/apps/{app}/?range=7d&by=day&type=error"),
              ("live tail", f"/orgs/{org}/apps/{app}/tail/"),
              ("live tail of a rare type", f"/orgs/{org}/apps/{app}/tail/?type=crash"),
              ("live tail of an unknown type", f"/orgs/{org}/apps/{app}/tail/?type=no_such_type"),
              ("CSV of 30 days by hour", f"/orgs/{org}/apps/{app}/?range=30d&by=hour&format=csv")]
    pages += [(f"API panel {r} by {b}", f"/orgs/{org}/apps/{app}/api/?range={r}&by={b}")
              for r, b in (("1h", "5min"), ("24h", "5min"), ("24h", "hour"), ("7d", "hour"), ("30d", "hour"))]
    print(f"\n{Event.objects.count():,} events stored; {args.runs} renders a page; target {TARGET_MS} ms\n")
    print(f"{'page':34} {'median ms':>10} {'worst ms':>10}  result")
    failed = False
    for label, url in pages:
        client.get(url)  # warm caches, as a page someone keeps open is
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        median = statistics.median(times)
        failed |= median > TARGET_MS
        print(f"{label:34} {median:10.1f} {max(times):10.1f}  {'pass' if median <= TARGET_MS else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

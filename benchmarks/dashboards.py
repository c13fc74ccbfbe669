"""Server time of every dashboard page with a large events table.

Loads demo events (``manage.py load_demo_data``, COPY) into its own PostgreSQL database unless it
already holds them, then renders each page in-process many times as a member of the organization
and prints the median and worst server time against the 200 ms target.

    .venv/bin/python benchmarks/dashboards.py --events 10000000 --users 1000000

The users are only chosen when the events are loaded: a database loaded before keeps its users.
"""

import argparse
import statistics
import sys
import time

from demo_database import bench_organization

TARGET_MS = 200


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--apps", type=int, default=5)
    parser.add_argument("--users", type=int, default=1_000_000, help="distinct user ids of the events loaded")
    parser.add_argument("--runs", type=int, default=15, help="renders of each page")
    return parser.parse_args()


def main():
    args = parse_args()
    organization = bench_organization(events=args.events, apps=args.apps, users=args.users)
    from django.test import Client

    from accounts.models import Membership, User
    from ingest.models import Event

    user, _ = User.objects.get_or_create(username="bench-viewer", defaults={"is_staff": True})
    Membership.objects.get_or_create(user=user, organization=organization, defaults={"role": "viewer"})
    application = organization.applications.order_by("pk").first()
    client = Client()
    client.force_login(user)
    org, app = organization.public_id, application.public_id
    pages = [("overview", "/")]
    pages += [
        (f"organization {r} by {b}", f"/orgs/{org}/?range={r}&by={b}")
        for r, b in (("1h", "minute"), ("24h", "hour"), ("24h", "minute"), ("7d", "hour"), ("30d", "day"))
    ]
    pages += [
        (f"application {r} by {b}", f"/orgs/{org}/apps/{app}/?range={r}&by={b}")
        for r, b in (("1h", "minute"), ("24h", "hour"), ("7d", "hour"), ("30d", "day"), ("30d", "hour"))
    ]
    pages += [
        ("application filtered by type", f"/orgs/{org}/apps/{app}/?range=7d&by=day&type=error"),
        ("application, type with properties", f"/orgs/{org}/apps/{app}/?range=30d&by=day&type=command"),
        ("live tail", f"/orgs/{org}/apps/{app}/tail/"),
        ("live tail of a rare type", f"/orgs/{org}/apps/{app}/tail/?type=crash"),
        ("live tail of an unknown type", f"/orgs/{org}/apps/{app}/tail/?type=no_such_type"),
        ("CSV of 30 days by hour", f"/orgs/{org}/apps/{app}/?range=30d&by=hour&format=csv"),
    ]
    pages += [
        (f"Versions panel {r}{of}", f"/orgs/{org}/apps/{app}/versions/?range={r}{of}")
        for r, of in (("7d", ""), ("30d", ""), ("90d", ""), ("30d", "&of=sdk"))
    ]
    pages += [
        (f"API panel {r} by {b}", f"/orgs/{org}/apps/{app}/api/?range={r}&by={b}")
        for r, b in (("1h", "5min"), ("24h", "5min"), ("24h", "hour"), ("7d", "hour"), ("30d", "hour"))
    ]
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

"""Server time of each stats (read API) endpoint with a large events table: p50 and p99.

Uses the dashboards benchmark's database and demo events (``demo_database.py``: loaded with COPY
unless already there), issues a read token of the organization, then calls each endpoint in-process
as a script would, many times after one warm-up, and prints p50 and p99 of the server time. The
goal: a 30-day hourly series under 50 ms at p99.

    .venv/bin/python benchmarks/read_api.py --events 10000000
"""

import argparse
import os
import statistics
import sys
import time

from demo_database import bench_organization

GOAL_MS = 50


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--apps", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200, help="calls of each endpoint")
    return parser.parse_args()


def percentile(times: list[float], quantile: float) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[round(quantile * 100) - 1]


def main():
    args = parse_args()
    # The benchmark measures the server's time, not the per-token allowance.
    os.environ["APP_READ_API__REQUESTS_PER_MINUTE"] = str(10 * args.runs * 60)
    organization = bench_organization(events=args.events, apps=args.apps)
    from datetime import UTC, datetime, timedelta

    from django.test import Client

    from accounts.services import read_token_issue
    from ingest.models import Event

    token = read_token_issue(organization=organization, name="benchmark").token
    application = organization.applications.order_by("pk").first()
    org, app = organization.public_id, application.public_id
    # Closed ranges ending at this hour: what a dashboard refreshing a past month asks.
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    def span(**delta) -> str:
        return f"since={(hour - timedelta(**delta)).isoformat()}&until={hour.isoformat()}".replace("+", "%2B")

    calls = [
        ("events 30d by hour (goal)", f"/v1/stats/{org}/{app}/events?interval=hour&{span(days=30)}"),
        ("events 48h by minute", f"/v1/stats/{org}/{app}/events?interval=minute&{span(hours=48)}"),
        ("events 30d by day", f"/v1/stats/{org}/{app}/events?interval=day&{span(days=30)}"),
        ("events 30d by hour of a type", f"/v1/stats/{org}/{app}/events?interval=hour&type=error&{span(days=30)}"),
        ("breakdown by type 30d", f"/v1/stats/{org}/{app}/breakdown?by=type&{span(days=30)}"),
        ("breakdown by service version 30d", f"/v1/stats/{org}/{app}/breakdown?by=service_version&{span(days=30)}"),
        ("outcomes 30d by day", f"/v1/stats/{org}/{app}/outcomes?interval=day&{span(days=30)}"),
        ("api 30d by hour, by endpoint", f"/v1/stats/{org}/{app}/api?interval=hour&{span(days=30)}"),
        ("lambda 30d by hour", f"/v1/stats/{org}/{app}/lambda?interval=hour&{span(days=30)}"),
        ("organization events 30d by hour", f"/v1/stats/{org}/events?interval=hour&{span(days=30)}"),
        ("organization breakdown by type 30d", f"/v1/stats/{org}/breakdown?by=type&{span(days=30)}"),
    ]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    print(
        f"\n{Event.objects.count():,} events stored; {args.runs} calls an endpoint; goal {GOAL_MS} ms p99 "
        "for 30 days by hour\n"
    )
    print(f"{'endpoint':36} {'p50 ms':>8} {'p99 ms':>8}  result")
    failed = False
    for label, url in calls:
        assert client.get(url).status_code == 200, url  # warm caches, as a dashboard refreshing is
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        p99 = percentile(times, 0.99)
        verdict = ""
        if label.endswith("(goal)"):
            failed |= p99 > GOAL_MS
            verdict = "pass" if p99 <= GOAL_MS else "FAIL"
        print(f"{label:36} {statistics.median(times):8.1f} {p99:8.1f}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

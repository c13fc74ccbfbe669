"""How far the users rollups' estimate lies from the truth at a million distinct users.

Loads, with COPY, one event for each of ``--users`` distinct user ids (1,000,000 by default) into an
application of its own in the dashboards benchmark's database, spread over the last 30 UTC days
(today's so far included), so the range's count is a union of 30 days' sketches; counts them with
the rollup job; then prints the exact count (the ids generated) beside the estimates the pages and
the read API give: the range's users, MAU, and the sum of the days (each day's own count).

    .venv/bin/python benchmarks/distinct_users.py --users 1000000
"""

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from demo_database import bench_organization

TARGET_ERROR = 0.02


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    organization = bench_organization(events=1, apps=1)
    from django.db import connection

    from accounts.services import application_create
    from dashboards import selectors
    from ingest.models import Event
    from ingest.rollups import rollups_update

    application = application_create(
        organization=organization, name=f"Distinct users {datetime.now(UTC):%H%M%S}"
    ).credential.application
    now = datetime.now(UTC)
    # The last ``days`` UTC days, today's so far included: MAU's days when there are 30.
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=args.days - 1)
    span = (now - start).total_seconds()
    columns = "organization_id, application_id, event_id, schema_version, user_id, event_type, data, timestamp, "
    columns += "received_at, service_name"
    started = time.monotonic()
    with connection.cursor() as cursor, cursor.connection.cursor() as raw:
        with raw.copy(f"COPY {Event._meta.db_table} ({columns}) FROM STDIN") as copy:
            for number in range(args.users):
                # Oldest first, as events arrive; every user on one day of the range.
                moment = start + timedelta(seconds=span * number / args.users)
                user_id = "client_" + uuid.UUID(int=number).hex * 2
                row = (organization.pk, application.pk, uuid.uuid4(), "1.0.0", user_id, "command", "{}")
                copy.write_row((*row, moment, moment, "cli"))
    print(f"loaded {args.users:,} events, one a user, in {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    while rollups_update(max_events=1_000_000):
        pass
    print(f"counted in {time.monotonic() - started:.0f} s")
    report = selectors.users_report(
        application=application, since=start, until=now + timedelta(seconds=1), interval="day"
    )
    summary = selectors.users_summary(application=application, now=now)
    figures = [
        ("users over the range (a union)", report.total_users),
        ("MAU (last 30 UTC days)", summary.month),
        ("sum of the days' own counts", sum(point.users for point in report.points)),
    ]
    print(f"\nexact: {args.users:,} distinct users; estimates exact={report.exact}")
    failed = False
    for label, estimate in figures:
        error = abs(estimate - args.users) / args.users
        failed |= error >= TARGET_ERROR
        print(f"  {label:32} {estimate:>11,}  error {100 * error:.2f}%  {'pass' if error < TARGET_ERROR else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

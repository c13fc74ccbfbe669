"""Time of one evaluation pass over 10,000 alert rules, against realistic rollups.

Fills its own PostgreSQL database (created if missing, emptied of alerting and rollup rows each run)
with organizations and applications, an hour of minute rollups by event type and service version,
the hours a week-over-week change compares, this hour's outcomes, and Lambda and API rollups; makes
``--rules`` rules spread over every kind (a third organization-wide, a tenth filtered by event
type or version), then times ``rules_evaluate``: the first pass (most rules change state and are
recorded) and the steady passes after it.

    .venv/bin/python benchmarks/alerts.py [--rules 10000] [--apps 1000] [--passes 3]
"""

import argparse
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/telemetry_bench_alerts"
EVENT_TYPES = ["page_view", "command", "error", "purchase"]
VERSIONS = ["1.0.0", "1.1.0", "2.0.0"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--apps", type=int, default=1_000)
    parser.add_argument("--apps-per-org", type=int, default=4)
    parser.add_argument("--passes", type=int, default=3, help="evaluation passes timed")
    return parser.parse_args()


def setup_database():
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telemetry.settings")
    os.environ["APP_OBSERVABILITY__LOG_LEVEL"] = "warning"
    sys.path.insert(0, str(ROOT))
    import psycopg

    base, name = os.environ["DATABASE_URL"].rsplit("/", 1)
    if not name.startswith("telemetry_bench"):
        sys.exit(f"{name}: this benchmark empties the rollups of its database; give it one named telemetry_bench_*")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)
    import django

    django.setup()


def fill(args, now: datetime):
    from django.db import connection

    from accounts.models import Application, Organization, Tier
    from ingest.models import ApiRollup, EventRollup, LambdaRollup, Outcome

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE alerts_delivery, alerts_notification, alerts_alertrule_channels, alerts_alertrule, "
            "alerts_channel, ingest_eventrollup, ingest_outcome, ingest_lambdarollup, ingest_apirollup"
        )
    Application.objects.filter(name__startswith="bench-").delete()
    Organization.objects.filter(name__startswith="bench-").delete()
    tier = Tier.objects.get(slug="pro")
    organizations = Organization.objects.bulk_create(
        [Organization(name=f"bench-{i}", tier=tier) for i in range(max(1, args.apps // args.apps_per_org))]
    )
    applications = Application.objects.bulk_create(
        [Application(organization=organizations[i % len(organizations)], name=f"bench-{i}") for i in range(args.apps)]
    )
    rng = random.Random(28)
    this_minute = now.replace(second=0, microsecond=0)
    this_hour = this_minute.replace(minute=0)
    rollups, outcomes, lambdas, apis = [], [], [], []
    for application in applications:
        ids = {"organization_id": application.organization_id, "application_id": application.pk}
        quiet = rng.random() < 0.1  # some applications have stopped sending
        for ago in range(60):
            bucket = this_minute - timedelta(minutes=ago)
            for event_type in EVENT_TYPES:
                count = 0 if quiet and ago < 30 else rng.randint(0, 200)
                if count:
                    rollups.append(
                        EventRollup(
                            **ids,
                            granularity="minute",
                            dimension="",
                            bucket=bucket,
                            event_type=event_type,
                            value="",
                            count=count,
                        )
                    )
                    rollups.append(
                        EventRollup(
                            **ids,
                            granularity="minute",
                            dimension="service",
                            bucket=bucket,
                            event_type=event_type,
                            value=f"web {rng.choice(VERSIONS)}",
                            count=count,
                        )
                    )
        for hours in (1, 2, 24 * 7 + 1, 24 * 7 + 2):
            for event_type in EVENT_TYPES:
                rollups.append(
                    EventRollup(
                        **ids,
                        granularity="hour",
                        dimension="",
                        bucket=this_hour - timedelta(hours=hours),
                        event_type=event_type,
                        value="",
                        count=rng.randint(1000, 10000),
                    )
                )
        for outcome in ("accepted", "invalid", "rate_limited"):
            outcomes.append(Outcome(**ids, hour=this_hour, outcome=outcome, count=rng.randint(0, 5000)))
        for ago in range(0, 30, 5):
            bucket = this_minute.replace(minute=this_minute.minute - this_minute.minute % 5) - timedelta(minutes=ago)
            for function in ("resize", "notify"):
                invocations = rng.randint(10, 1000)
                lambdas.append(
                    LambdaRollup(
                        **ids,
                        granularity="5min",
                        bucket=bucket,
                        function=function,
                        invocations=invocations,
                        errors=rng.randint(0, invocations // 10),
                    )
                )
            for endpoint in ("GET /orders", "POST /orders", "GET /orders/{id}"):
                count = rng.randint(10, 1000)
                apis.append(
                    ApiRollup(
                        **ids,
                        granularity="5min",
                        bucket=bucket,
                        service_name="web",
                        dimension="endpoint",
                        value=endpoint,
                        count=count,
                        errors=rng.randint(0, count // 5),
                        ms_50=count // 2,
                        ms_250=count // 2,
                    )
                )
    for model, rows in ((EventRollup, rollups), (Outcome, outcomes), (LambdaRollup, lambdas), (ApiRollup, apis)):
        model.objects.bulk_create(rows, batch_size=10_000)
    print(
        f"{len(organizations):,} organizations, {len(applications):,} applications, {len(rollups):,} event "
        f"rollup rows, {len(outcomes):,} outcome rows, {len(lambdas):,} Lambda and {len(apis):,} API rows"
    )
    return applications, rng


RULES = [
    ("silence", {"minutes": 5}),
    ("rate", {"window_minutes": 5, "threshold": 300}),
    ("change", {"window_minutes": 15, "percent": 30}),
    ("change", {"window_minutes": 60, "percent": 30, "compare": "week"}),
    ("outcomes", {"outcome": "invalid", "percent": 40, "minimum": 100}),
    ("quota", {"percent": 80}),
    ("lambda", {"metric": "error_rate", "threshold": 5}),
    ("lambda", {"metric": "p95", "threshold": 500}),
    ("api", {"metric": "error_rate", "threshold": 10}),
    ("api", {"metric": "p95", "threshold": 200, "endpoint": "GET /orders"}),
]


def make_rules(args, applications, rng):
    from alerts.kinds import KINDS
    from alerts.models import AlertRule

    rules = []
    for i in range(args.rules):
        kind, parameters = RULES[i % len(RULES)]
        application = applications[i % len(applications)]
        rules.append(
            AlertRule(
                organization_id=application.organization_id,
                application=None if i % 3 == 0 else application,
                name=f"bench {kind} {i}",
                kind=kind,
                parameters=KINDS[kind].clean(parameters),
                event_type=rng.choice(EVENT_TYPES) if i % 10 == 1 else "",
                service_version=rng.choice(VERSIONS) if i % 10 == 2 else "",
                renotify_minutes=60,
            )
        )
    AlertRule.objects.bulk_create(rules, batch_size=5_000)


def main():
    args = parse_args()
    setup_database()
    from django.db import connection

    from alerts.models import Notification
    from alerts.services import rules_evaluate

    now = datetime.now(UTC)
    started = time.monotonic()
    applications, rng = fill(args, now)
    make_rules(args, applications, rng)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"filled in {time.monotonic() - started:.1f} s; {args.rules:,} rules")
    for run in range(args.passes):
        started = time.monotonic()
        result = rules_evaluate(now=now + timedelta(seconds=run))
        took = time.monotonic() - started
        print(
            f"pass {run + 1}: {result.evaluated:,} rules evaluated in {took:.2f} s, "
            f"{result.notifications:,} notifications"
        )
    print(f"{Notification.objects.count():,} notifications recorded")


if __name__ == "__main__":
    main()

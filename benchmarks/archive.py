"""Archives and restores a million events on PostgreSQL and prints rows/s for each.

Uses its own database (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/telemetry_archive_bench,
dropped and created afresh) and a temporary archive directory. See benchmarks/README.md.
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/telemetry_archive_bench"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=20, help="days the events are spread over (one file a day)")
    parser.add_argument(
        "--delete",
        action="store_true",
        help="leave the month's events in the DEFAULT partition, so the job deletes them row by "
        "row instead of dropping a partition",
    )
    return parser.parse_args()


def fresh_database(url: str) -> None:
    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> int:
    args = parse_args()
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    archive_dir = tempfile.mkdtemp(prefix="telemetry-archive-bench-")
    os.environ["APP_ARCHIVE__DIR"] = archive_dir
    os.environ["APP_ARCHIVE__S3_BUCKET"] = ""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telemetry.settings")
    fresh_database(os.environ["DATABASE_URL"])
    sys.path.insert(0, str(ROOT))

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import Application, Organization, Tier
    from ingest.models import Archive, Event
    from ingest.retention import partitions
    from ingest.retention.archive import archive_restore, archive_run

    call_command("migrate", verbosity=0)
    organization = Organization.objects.create(name="Archive benchmark", tier=Tier.objects.get(slug="free"))
    application = Application.objects.create(organization=organization, name="archive-bench")
    now = datetime.now(UTC)
    month = partitions.month_start(now - timedelta(days=120))
    if not args.delete:
        partitions.partition_create(month=month)
    seconds = args.days * 86400
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Realistic rows: SDK-shaped ids, a few types and categories, a small JSON document.
        cursor.execute(
            f"INSERT INTO {Event._meta.db_table} (organization_id, application_id, event_id, schema_version, "
            'user_id, session_id, event_type, category, data, "timestamp", received_at, service_name, '
            "service_version, service_language, sdk_version) "
            "SELECT %s, %s, gen_random_uuid(), '1.0.0', 'client_' || md5((n %% 5000)::text) || md5((n %% 7)::text), "
            "'sess_' || md5((n / 20)::text), (ARRAY['command','feature_used','error','performance'])[n %% 4 + 1], "
            "(ARRAY['cli','ui',NULL])[n %% 3 + 1], jsonb_build_object('command', 'build', 'success', n %% 2 = 0, "
            "'duration_ms', n %% 1000), %s + make_interval(secs => (n::float8 * %s / %s)), %s, 'my-app', '1.2.3', "
            "'rust', 'telemetry-kit-rust/0.3.0' FROM generate_series(0, %s - 1) AS n",
            [organization.pk, application.pk, month, seconds, args.events, now, args.events],
        )
    where = "DEFAULT partition, deleted row by row" if args.delete else f"partition {partitions.partition_name(month)}"
    print(f"loaded {args.events:,} events over {args.days} days in {time.perf_counter() - started:.1f} s ({where})")

    started = time.perf_counter()
    result = archive_run(now=now)
    archived = time.perf_counter() - started
    assert result.events == args.events, result
    assert not Event.objects.filter(application=application).exists()
    size = sum(Archive.objects.values_list("size_bytes", flat=True))
    print(
        f"archive: {args.events:,} events in {result.archives} files ({size / 2**20:.1f} MiB, "
        f"{size / args.events:.1f} bytes/event) in {archived:.2f} s: {args.events / archived:,.0f} rows/s; "
        f"partitions dropped: {', '.join(result.partitions_dropped) or 'none'}"
    )

    started = time.perf_counter()
    restored = sum(archive_restore(archive=archive) for archive in Archive.objects.order_by("start"))
    elapsed = time.perf_counter() - started
    assert restored == args.events == Event.objects.filter(application=application).count()
    print(f"restore: {restored:,} events in {elapsed:.2f} s: {restored / elapsed:,.0f} rows/s")

    started = time.perf_counter()
    again = sum(archive_restore(archive=archive) for archive in Archive.objects.order_by("start"))
    elapsed = time.perf_counter() - started
    assert again == 0
    print(f"restore again (idempotent, nothing added): {elapsed:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

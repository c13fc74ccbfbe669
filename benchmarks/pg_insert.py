"""CPU per batch for each way the ingest path stores events: PostgreSQL's (its backend's /proc) and
the web worker's side of it (this process).

Creates an application (as ``benchmarks/ingest.py`` does), then stores batches of the load test's
events through the ingest service's own statements, on one connection in autocommit (as a web
worker does): the INSERT tried first, the INSERT skipping events already stored (a client's retry),
and binary COPY. The variants take turns, round after round, so a change in this machine's speed
shows as a spread across rounds rather than as a difference between variants. PostgreSQL must run
on this machine (its backend's CPU is read from /proc).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/telemetry_bench \\
        .venv/bin/python benchmarks/pg_insert.py --batch-size 10 --batches 3000 --rounds 3
"""

import argparse
import os
import sys
import time
from pathlib import Path

from load_test import load_test


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--batches", type=int, default=3000, help="batches per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


def main():
    args = parse_args()
    os.environ.setdefault("DATABASE_URL", load_test.DEFAULT_DATABASE_URL)
    os.environ.setdefault("REDIS_URL", load_test.DEFAULT_REDIS_URL)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telemetry.settings")
    credentials = load_test.application_create(sys.executable, dict(os.environ))

    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from accounts.ingest_targets import ingest_target_get
    from ingest.storage import services
    from ingest.storage.schema import batch_decode

    target = ingest_target_get(org_public_id=credentials["org_id"], app_public_id=credentials["app_id"])
    per_batch = ("telemetry-kit-rust/0.3.0", None)
    variants = {
        "INSERT (first try)": services._pg_insert,
        "INSERT skipping stored": lambda *a: services._pg_insert(*a, skip_stored=True),
        "COPY": services._pg_copy,
    }

    def batches() -> list:
        return [batch_decode(load_test.signed_request(b"", args.batch_size)[0]) for _ in range(args.batches)]

    def backend_cpu_seconds(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    print(
        f"batch size {args.batch_size}, {args.batches} batches per variant and round, "
        f"CPU calibration {load_test.cpu_calibration_ms():.0f} ms"
    )
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, store in variants.items():
            work = batches()
            server, client = backend_cpu_seconds(pid), time.process_time()
            for events in work:
                with services._statement() as conn:
                    store(target, events, timezone.now(), per_batch, conn)
            results[name].append(
                (
                    (backend_cpu_seconds(pid) - server) * 1e6 / args.batches,
                    (time.process_time() - client) * 1e6 / args.batches,
                )
            )
    print("CPU µs per batch, each round: PostgreSQL + this process (psycopg, encoding, the socket)")
    for name, figures in results.items():
        print(f"  {name:24s} " + ",  ".join(f"{pg:,.0f} + {py:,.0f}" for pg, py in figures))


if __name__ == "__main__":
    main()

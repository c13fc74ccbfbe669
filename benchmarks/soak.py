"""Soak: half of the maximum 10-event load for a chosen time against a production server.

Measures the maximum for 15 seconds, then paces wrk at half of it in one-minute rounds (each round's
requests are signed just before it, so signatures stay inside the timestamp window) against the same
server for ``--minutes``. Prints the resident memory of every server process, of PostgreSQL's and of
Redis at the start and the end, the answers by status, and whether the events stored equal the
events accepted.

    .venv/bin/python benchmarks/soak.py --minutes 30
"""

import argparse
import sys
import time

from load_test import load_test as bench

CONNECTIONS = 16
ROUND_SECONDS = 60


def rss_by_process(server_pid: int) -> dict[str, float]:
    """Resident MB of this server's processes (main and workers), and the sums of PostgreSQL's and Redis's."""
    sizes = {"postgres (all, shared memory in each)": 0.0, "redis": 0.0}
    for process in bench.processes():
        if server_pid in (process.pid, process.parent):
            sizes[f"server {process.pid}"] = process.rss_mb
        elif process.name == "postgres":
            sizes["postgres (all, shared memory in each)"] += process.rss_mb
        elif process.name.startswith("redis-server"):
            sizes["redis"] += process.rss_mb
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--port", type=int, default=8182)
    options = parser.parse_args()
    args = argparse.Namespace(
        batch_size=10,
        concurrency=CONNECTIONS,
        duration=15,
        client="wrk",
        max_rate=5000,
        workers=None,
        unlimited=False,
        port=options.port,
        delay_ms=0,
        health=False,
    )
    server, credentials, database_url = bench.start_server(args)
    statuses: dict[str, int] = {}
    accepted = unanswered = 0
    try:
        maximum = bench.run_wrk(args, credentials, lambda: None)
        top_rate = sum(n for s, n in maximum["statuses"].items() if s != "exhausted") / maximum["elapsed"]
        accepted += maximum["accepted"]
        unanswered += maximum["unanswered"]
        rate = top_rate / 2
        print(f"maximum {top_rate:,.0f} requests/s; soaking at {rate:,.0f} for {options.minutes:g} minutes")
        start = rss_by_process(server.pid)
        deadline = time.monotonic() + options.minutes * 60
        rounds = 0
        while time.monotonic() < deadline:
            paced = argparse.Namespace(
                **{
                    **vars(args),
                    "duration": min(ROUND_SECONDS, deadline - time.monotonic()),
                    "max_rate": int(rate * 1.2) + 1,
                    "delay_ms": 1000 * CONNECTIONS / rate,
                }
            )
            if paced.duration < 1:
                break
            result = bench.run_wrk(paced, credentials, lambda: None)
            for status, count in result["statuses"].items():
                statuses[status] = statuses.get(status, 0) + count
            accepted += result["accepted"]
            unanswered += result["unanswered"]
            rounds += 1
            print(f"  round {rounds}: {result['statuses']}, p99 {result['p99']:.1f} ms", flush=True)
        end = rss_by_process(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    stored = bench.stored_count(database_url, credentials["app_id"])
    consistent = accepted <= stored <= accepted + unanswered * args.batch_size
    errors = {status: count for status, count in statuses.items() if status not in ("200", "exhausted")}
    print(f"\n{'process':40} {'start MB':>9} {'end MB':>9} {'growth':>8}")
    growths = []
    for name in sorted(set(start) | set(end)):
        before, after = start.get(name, 0), end.get(name, 0)
        growth = 100 * (after - before) / before if before else float("nan")
        if name.startswith("server") and before:
            growths.append(growth)
        print(f"{name:40} {before:9.0f} {after:9.0f} {growth:+7.1f}%")
    print(f"\nanswers {statuses}; errors {errors or 'none'}")
    print(f"accepted {accepted}, stored {stored}: {'stored == accepted' if consistent else 'LOST OR EXTRA EVENTS'}")
    print(f"largest growth of a server process: {max(growths, default=0):+.1f}% (target < 10%)")
    return 0 if consistent and not errors and max(growths, default=0) < 10 else 1


if __name__ == "__main__":
    sys.exit(main())

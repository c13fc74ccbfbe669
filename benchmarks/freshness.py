"""How soon an accepted event shows in the charts, under full ingest load: accepted-to-visible p50
and p99, and the rollup lag over the run.

Starts the production server and the rollup follower (the Procfile's ``web`` and ``rollups``) on
PostgreSQL and Redis as ``ingest.py`` does, then, for ``--duration`` seconds (default 600):

- ``--concurrency`` connections (default 8) send signed 1000-event batches as fast as the server
  takes them, as ``ingest.py --batch-size 1000`` does;
- one probe sends a marker event (its own type) and reads the stats API (``/v1/stats/.../events``
  by minute, filtered by that type, with a read token: what the charts read) every 50 ms until
  the marker is counted; accepted-to-visible runs from the ingest answer to that read;
- every 10 s, the rollup lag: the ids stored past each of the follower's cursors (the counts', and
  the users' and properties') and the age of the oldest of them (how far behind it is).

    .venv/bin/python benchmarks/freshness.py                 # 10 minutes
    .venv/bin/python benchmarks/freshness.py --duration 60
"""

import argparse
import hashlib
import hmac
import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
# ingest.py by path: its module name would be the project's ingest package.
_spec = importlib.util.spec_from_file_location("ingest_benchmark", HERE / "ingest.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/telemetry_bench_freshness"
POLL_SECONDS = 0.05
LAG_EVERY_SECONDS = 10
MARKER_TYPE = "freshness_marker"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=600, help="seconds of load (default 600)")
    parser.add_argument("--concurrency", type=int, default=8, help="connections sending 1000-event batches")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--port", type=int, default=8182)
    parser.add_argument("--dev-venv", action="store_true", help="run the server from this environment")
    return parser.parse_args()


def read_token(python: str, env: dict, org_id: str) -> str:
    made = subprocess.run(
        [
            python,
            "manage.py",
            "shell",
            "-v",
            "0",
            "-c",
            "from accounts.models import Organization; from accounts.services import read_token_issue; "
            f"print(read_token_issue(organization=Organization.objects.get(public_id='{org_id}'), "
            "name='freshness').token)",
        ],
        cwd=bench.ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return made.stdout.strip().splitlines()[-1]


def marker_send(credentials: dict) -> None:
    event = bench.EVENT_TEMPLATE % (str(uuid.uuid4()), _now(), _now())
    body = ('{"events":[' + event.replace('"type":"command"', f'"type":"{MARKER_TYPE}"') + "]}").encode()
    timestamp, nonce = str(int(time.time())), str(uuid.uuid4())
    secret = credentials["hmac_secret"].encode()
    headers = {
        "Content-Type": "application/json",
        "X-Signature": hmac.new(secret, f"{timestamp}:{nonce}:".encode() + body, hashlib.sha256).hexdigest(),
        "X-Timestamp": timestamp,
        "X-Nonce": nonce,
        "X-Batch-Size": "1",
        "X-SDK-Version": "telemetry-kit-rust/0.3.0",
        "X-Schema-Version": "1.0.0",
    }
    request = urllib.request.Request(credentials["ingest_url"], data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert answer["accepted"] == 1, answer


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def markers_counted(stats_url: str, token: str) -> int:
    request = urllib.request.Request(stats_url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["total"]


def probe(credentials: dict, stats_url: str, token: str, deadline: float, delays: list[float]) -> None:
    sent = markers_counted(stats_url, token)
    while time.time() < deadline:
        marker_send(credentials)
        accepted = time.perf_counter()
        sent += 1
        while markers_counted(stats_url, token) < sent:
            time.sleep(POLL_SECONDS)
        delays.append(time.perf_counter() - accepted)
        time.sleep(0.5)


# The follower's cursors: the counts' (what the charts read) and the users' and properties'.
CURSORS = ("events", "insights")


def lag_sample(database_url: str) -> tuple:
    """For each cursor, the ids stored past it and the age in seconds of the oldest of them."""
    sample = []
    with psycopg.connect(database_url) as conn:
        high = conn.execute("SELECT max(id) FROM ingest_event").fetchone()[0] or 0
        for name in CURSORS:
            cursor = conn.execute("SELECT last_event_id FROM ingest_rollupcursor WHERE name = %s", (name,)).fetchone()
            last = cursor[0] if cursor else 0
            oldest = conn.execute(
                "SELECT received_at FROM ingest_event WHERE id > %s ORDER BY id LIMIT 1", (last,)
            ).fetchone()
            behind = (datetime.now(UTC) - oldest[0]).total_seconds() if oldest else 0.0
            sample += [max(high - last, 0), behind]
    return tuple(sample)


def lag_sampler(database_url: str, deadline: float, samples: list) -> None:
    started = time.time()
    while time.time() < deadline:
        time.sleep(LAG_EVERY_SECONDS)
        samples.append((time.time() - started, *lag_sample(database_url)))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


def main():
    args = parse_args()
    print(f"CPU calibration {bench.cpu_calibration_ms():.0f} ms (lower is a faster machine at this moment)")
    options = argparse.Namespace(
        port=args.port, workers=None, duration=args.duration, dev_venv=args.dev_venv, unlimited=False
    )
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    # The probe reads the stats API 20 times a second.
    os.environ.setdefault("APP_READ_API__REQUESTS_PER_MINUTE", "100000")
    server, credentials, database_url = bench.start_server(options)
    env = bench.server_env(options)
    python = sys.executable if args.dev_venv else bench.production_python()
    follower = subprocess.Popen([python, "manage.py", "rollups_follow"], cwd=bench.ROOT, env=env)
    try:
        token = read_token(python, env, credentials["org_id"])
        started = datetime.now(UTC).replace(second=0, microsecond=0)
        query = urllib.parse.urlencode(
            {
                "interval": "minute",
                "type": MARKER_TYPE,
                "since": (started - timedelta(minutes=1)).isoformat(),
                "until": (started + timedelta(seconds=args.duration + 600)).isoformat(),
            }
        )
        stats_url = (
            f"http://127.0.0.1:{args.port}/v1/stats/{credentials['org_id']}/{credentials['app_id']}/events?{query}"
        )
        deadline = time.time() + args.duration
        queue = multiprocessing.Queue()
        loaders = [
            multiprocessing.Process(target=bench.python_client, args=(credentials, args.batch_size, deadline, queue))
            for _ in range(args.concurrency)
        ]
        for loader in loaders:
            loader.start()
        delays, lags = [], []
        sampler = threading.Thread(target=lag_sampler, args=(database_url, deadline, lags))
        sampler.start()
        load_started = time.time()
        time.sleep(5)  # the load under way first
        probe(credentials, stats_url, token, deadline, delays)
        parts = [queue.get() for _ in loaders]
        for loader in loaders:
            loader.join()
        elapsed = time.time() - load_started
        sampler.join()
    finally:
        follower.terminate()
        server.terminate()
        follower.wait(timeout=30)
        server.wait(timeout=30)
    accepted = sum(part[2] for part in parts)
    print(f"load          {args.concurrency} connections of {args.batch_size}-event batches, {elapsed:.0f} s")
    print(f"  events/s    {accepted / elapsed:,.0f} accepted")
    print(f"accepted-to-visible, {len(delays)} markers read through /v1/stats/.../events")
    print(f"  p50 {percentile(delays, 0.5):.2f} s  p99 {percentile(delays, 0.99):.2f} s  max {max(delays):.2f} s")
    print("rollup lag     (ids past each cursor; age of the oldest): counts | users and properties")
    for at, past, behind, insights_past, insights_behind in lags:
        print(
            f"  {at:5.0f} s  {past:>9,} ids  {behind:6.2f} s behind | "
            f"{insights_past:>9,} ids  {insights_behind:6.2f} s behind"
        )
    thirds = [lags[i * len(lags) // 3 : (i + 1) * len(lags) // 3] for i in range(3)]
    for label, column in (("counts", 2), ("users and properties", 4)):
        means = [sum(sample[column] for sample in third) / max(len(third), 1) for third in thirds]
        print(f"  {label}: mean seconds behind by third of the run: " + ", ".join(f"{m:.2f}" for m in means))
    return 0


if __name__ == "__main__":
    sys.exit(main())

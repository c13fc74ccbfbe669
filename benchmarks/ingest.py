"""Load test of the signed ingest endpoint against a server started as in production.

Starts the production server (``python -m telemetry.server``) on PostgreSQL and Redis, creates a
fresh application, sends signed batches for a fixed time, and prints events/s, requests/s,
latency percentiles and whether the events stored equal the events accepted.

Two load generators: ``wrk`` (Debian package ``wrk``) replays requests signed beforehand, each
once, and leaves nearly all the CPU to the server; ``python`` signs as it goes from several
processes (for large batches, where building the body is the client's main cost anyway).

    .venv/bin/python benchmarks/ingest.py --batch-size 1 --concurrency 16 --duration 15
    .venv/bin/python benchmarks/ingest.py --batch-size 1000 --concurrency 4 --duration 15
    .venv/bin/python benchmarks/ingest.py --scenarios     # every target, then a table (~8 minutes)
"""

import argparse
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/telemetry_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
PRODUCTION_VENV = ROOT / "var" / "bench-venv"
STEADY_MIN_S = 5  # wrk: a run with fewer whole seconds of every thread sending reports the span's rate

# Each event carries its own id and the time it was made, as an SDK's events do: the time matters to
# PostgreSQL, whose indexes on (application, timestamp, ...) take increasing keys at their right end.
EVENT_TEMPLATE = (
    '{"event_id":"%s","schema_version":"1.0.0","timestamp":"%s",'
    '"user_id":"client_' + "ab" * 32 + '","session_id":"sess_' + "c" * 32 + '",'
    '"service":{"name":"bench","version":"1.0.0","language":"rust","language_version":"1.95"},'
    '"event":{"type":"command","category":"cli","data":{"command":"build","duration_ms":1234,"success":true,'
    '"flags":["--release","--locked"]}},'
    '"metadata":{"transmission_timestamp":"%s","batch_size":1,"retry_count":0}}'
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=100, help="events per request")
    parser.add_argument("--concurrency", type=int, default=16, help="connections, one request in flight each")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load")
    parser.add_argument(
        "--client",
        choices=("wrk", "python"),
        default=None,
        help="load generator (default: wrk if installed and batches of 100 or fewer)",
    )
    parser.add_argument(
        "--max-rate", type=int, default=5000, help="wrk: requests/s to sign beforehand (more than the server can take)"
    )
    parser.add_argument("--workers", type=int, default=None, help="server worker processes")
    parser.add_argument(
        "--unlimited",
        action="store_true",
        help="put the application on an unlimited tier (no rate limit or quota work)",
    )
    parser.add_argument("--port", type=int, default=8181)
    parser.add_argument(
        "--dev-venv",
        action="store_true",
        help="run the server from this environment, test tools included, instead of one "
        "with the production dependencies only (var/bench-venv)",
    )
    parser.add_argument("--delay-ms", type=float, default=0, help="wrk: pause of each connection between requests")
    parser.add_argument("--health", action="store_true", help="also measure /health's server time after the load")
    parser.add_argument(
        "--scenarios",
        action="store_true",
        help="run every target of the ingest-speed issue and print a table of results",
    )
    parser.add_argument("--soak", type=int, default=300, help="seconds of the memory scenario (default 300)")
    return parser.parse_args()


def server_env(args) -> dict:
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    env.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    env.update(APP_SERVER__PORT=str(args.port), APP_OBSERVABILITY__LOG_LEVEL="warning")
    if args.workers:
        env["APP_SERVER__WORKERS"] = str(args.workers)
    if args.duration > 200:
        # wrk sends requests signed before the run: a long run needs a wider timestamp window
        # (every check still runs; the nonce memory widens with it).
        env["APP_SECURITY__TIMESTAMP_TOLERANCE"] = str(int(args.duration) + 120)
    return env


def ensure_database(url: str) -> None:
    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def production_python() -> str:
    """The interpreter of an environment holding what production installs (``pip install .``, as the
    Dockerfile does) and nothing more. The development environment also holds the test tools, and
    some libraries the server uses import them when present (DRF imports requests and pygments: ~7 MB
    a worker), which would skew the memory figures. Built on first use and when pyproject.toml changes."""
    python, stamp = PRODUCTION_VENV / "bin" / "python", PRODUCTION_VENV / ".installed"
    if not stamp.exists() or stamp.stat().st_mtime < (ROOT / "pyproject.toml").stat().st_mtime:
        print(f"installing the production dependencies into {PRODUCTION_VENV.relative_to(ROOT)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PRODUCTION_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", str(ROOT)], check=True
        )
        stamp.touch()
    return str(python)


def application_create(python: str, env: dict, unlimited: bool = False) -> dict:
    """Migrates the database and creates a fresh application; returns its credentials (create_app --json)."""
    ensure_database(env["DATABASE_URL"])
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    # A limited tier whose limits are never reached: every request pays for rate limit and quota.
    subprocess.run(
        [
            python,
            "manage.py",
            "shell",
            "-v",
            "0",
            "-c",
            "from accounts.models import Tier; Tier.objects.update_or_create(slug='benchmark', defaults="
            "dict(name='Benchmark', monthly_event_quota=10**15, requests_per_minute=10**9, "
            "retention_days=30, is_unlimited=False))",
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    org = "Benchmark unlimited" if unlimited else "Benchmark"
    tier = "self-hosted" if unlimited else "benchmark"
    created = subprocess.run(
        [
            python,
            "manage.py",
            "create_app",
            "--org",
            org,
            "--tier",
            tier,
            "--name",
            f"bench-{uuid.uuid4().hex[:6]}",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(created.stdout)


def start_server(args):
    env = server_env(args)
    python = sys.executable if args.dev_venv else production_python()
    credentials = application_create(python, env, unlimited=args.unlimited)
    server = subprocess.Popen([python, "-m", "telemetry.server"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{args.port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{base}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    # One worker answering does not mean all have loaded: wait for the server's processes to go
    # quiet, so that their start-up is not counted as CPU spent on requests.
    for _ in range(60):
        before = cpu_seconds_by_program()["server"]
        time.sleep(0.5)
        if cpu_seconds_by_program()["server"] - before < 0.02:
            break
    credentials["ingest_url"] = f"{base}/v1/ingest/{credentials['org_id']}/{credentials['app_id']}"
    return server, credentials, env["DATABASE_URL"]


def signed_request(secret: bytes, batch_size: int) -> tuple[bytes, dict]:
    # The client shares the machine's CPU with the server, so its events are made cheaply: random
    # version-4 ids cut from one read of urandom (a third of uuid.uuid4()'s cost, one by one), and
    # timestamps a microsecond apart within the second before the request is made.
    digits = os.urandom(16 * batch_size).hex()
    second = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.")
    events = (
        EVENT_TEMPLATE
        % (f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:]}", f"{second}{i:06d}Z", f"{second}999999Z")
        for i, h in enumerate(digits[k : k + 32] for k in range(0, 32 * batch_size, 32))
    )
    body = ('{"events":[' + ",".join(events) + "]}").encode()
    timestamp, nonce = str(int(time.time())), str(uuid.uuid4())
    signature = hmac.new(secret, f"{timestamp}:{nonce}:".encode() + body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-Signature": signature,
        "X-Timestamp": timestamp,
        "X-Nonce": nonce,
        "X-Batch-Size": str(batch_size),
        "X-SDK-Version": "telemetry-kit-rust/0.3.0",
        "X-Schema-Version": "1.0.0",
    }


def python_client(credentials, batch_size, deadline, queue):
    secret = credentials["hmac_secret"].encode()
    url = urllib.parse.urlsplit(credentials["ingest_url"])
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    latencies, statuses, accepted = [], {}, 0
    while time.time() < deadline:
        body, headers = signed_request(secret, batch_size)
        started = time.perf_counter()
        connection.request("POST", url.path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if response.status in (200, 207):
            accepted += json.loads(answer)["accepted"]
    queue.put((latencies, statuses, accepted))


def run_python(args, credentials, load_started) -> dict:
    start = time.time() + 0.5
    queue = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(target=python_client, args=(credentials, args.batch_size, start + args.duration, queue))
        for _ in range(args.concurrency)
    ]
    for process in processes:
        process.start()
    load_started()
    parts = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    elapsed = time.time() - start
    latencies = sorted(value for part in parts for value in part[0])
    statuses = {}
    for part in parts:
        for status, count in part[1].items():
            statuses[str(status)] = statuses.get(str(status), 0) + count

    def percentile(fraction):
        return latencies[min(len(latencies) - 1, int(len(latencies) * fraction))] if latencies else float("nan")

    return {
        "statuses": statuses,
        "accepted": sum(part[2] for part in parts),
        "elapsed": elapsed,
        "p50": percentile(0.5),
        "p99": percentile(0.99),
        "unanswered": 0,
    }


def run_wrk(args, credentials, load_started) -> dict:
    secret = credentials["hmac_secret"].encode()
    path = urllib.parse.urlsplit(credentials["ingest_url"]).path
    count = int(args.max_rate * args.duration)
    threads = min(4, args.concurrency)
    # One file per wrk thread: wrk starts each thread as soon as that thread has read its requests,
    # while the next ones still read theirs, so the reading is kept short.
    prefix = Path(tempfile.mkdtemp(prefix="wrk-ingest-")) / "requests"
    files = [open(f"{prefix}.{number}", "wb") for number in range(1, threads + 1)]
    try:
        for index in range(count):
            body, headers = signed_request(secret, args.batch_size)
            files[index % threads].write(
                f"{path} {headers['X-Nonce']} {headers['X-Timestamp']} {headers['X-Signature']} "
                f"{args.batch_size} {len(body)}\n".encode()
                + body
                + b"\n"
            )
        for handle in files:
            handle.close()
        base = credentials["ingest_url"][: -len(path)]
        env = dict(os.environ, WRK_REQUESTS_FILE=str(prefix), WRK_DELAY_MS=str(args.delay_ms))
        load_started()
        output = subprocess.run(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(args.concurrency),
                "-d",
                f"{int(args.duration)}s",
                "--timeout",
                "10s",
                "-s",
                str(Path(__file__).with_name("wrk_ingest.lua")),
                base,
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        shutil.rmtree(prefix.parent)
    fields = dict(re.findall(r"(\w+)=(\S+)", output.split("WRK_RESULT", 1)[1]))
    statuses = {key[len("status_") :]: int(value) for key, value in fields.items() if key.startswith("status_")}
    answered = sum(count for status, count in statuses.items() if status != "exhausted")
    # From the first signed request sent to the last answer read, over every thread: wrk's own
    # duration starts once its last thread has started, after the first ones began sending. (With
    # no answer at all there is no span: wrk's duration then.)
    elapsed = float(fields["load_s"]) or float(fields["duration_s"])
    return {
        "statuses": statuses,
        "accepted": int(fields["accepted"]),
        "elapsed": elapsed,
        "p50": float(fields["p50_ms"]),
        "p99": float(fields["p99_ms"]),
        "unanswered": int(fields["sent"]) - answered,
        "steady": (int(fields["steady_answers"]), int(fields["steady_accepted"]), int(fields["steady_s"])),
    }


def stored_count(database_url, app_id) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM ingest_event e JOIN accounts_application a ON a.id = e.application_id "
            "WHERE a.public_id = %s",
            (app_id,),
        ).fetchone()[0]


class Process(NamedTuple):
    pid: int
    parent: int
    name: str
    command: bytes
    rss_mb: float
    cpu_seconds: float  # its own, and that of its children which have exited and been waited for


def processes():
    """Every process, read once from /proc: its parent, name, command line, resident memory and CPU
    time. The CPU time includes the children it has reaped: PostgreSQL's backends come and go (a
    connection lives CONN_MAX_AGE seconds) and their time would otherwise leave the sums with them."""
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read()
            with open(f"/proc/{entry}/status") as handle:
                rss = re.search(r"VmRSS:\s+(\d+)", handle.read())
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        yield Process(
            int(entry),
            int(fields[1]),
            stat[stat.index("(") + 1 : stat.rindex(")")],
            command,
            int(rss.group(1)) / 1024 if rss else 0.0,
            sum(map(int, fields[11:15])) / tick,
        )


def cpu_seconds_by_program() -> dict[str, float]:
    """CPU time used so far by the server's processes, PostgreSQL's and Redis's (from /proc).

    CPU per request is steadier than requests/s on a machine whose speed drifts, and it says which
    program the time goes to."""
    totals = {"server": 0.0, "postgres": 0.0, "redis": 0.0}
    for process in processes():
        if b"telemetry.server" in process.command:
            totals["server"] += process.cpu_seconds
        elif process.name == "postgres":
            totals["postgres"] += process.cpu_seconds
        elif process.name.startswith("redis-server"):
            totals["redis"] += process.cpu_seconds
    return totals


def machine_ticks() -> tuple[int, int, int]:
    """The machine's CPU time so far, in clock ticks over all CPUs: (total, idle, stolen). Stolen
    time is when this virtual machine was ready to run and its host ran something else."""
    with open("/proc/stat") as handle:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, handle.readline().split()[1:9])
    return user + nice + system + idle + iowait + irq + softirq + steal, idle + iowait, steal


def cpu_calibration_ms() -> float:
    """Milliseconds for a fixed CPU-bound task: this machine's speed varies from run to run, and this
    figure shows how fast it was while the numbers were taken."""
    started = time.process_time()
    document = [{"event_id": str(uuid.UUID(int=i)), "n": i, "tags": ["a", "b"]} for i in range(20_000)]
    for _ in range(5):
        json.loads(json.dumps(document))
    return (time.process_time() - started) * 1000


def worker_rss_mb() -> list[float]:
    """Resident memory of each web worker process (granian's children running the application); the
    main process, started by this script, serves nothing, and the WebSocket listener (``--websockets``,
    a process of its own and its worker) has no part in this load."""
    return [
        process.rss_mb
        for process in processes()
        if b"telemetry.server" in process.command
        and b"--websockets" not in process.command
        and process.parent != os.getpid()
    ]


def server_histogram(port: int, route: str) -> dict[str, float]:
    """The server's own request-time histogram of one route: cumulative counts by upper bound in
    seconds ("+Inf" included), and "sum" and "count". The server's time runs from the application
    receiving the request to its answer, so it leaves out waiting in sockets and for a worker thread."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    figures = {}
    for part, labels, value in re.findall(
        r"^http_request_duration_seconds_(bucket|sum|count)\{([^}]*)\} (\S+)$", text, re.MULTILINE
    ):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if labels["route"] == route:
            figures[labels["le"] if part == "bucket" else part] = float(value)
    return figures


def health_server_ms(port: int, seconds: int = 5) -> float:
    """Mean server time of GET /health under wrk, from the server's own request histogram."""
    subprocess.run(
        ["wrk", "-t", "2", "-c", "4", "-d", f"{seconds}s", f"http://127.0.0.1:{port}/health"],
        check=True,
        capture_output=True,
    )
    histogram = server_histogram(port, "health")
    return 1000 * histogram["sum"] / histogram["count"]


def run(args) -> dict:
    """One load run; prints its figures and returns them."""
    client = args.client or ("wrk" if shutil.which("wrk") and args.batch_size <= 100 else "python")
    server, credentials, database_url = start_server(args)
    try:
        # Memory is read a fifth into the load (after the workers warmed up) and at its end.
        rss_start: list[float] = []
        early = threading.Timer(args.duration / 5, lambda: rss_start.extend(worker_rss_mb()))
        cpu_before, ticks_before = cpu_seconds_by_program(), machine_ticks()
        result = (run_wrk if client == "wrk" else run_python)(args, credentials, early.start)
        early.cancel()
        cpu_after, ticks_after = cpu_seconds_by_program(), machine_ticks()
        rss_end = worker_rss_mb()
        ingest_times = server_histogram(args.port, "ingest")
        health_ms = health_server_ms(args.port) if args.health else None
    finally:
        server.terminate()
        server.wait(timeout=30)
    statuses, elapsed, accepted = result["statuses"], result["elapsed"], result["accepted"]
    requests = sum(count for status, count in statuses.items() if status != "exhausted")
    stored = stored_count(database_url, credentials["app_id"])
    # wrk stops with requests in flight, unanswered: the server may still store their events.
    in_flight = result["unanswered"] * args.batch_size
    consistent = accepted <= stored <= accepted + in_flight
    print(
        f"batch size {args.batch_size}, concurrency {args.concurrency}, client {client}, "
        f"{'unlimited tier' if args.unlimited else 'rate limit and quota enforced'}, {elapsed:.1f} s"
    )
    print(f"  statuses      {statuses}")
    requests_per_s, events_per_s = requests / elapsed, accepted / elapsed
    steady_requests, steady_accepted, steady_s = result.get("steady", (0, 0, 0))
    if steady_s >= STEADY_MIN_S:
        # wrk's threads start one by one, each once it has read its file of signed requests (CPU
        # work beside the server's): the rate is the one of the seconds when every thread sent.
        print(
            f"  over the span {requests_per_s:,.0f} requests/s, {events_per_s:,.0f} events/s "
            f"({elapsed:.1f} s, from the first request sent)"
        )
        requests_per_s, events_per_s = steady_requests / steady_s, steady_accepted / steady_s
        print(f"  steady        {steady_s} s with every connection sending")
    exhausted = statuses.get("exhausted", 0)
    if exhausted:
        print(f"  RAN OUT of signed requests: {exhausted} /health requests sent in their place")
    print(f"  requests/s    {requests_per_s:,.0f}")
    print(f"  events/s      {events_per_s:,.0f}")
    print(f"  latency ms    p50 {result['p50']:.1f}  p99 {result['p99']:.1f}")
    # Where a slow answer's time went: in the application (the server's histogram), or before it.
    # (A run that reached no ingest request has no histogram lines for it: zeros.)
    answered = max(ingest_times.get("count", 0), 1)
    over = {bound: 1 - ingest_times.get(bound, answered) / answered for bound in ("0.05", "0.1")}
    print(
        f"  server time   mean {1000 * ingest_times.get('sum', 0) / answered:.1f} ms, "
        f"over 50 ms {100 * over['0.05']:.2f}%, over 100 ms {100 * over['0.1']:.2f}% of requests"
    )
    # The client's own work (signing) is not in these: only the server's, PostgreSQL's and Redis's.
    print(
        "  CPU ms/request "
        + "  ".join(
            f"{name} {1000 * (cpu_after[name] - cpu_before[name]) / max(requests, 1):.2f}" for name in cpu_before
        )
    )
    # On a virtual machine, time the host gave to others while this one had work: a run with much
    # of it measured a slower machine than its calibration says.
    total, idle, stolen = (after - before for before, after in zip(ticks_before, ticks_after))
    print(
        f"  machine       {100 * (total - idle - stolen) / max(total, 1):.0f}% busy, "
        f"{100 * stolen / max(total, 1):.1f}% stolen by the host"
    )
    print(
        f"  worker RSS MB {' '.join(f'{size:.0f}' for size in rss_start)} a fifth into the load, "
        f"{' '.join(f'{size:.0f}' for size in rss_end)} at end"
    )
    if health_ms is not None:
        print(f"  /health       {health_ms:.3f} ms server time (mean)")
    print(
        f"  accepted      {accepted}" + (f" (+ up to {in_flight} in flight when the load stopped)" if in_flight else "")
    )
    verdict = "== accepted" + (" + in flight" if stored > accepted else "")
    print(f"  stored        {stored}  {verdict if consistent else '!= accepted: LOST OR EXTRA EVENTS'}")
    return {
        "requests_per_s": requests_per_s,
        "events_per_s": events_per_s,
        "p50": result["p50"],
        "p99": result["p99"],
        "consistent": consistent and set(statuses) - {"exhausted"} <= {"200"},
        "exhausted": exhausted,
        "rss_start": max(rss_start, default=0),
        "rss_end": max(rss_end, default=0),
        "health_ms": health_ms,
    }


def scenarios(args) -> int:
    """Every target of the ingest-speed issue, one run each, then a table."""

    def variant(**changes):
        return argparse.Namespace(
            **{**vars(args), "client": None, "max_rate": 5000, "delay_ms": 0, "health": False, **changes}
        )

    rows = []
    large = run(variant(batch_size=1000, concurrency=8))
    rows.append(
        (
            "1000-event batches",
            ">= 50,000 events/s",
            f"{large['events_per_s']:,.0f} events/s",
            large["events_per_s"] >= 50_000,
            large["consistent"],
        )
    )
    small = run(variant(batch_size=10, concurrency=16, health=True))
    rows.append(
        (
            "10-event batches",
            ">= 2,000 requests/s",
            f"{small['requests_per_s']:,.0f} requests/s",
            small["requests_per_s"] >= 2_000,
            small["consistent"],
        )
    )
    rows.append(("/health", "< 1 ms server time", f"{small['health_ms']:.3f} ms", small["health_ms"] < 1, True))
    # Half the load: each of 16 connections waits between requests so that together they send
    # half of the requests/s just measured.
    half_rate = small["requests_per_s"] / 2
    half = run(
        variant(
            batch_size=10, concurrency=16, max_rate=int(small["requests_per_s"]) + 1, delay_ms=1000 * 16 / half_rate
        )
    )
    rows.append(
        (
            f"p99 at half load ({half['requests_per_s']:,.0f} requests/s)",
            "< 50 ms",
            f"{half['p99']:.1f} ms",
            half["p99"] < 50,
            half["consistent"],
        )
    )
    # Signed for twice the rate just measured: the load must last the whole soak.
    soak = run(
        variant(batch_size=10, concurrency=16, duration=args.soak, max_rate=int(small["requests_per_s"] * 2) + 1)
    )
    growth = 100 * (soak["rss_end"] - soak["rss_start"]) / max(soak["rss_start"], 1)
    rows.append(
        (
            f"web worker memory after {args.soak} s",
            "< 100 MB, no growth",
            f"{soak['rss_end']:.0f} MB ({growth:+.0f}% from {soak['rss_start']:.0f} MB a fifth into the run)"
            + (", load ran out of signed requests" if soak["exhausted"] else ""),
            soak["rss_end"] < 100 and growth < 10 and not soak["exhausted"],
            soak["consistent"],
        )
    )
    print("\n| scenario | target | measured | result | stored == accepted |\n| --- | --- | --- | --- | --- |")
    for name, target, measured, passed, consistent in rows:
        print(f"| {name} | {target} | {measured} | {'pass' if passed else 'FAIL'} | {'yes' if consistent else 'NO'} |")
    return 0 if all(row[4] for row in rows) else 1


def main():
    args = parse_args()
    print(f"CPU calibration {cpu_calibration_ms():.0f} ms (lower is a faster machine at this moment)")
    if args.scenarios:
        return scenarios(args)
    return 0 if run(args)["consistent"] else 1


if __name__ == "__main__":
    sys.exit(main())

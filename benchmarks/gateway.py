"""What the web server's front costs per request, apart from Django: granian serving a trivial WSGI
application through its own WSGI interface (a thread reads the body as the application asks for
it), through ``telemetry.gateway`` (the event loop reads the body with a deadline, then a request
thread runs the application), and a trivial RSGI application answering on the event loop itself
(what reading on the loop costs before any thread is involved).

Each runs in one worker process under wrk (Debian package ``wrk``) with a 3 KB POST body, in
interleaved rounds; the figures are requests/s and the worker process's CPU per request (user and
system, from /proc), the second being the one that adds to a real request's cost.

    .venv/bin/python benchmarks/gateway.py --rounds 3 --duration 6
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

APPLICATIONS = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from telemetry.gateway import Gateway, Limits

    def wsgi(environ, start_response):
        environ["wsgi.input"].read()
        start_response("200 OK", [("content-type", "application/json")])
        return [b'{{"ok": true}}']

    gateway = Gateway(wsgi, threads=4, limits=Limits(
        max_body_size=1 << 20, body_timeout=30, send_timeout=30, max_requests_per_address=0))

    class OnTheLoop:
        async def __rsgi__(self, scope, protocol):
            await protocol()
            protocol.response_bytes(200, [("content-type", "application/json")], b'{{"ok": true}}')

    on_the_loop = OnTheLoop()
""")

FRONTS = {
    "granian WSGI, 4 threads": ["--interface", "wsgi", "--blocking-threads", "4", "apps:wsgi"],
    "gateway (RSGI), 4 threads": ["--interface", "rsgi", "apps:gateway"],
    "RSGI on the loop, no thread": ["--interface", "rsgi", "apps:on_the_loop"],
}

LUA = 'wrk.method = "POST"\nwrk.body = string.rep("x", 3000)\nwrk.headers["Content-Type"] = "application/json"\n'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def worker_of(server: subprocess.Popen) -> int:
    for _ in range(100):
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("granian started no worker")


def measure(workdir: Path, arguments: list[str], duration: int, connections: int) -> tuple[float, float]:
    port = free_port()
    granian = Path(sys.executable).parent / "granian"
    server = subprocess.Popen(
        [str(granian), "--workers", "1", "--port", str(port), "--log-level", "warning", *arguments],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    try:
        worker = worker_of(server)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        ticks = cpu_ticks(worker)
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration}s",
                "-s",
                str(workdir / "post.lua"),
                f"http://127.0.0.1:{port}/",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        used = (cpu_ticks(worker) - ticks) / os.sysconf("SC_CLK_TCK")
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        return rate, used / (rate * duration) * 1e6
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "apps.py").write_text(APPLICATIONS.format(root=str(ROOT)))
        (workdir / "post.lua").write_text(LUA)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in FRONTS}
        for round_number in range(1, args.rounds + 1):
            for name, arguments in FRONTS.items():
                rate, cpu = measure(workdir, arguments, args.duration, args.connections)
                results[name].append((rate, cpu))
                print(
                    f"round {round_number}  {name:30s} {rate:8,.0f} requests/s  {cpu:6.1f} µs CPU/request", flush=True
                )
    print("\nmedian over the rounds")
    for name, runs in results.items():
        rates, cpus = sorted(r for r, _ in runs), sorted(c for _, c in runs)
        print(f"  {name:30s} {rates[len(rates) // 2]:8,.0f} requests/s  {cpus[len(cpus) // 2]:6.1f} µs CPU/request")


if __name__ == "__main__":
    main()

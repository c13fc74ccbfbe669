"""Where one signed ingest request spends its CPU: requests called in process, without an HTTP server.

Creates an application (on the limited tier ``benchmarks/ingest.py`` uses, so rate limit and quota
work is done), signs requests beforehand, then calls the WSGI application (``telemetry.wsgi``) on
them from one thread. Prints the Python CPU time per request of the unprofiled runs (after one to
warm up), and the top functions of a cProfile of one more run, by own time and by cumulative time.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/telemetry_bench REDIS_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python benchmarks/profile_ingest.py --batch-size 10 --requests 3000
"""

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

from load_test import load_test


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument(
        "--requests",
        type=int,
        default=3000,
        help="requests per run (a warm-up run, the timed runs, then a profiled run)",
    )
    parser.add_argument("--top", type=int, default=25, help="functions listed per ordering")
    parser.add_argument("--runs", type=int, default=1, help="timed runs, unprofiled")
    parser.add_argument(
        "--no-cprofile",
        action="store_true",
        help="timed runs only: for a sampling profiler watching from outside (py-spy)",
    )
    return parser.parse_args()


def environ_for(path: str, body: bytes, headers: dict) -> dict:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": headers["Content-Type"],
    }
    for name, value in headers.items():
        if name != "Content-Type":
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def main():
    args = parse_args()
    os.environ.setdefault("DATABASE_URL", load_test.DEFAULT_DATABASE_URL)
    os.environ.setdefault("REDIS_URL", load_test.DEFAULT_REDIS_URL)
    os.environ["APP_OBSERVABILITY__LOG_LEVEL"] = "warning"
    credentials = load_test.application_create(sys.executable, dict(os.environ))
    path = f"/v1/ingest/{credentials['org_id']}/{credentials['app_id']}"
    secret = credentials["hmac_secret"].encode()

    from telemetry.wsgi import application

    statuses: dict[str, int] = {}

    def start_response(status, headers, exc_info=None):
        statuses[status] = statuses.get(status, 0) + 1

    def signed() -> list[dict]:
        return [environ_for(path, *load_test.signed_request(secret, args.batch_size)) for _ in range(args.requests)]

    def run(requests: list[dict]) -> float:
        started = time.process_time()
        for environ in requests:
            application(environ, start_response)
        return (time.process_time() - started) * 1000 / len(requests)

    run(signed())  # warm up: modules, connections, caches, prepared statements
    statuses.clear()
    cpu_ms = [run(signed()) for _ in range(args.runs)]
    print(f"batch size {args.batch_size}, {args.requests} requests a run, statuses {statuses}")
    print("Python CPU per request, unprofiled: " + ", ".join(f"{ms:.3f}" for ms in cpu_ms) + " ms")
    if args.no_cprofile:
        return
    requests = signed()  # signed outside the profile
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    run(requests)
    profile.disable()

    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
        print(f"\n--- by {order} ---")
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


if __name__ == "__main__":
    main()

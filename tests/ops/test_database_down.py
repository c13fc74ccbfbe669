"""Broken on purpose: a PostgreSQL cluster of the test's own (not the shared one), stopped in the
middle of a load and started again. Ingest answers 503 with Retry-After, never a 500; every event
acknowledged before the stop is stored; and a client that retries the batches it got no 200 for
ends with each event stored exactly once."""

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.conftest import AppKeys, batch_body, make_event, signed_headers
from tests.server import ROOT, running_server, unused_port, wsgi_to_http

BIN = Path("/usr/lib/postgresql/15/bin")


def as_postgres(*command: str) -> list[str]:
    # PostgreSQL refuses to run as root; CI runs the suite as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@contextmanager
def private_cluster():
    """A new cluster on a free port, in a directory of its own that the postgres user can reach
    (pytest's are private to root); yields (port, start, stop)."""
    directory = Path(tempfile.mkdtemp(prefix="telemetry-test-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
    port = unused_port()
    subprocess.run(
        as_postgres(str(BIN / "initdb"), "-D", str(directory / "data"), "-U", "postgres", "--auth=trust", "--no-sync"),
        check=True,
        capture_output=True,
    )

    def start():
        subprocess.run(
            as_postgres(
                str(BIN / "pg_ctl"),
                "-D",
                str(directory / "data"),
                "-w",
                "-l",
                str(directory / "log"),
                "-o",
                f"-p {port} -k {directory} -c fsync=off",
                "start",
            ),
            check=True,
            capture_output=True,
        )

    def stop():
        subprocess.run(
            as_postgres(str(BIN / "pg_ctl"), "-D", str(directory / "data"), "-w", "-m", "fast", "stop"),
            check=True,
            capture_output=True,
        )

    start()
    try:
        yield port, start, stop
    finally:
        subprocess.run(
            as_postgres(str(BIN / "pg_ctl"), "-D", str(directory / "data"), "-m", "immediate", "stop"),
            capture_output=True,
        )
        shutil.rmtree(directory, ignore_errors=True)


def test_database_stopped_mid_load_answers_503_and_retries_store_each_event_once(tmp_path):
    with private_cluster() as (pg_port, start_database, stop_database):
        url = f"postgres://postgres@127.0.0.1:{pg_port}/telemetry"
        with psycopg.connect(f"postgres://postgres@127.0.0.1:{pg_port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE telemetry")
        env = {**os.environ, "DATABASE_URL": url, "APP_DATA_DIR": str(tmp_path)}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        created = json.loads(
            subprocess.run(
                [sys.executable, "manage.py", "create_app", "--org", "Outage", "--name", "outage", "--json"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        keys = _keys(created)
        batches = [[make_event() for _ in range(20)] for _ in range(60)]
        answers: dict[int, list] = {number: [] for number in range(len(batches))}
        stop_sending = threading.Event()

        with running_server(tmp_path, DATABASE_URL=url) as port:

            def send(number):
                body = batch_body(batches[number])
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    conn.request(
                        "POST",
                        keys.url,
                        body=body,
                        headers={"Content-Type": "application/json", **wsgi_to_http(signed_headers(keys, body))},
                    )
                    response = conn.getresponse()
                    answers[number].append((response.status, response.getheader("Retry-After")))
                    response.read()
                except (OSError, http.client.HTTPException):
                    answers[number].append(("no answer", None))

            def load():
                for number in range(len(batches)):
                    if stop_sending.is_set():
                        return
                    send(number)
                    time.sleep(0.02)

            sender = threading.Thread(target=load)
            sender.start()
            time.sleep(0.3)
            stop_database()
            time.sleep(0.5)
            start_database()
            sender.join(timeout=60)
            stop_sending.set()
            # The client retries, signed anew, every batch it got no 200 for, until it does.
            for _ in range(20):
                unacknowledged = [n for n, tries in answers.items() if not tries or tries[-1][0] != 200]
                if not unacknowledged:
                    break
                for number in unacknowledged:
                    send(number)
                time.sleep(0.5)

        with psycopg.connect(url) as conn:
            stored = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM ingest_event").fetchone()

    first_answers = [tries[0] for tries in answers.values() if tries]
    refused = [answer for answer in first_answers if answer[0] != 200]
    assert refused, "the load never met the stopped database"
    assert all(status == 503 and int(retry_after) > 0 for status, retry_after in refused if status != "no answer")
    assert not [tries for tries in answers.values() if any(status == 500 for status, _ in tries)]
    assert stored == (len(batches) * 20, len(batches) * 20)


def _keys(created: dict) -> AppKeys:
    """Credentials of an application in the private database, in the shape the signing helpers take."""

    class Application:
        public_id = created["app_id"]

        class organization:
            public_id = created["org_id"]

    return AppKeys(application=Application, api_token=created["api_token"], hmac_secret=created["hmac_secret"])

"""The production web server: ``python -m telemetry.server`` (the Procfile's ``web``).

Granian (Rust, HTTP/1.1 and 2) serves the Django application from a few processes. In each, an
event loop reads requests, bodies included, with deadlines (telemetry/gateway.py), and a small pool
of threads runs them: a request is short CPU work between waits on PostgreSQL and Redis, so threads
keep a process busy while one waits, and no thread ever waits on a client.

A second Granian, started as a child process, serves WebSocket event streams (``telemetry.asgi``)
on APP_SERVER__WEBSOCKET_PORT from one asyncio process; it stops with the first.
"""

import os
import subprocess
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telemetry.settings")
# Granian's own allocator (jemalloc) otherwise keeps the pages of freed bodies for 10 s, in one
# arena per thread: under large batches, 4 - 6 MB a worker. Given back at once, from one arena, for
# about a millisecond of CPU a 1000-event request (benchmarks/README.md). Read when granian loads,
# here and in the workers it starts.
os.environ.setdefault("_RJEM_MALLOC_CONF", "narenas:1,tcache:false,dirty_decay_ms:0,muzzy_decay_ms:0")


def _die_with_parent() -> None:
    """In the child: Linux stops it when the server dies, even killed without a chance to clean up."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Supervised:
    """A child process started again whenever it exits, until ``stop``: the WebSocket listener must
    not vanish while HTTP goes on serving."""

    def __init__(self, command: list[str]):
        import threading

        self._command, self._stopping = command, threading.Event()
        self._process = self._start()
        threading.Thread(target=self._watch, name="websocket-listener", daemon=True).start()

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(self._command, preexec_fn=_die_with_parent)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            code = self._process.wait()
            if self._stopping.wait(1.0):  # also paces restarts of a listener that cannot start
                return
            print(f"WebSocket listener exited with {code}; starting it again", file=sys.stderr, flush=True)
            self._process = self._start()

    def stop(self) -> None:
        self._stopping.set()
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()


def _crypto_warm() -> None:
    """Runs OpenSSL's one-time set-up (the system's, for request signatures, and the one inside
    cryptography, for stored secrets) here, before the workers start: each then shares its state
    rather than running it again, which cost a worker about 1.5 MB of resident memory."""
    import hashlib
    import hmac

    from telemetry.lib import crypto

    hmac.new(b"key", b"message", hashlib.sha256).digest()
    try:
        crypto.decrypt(crypto.encrypt("secret"))
    except ValueError:
        pass  # a malformed APP_SECURITY__CREDENTIALS_KEYS is reported where a secret is used


def _websocket_listener(settings) -> None:
    # The websockets library rather than granian: it bounds a message from its frame headers,
    # where granian assembles up to 64 MiB first (ingest/families/sockets.py says what else it bounds).
    import asyncio

    from ingest.families.sockets import listen

    asyncio.run(listen(host=settings.SERVER_HOST, port=settings.SERVER_WEBSOCKET_PORT))


def main() -> None:
    import shutil

    import django
    from django.conf import settings

    if sys.argv[1:] == ["--websockets"]:
        django.setup()
        _websocket_listener(settings)
        return
    # Worker processes share their metrics through files here; a restart starts them from zero. Set
    # before the apps load: prometheus_client picks a counter's storage when a module (an admin's
    # import of the tasks, say) first makes it, and the workers inherit the choice.
    metrics_dir = settings.DATA_DIR / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    django.setup()
    _crypto_warm()
    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    listener = (
        _Supervised([sys.executable, "-m", "telemetry.server", "--websockets"])
        if settings.SERVER_WEBSOCKET_PORT
        else None
    )
    try:
        # RSGI: bodies are read on each worker's event loop, and Django runs on the gateway's own
        # threads (telemetry/gateway.py says why).
        Granian(
            "telemetry.rsgi:application",
            address=settings.SERVER_HOST,
            port=settings.SERVER_PORT,
            interface=Interfaces.RSGI,
            workers=settings.SERVER_WORKERS,
            backpressure=settings.SERVER_MAX_REQUESTS,
            http1_settings=HTTP1Settings(header_read_timeout=settings.SERVER_HEADER_TIMEOUT * 1000),
            websockets=False,
            respawn_failed_workers=True,
            log_level=settings.LOG_LEVEL,
        ).serve()
    finally:
        if listener is not None:
            listener.stop()


if __name__ == "__main__":
    main()

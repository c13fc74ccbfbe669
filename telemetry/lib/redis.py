"""Redis clients: one connection pool per process, and in each thread a client holding one of its
connections.

A client drawing from the pool for every command first checks the connection it takes out for
unread data or a close by the server (two system calls and a failed read): a tenth to a fifth of
the client's CPU for the one command of an ingest request (benchmarks/README.md). A thread's own
connection is checked so only when the thread has not used it for a while (IDLE_CHECK_SECONDS): a
busy thread sends each command straight down it, and an idle one still finds out that Redis
restarted meanwhile before sending, not by failing. Pipelines draw a connection from the pool.
"""

import hashlib
import os
import threading
import time
from functools import lru_cache

import redis
from django.conf import settings

# A thread's connection unused for longer than this is checked before its next command.
IDLE_CHECK_SECONDS = 0.1

_thread = threading.local()
# A forked child must not share its parent's socket: the thread that forked makes a new client
# there (and the pool, seeing a new process id, new connections).
os.register_at_fork(after_in_child=lambda: _thread.__dict__.clear())


@lru_cache(maxsize=2)
def _pool(url: str) -> redis.ConnectionPool:
    return redis.ConnectionPool.from_url(url, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30)


def get_redis() -> redis.Redis | None:
    """This thread's client of the configured Redis, or None on the embedded default.

    Made on a thread's first call. Making it connects: it raises ``redis.ConnectionError`` when Redis
    is down, as its first command would. Its connection goes back to the pool when the thread ends.
    """
    url = settings.REDIS_URL
    if not url:
        return None
    now = time.monotonic()
    if getattr(_thread, "url", None) != url:
        _thread.client = redis.Redis(connection_pool=_pool(url), single_connection_client=True)
        _thread.url, _thread.scripts = url, {}
    elif now - _thread.used > IDLE_CHECK_SECONDS:
        _connection_check(_thread.client.connection)
    _thread.used = now
    return _thread.client


def _connection_check(connection: redis.Connection) -> None:
    """Drops a connection the server has closed (or that holds a reply nobody read); the next
    command opens a new one. The same check the pool makes on every checkout."""
    try:
        stale = connection.can_read()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        stale = True
    if stale:
        connection.disconnect()


class _Script:
    """A Lua script run by EVALSHA straight down its thread's connection, called as redis-py's Script
    is: ``script(keys=[...], args=[...])``.

    redis-py's Script goes through the client's command layers (its lock, retry wrapper and reply
    callbacks), a tenth or more of the ingest admission's time (benchmarks/README.md). The thread
    owns this connection, so none of that is needed. A script the server does not hold
    (restarted, flushed) is loaded and run again. A failure while sending or reading drops the
    connection, leaving no half-read reply on it, and is not retried: the scripts claim nonces and
    reserve quota, so a resend after a lost reply would refuse the request as a replay or count
    its events twice, where an error lets the client send it again.
    """

    def __init__(self, client: redis.Redis, source: str):
        self._client, self._source = client, source
        self._sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, keys=(), args=()):
        try:
            return self._run(keys, args)
        except redis.exceptions.NoScriptError:
            self._sha = self._client.script_load(self._source)
            return self._run(keys, args)

    def _run(self, keys, args):
        # Either call drops the connection itself when it fails (redis-py's own handling).
        connection = self._client.connection
        connection.send_command("EVALSHA", self._sha, len(keys), *keys, *args)
        return connection.read_response()


def redis_script(source: str) -> _Script | None:
    """The Lua script for this thread's client (run by EVALSHA, loaded when the server lacks it), or
    None on the embedded default."""
    client = get_redis()
    if client is None:
        return None
    if source not in _thread.scripts:
        _thread.scripts[source] = _Script(client, source)
    return _thread.scripts[source]

"""Redis clients: one connection pool per process, and in each thread a client holding one of its
connections.

A client that holds its connection sends each command straight down it. A client drawing from the
pool for every command first checks the connection it takes out for unread data (two system calls
and a failed read): a fifth to a quarter of the client's CPU for the one command of an ingest
request (benchmarks/README.md). Pipelines still draw a connection of their own from the pool.
"""

import os
import threading
from functools import lru_cache

import redis
from django.conf import settings

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
    if getattr(_thread, "url", None) != url:
        _thread.client = redis.Redis(connection_pool=_pool(url), single_connection_client=True)
        _thread.url, _thread.scripts = url, {}
    return _thread.client


def redis_script(source: str):
    """The Lua script registered with this thread's client (run by EVALSHA, loaded on first use), or
    None on the embedded default."""
    client = get_redis()
    if client is None:
        return None
    if source not in _thread.scripts:
        _thread.scripts[source] = client.register_script(source)
    return _thread.scripts[source]

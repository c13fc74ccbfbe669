"""Redis clients: each thread holds one connection, replaces it when the server closed it, and gives it
back when the thread ends."""

import threading
import time

import pytest
import redis

from ingest.access.admission import _ADMIT
from telemetry.lib.redis import IDLE_CHECK_SECONDS, get_redis, redis_script


def open_connections() -> int:
    """Connections to the test suite's Redis database, from every client of this machine."""
    client = get_redis()
    db = str(client.connection_pool.connection_kwargs.get("db", 0))
    return sum(1 for entry in client.client_list() if entry["db"] == db)


def admit_unsigned():
    """The admission script as an unsigned, unlimited request runs it (nothing is counted)."""
    redis_script(_ADMIT)(
        keys=["tk:test:nonce", "tk:test:generation", "tk:test:rate", "tk:test:quota"], args=[0, 0, -1, 0, 0]
    )


def test_a_thread_uses_one_connection_for_every_command_and_script():
    get_redis().ping()
    before = open_connections()

    for _ in range(20):
        get_redis().incr("tk:test:thread")
        admit_unsigned()

    assert open_connections() == before
    assert get_redis() is get_redis()


def test_short_lived_threads_leave_no_connection_behind():
    # The development server answers each request from a thread of its own.
    get_redis().ping()
    before = open_connections()

    for _ in range(20):
        thread = threading.Thread(target=admit_unsigned)
        thread.start()
        thread.join()

    # Each thread's connection went back to the pool as it ended, and the next thread took it again.
    assert open_connections() <= before + 1


def test_a_connection_the_server_closed_while_idle_is_replaced_before_the_next_command(settings):
    client = get_redis()
    first_id = client.client_id()
    # As a Redis restart would: the server closes this thread's connection while it sits unused.
    with redis.Redis.from_url(settings.REDIS_URL) as other:
        other.client_kill_filter(_id=first_id)
    time.sleep(IDLE_CHECK_SECONDS * 2)

    assert get_redis().incr("tk:test:after-close") >= 1  # no ConnectionError
    assert get_redis().client_id() != first_id


def test_scripts_run_again_after_the_server_forgets_them():
    # As after a Redis restart: the server no longer holds the scripts this thread has run.
    admit_unsigned()
    get_redis().script_flush()

    admit_unsigned()  # no NoScriptError

    assert get_redis().incr("tk:test:after-flush") >= 1  # and the connection is in step


def test_a_script_whose_connection_broke_raises_once_and_the_next_call_reconnects(settings):
    admit = redis_script(_ADMIT)  # fetched now, so no idle check stands between the kill and the call
    first_id = get_redis().client_id()
    with redis.Redis.from_url(settings.REDIS_URL) as other:
        other.client_kill_filter(_id=first_id)

    with pytest.raises(redis.ConnectionError):  # not resent: a resend could count the request twice
        admit(keys=["tk:test:nonce", "tk:test:generation", "tk:test:rate", "tk:test:quota"], args=[0, 0, -1, 0, 0])
    admit_unsigned()

    assert get_redis().client_id() != first_id

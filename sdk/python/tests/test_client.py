"""The client's promises that need no server: it never raises, and refuses what cannot be sent."""

import asyncio
import os
import socket
import subprocess
import sys

import pytest

from telemetry_kit import AsyncClient, Client


@pytest.fixture(autouse=True)
def _tracking_allowed(monkeypatch):
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    for name in ("TK_ENDPOINT", "TK_ORG_ID", "TK_APP_ID", "TK_TOKEN", "TK_SECRET", "TK_QUEUE_PATH"):
        monkeypatch.delenv(name, raising=False)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def offline_settings(tmp_path) -> dict:
    """Settings for a server that is not there: requests fail at once with "connection refused"."""
    return {
        "endpoint": f"http://127.0.0.1:{closed_port()}",
        "org_id": "org_test",
        "app_id": "app_0000abcd",
        "secret": "test_secret",
        "service_name": "unit",
        "queue_path": str(tmp_path / "queue.sqlite3"),
    }


def offline_client(tmp_path, **settings) -> Client:
    return Client(**offline_settings(tmp_path), **settings)


def test_do_not_track_records_nothing_and_creates_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    client = offline_client(tmp_path)

    event_id = client.track("command", {"n": 1})

    assert event_id is None
    assert not client.enabled
    assert client.flush() is True
    client.close()
    assert list(tmp_path.iterdir()) == []


def test_missing_settings_disable_the_client_instead_of_raising(tmp_path, caplog):
    client = Client(
        endpoint="https://telemetry.example.com", service_name="unit", queue_path=str(tmp_path / "queue.sqlite3")
    )

    assert client.track("command") is None
    assert not client.enabled
    assert "org_id is not set (TK_ORG_ID)" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_unknown_setting_is_logged_not_raised(caplog):
    client = Client(endpoint="https://telemetry.example.com", colour="blue")

    assert not client.enabled
    assert "cannot set up the client" in caplog.text


def test_data_that_is_not_json_is_dropped_and_reported(tmp_path):
    dropped = []
    client = offline_client(tmp_path, on_drop=dropped.extend)

    event_id = client.track("command", {"ratio": float("nan")})

    assert event_id is None
    assert [(item.event_id, item.reason) for item in dropped] == [(None, "not_json")]
    assert client.stats().dropped == 1
    client.close(timeout=0)


def test_event_over_the_size_limit_is_dropped_and_reported(tmp_path):
    dropped = []
    client = offline_client(tmp_path, on_drop=dropped.extend, max_event_bytes=1000)

    event_id = client.track("command", {"blob": "x" * 1000})

    assert event_id is None
    assert [item.reason for item in dropped] == ["too_large"]
    client.close(timeout=0)


def test_failing_on_drop_callback_does_not_reach_the_caller(tmp_path, caplog):
    def on_drop(dropped):
        raise RuntimeError("the callback's own bug")

    client = offline_client(tmp_path, on_drop=on_drop)

    assert client.track("command", {"ratio": float("inf")}) is None
    assert "the on_drop callback failed" in caplog.text
    client.close(timeout=0)


def test_events_wait_in_the_offline_queue_while_the_server_cannot_be_reached(tmp_path):
    client = offline_client(tmp_path, backoff_base=60)
    for n in range(3):
        client.track("command", {"n": n})

    delivered = client.flush(timeout=5)  # one attempt, then a backoff beyond the timeout
    client.close(timeout=0)

    assert not delivered
    stats = client.stats()
    assert (stats.tracked, stats.delivered, stats.failed_attempts, stats.pending) == (3, 0, 1, 3)
    assert offline_client(tmp_path).stats().pending == 3  # the next run finds them


def test_track_after_close_is_ignored(tmp_path):
    client = offline_client(tmp_path)
    client.close(timeout=0)

    assert client.track("command") is None


def test_exit_stores_what_was_tracked_without_waiting_for_the_server(tmp_path):
    script = (
        "from telemetry_kit import AsyncClient, Client\n"
        "client = Client(service_name='unit', backoff_base=60)\n"
        "client.track('command', {'n': 1})\n"
    )
    env = {
        **os.environ,
        "TK_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "TK_ORG_ID": "org_test",
        "TK_APP_ID": "app_0000abcd",
        "TK_SECRET": "test_secret",
        "TK_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
    }

    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=30)

    assert offline_client(tmp_path).stats().pending == 1


def test_forked_child_records_with_a_sender_of_its_own(tmp_path):
    client = offline_client(tmp_path, backoff_base=60)
    client.track("command", {"from": "parent"})
    client.flush(timeout=5)

    child = os.fork()
    if child == 0:  # the child reports through its exit status: pytest must not go on in it
        tracked = client.track("command", {"from": "child"}) is not None
        client.flush(timeout=5)
        os._exit(0 if tracked and client.stats().pending == 2 else 1)
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    client.close(timeout=0)


def test_async_flush_leaves_the_event_loop_free(tmp_path):
    async def main():
        client = AsyncClient(**offline_settings(tmp_path), backoff_base=60)
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        running = asyncio.create_task(ticker())
        client.track("command", {"n": 1})
        await client.flush(timeout=5)
        running.cancel()
        await client.aclose(timeout=0)
        return ticks

    assert asyncio.run(main()) > 0

"""The Python SDK (sdk/python) against the production server, over real HTTP, on the test database."""

import asyncio
import os
import re
import subprocess
import sys

import pytest

from accounts.models import Tier
from ingest.access.admission import outcomes_flush
from ingest.models import Event, Outcome
from telemetry_kit import AsyncClient
from tests.conftest import app_keys_create
from tests.sdk.conftest import eventually, sdk_client, sdk_settings, stored_ids
from tests.server import database_env_for_server, running_server, unused_port

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_tracked_events_arrive_exactly_once_in_the_servers_shape(endpoint, tmp_path):
    keys = app_keys_create()
    client = sdk_client(keys, endpoint, tmp_path / "queue.sqlite3", batch_size=10)

    tracked = [client.track("command", {"index": index}, category="cli") for index in range(25)]
    delivered = client.flush(timeout=30)

    assert delivered
    assert stored_ids(keys) == sorted(tracked)
    event = Event.objects.get(application=keys.application, event_id=tracked[3])
    assert (event.event_type, event.category, event.data) == ("command", "cli", {"index": 3})
    assert re.fullmatch(r"client_[0-9a-f]{64}", event.user_id)
    assert re.fullmatch(r"sess_[0-9a-f]{32}", event.session_id)
    assert (event.service_name, event.service_version, event.service_language) == ("sdk-e2e", "2.1.0", "python")
    assert event.sdk_version.startswith("telemetry-kit-python/")
    stats = client.stats()
    assert (stats.tracked, stats.delivered, stats.dropped, stats.failed_attempts, stats.pending) == (25, 25, 0, 0, 0)
    client.close()


def test_async_client_delivers_from_a_running_event_loop(endpoint, tmp_path):
    keys = app_keys_create()

    async def main():
        async with AsyncClient(**sdk_settings(keys, endpoint, tmp_path / "queue.sqlite3")) as telemetry:
            tracked = [telemetry.track("request", {"n": n}) for n in range(3)]
            return tracked, await telemetry.flush(timeout=30)

    tracked, delivered = asyncio.run(main())

    assert delivered
    assert stored_ids(keys) == sorted(tracked)


def test_events_tracked_just_before_a_script_exits_are_delivered(endpoint, tmp_path):
    keys = app_keys_create()
    script = (
        "from telemetry_kit import Client\nprint(Client(service_name='exiting-script').track('done', {'ok': True}))\n"
    )
    environment = {name: value for name, value in os.environ.items() if not name.startswith("TK_")}
    environment.update(
        {
            "TK_ENDPOINT": endpoint,
            "TK_ORG_ID": keys.org_id,
            "TK_APP_ID": keys.app_id,
            "TK_SECRET": keys.hmac_secret,
            "TK_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
        }
    )

    finished = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=60, check=True
    )

    assert stored_ids(keys) == [finished.stdout.strip()]


def test_batch_over_the_servers_size_limit_is_split_and_an_event_too_large_alone_dropped(tmp_path):
    keys = app_keys_create()
    dropped = []
    with running_server(
        tmp_path / "server", APP_INGESTION__MAX_PAYLOAD_SIZE="4000", **database_env_for_server()
    ) as port:
        client = sdk_client(
            keys, f"http://127.0.0.1:{port}", tmp_path / "queue.sqlite3", on_drop=dropped.extend, batch_size=6
        )
        tracked = [client.track("command", {"padding": "x" * 200, "n": n}) for n in range(6)]  # ~4.2 kB in all
        too_large = client.track("command", {"padding": "x" * 5000})
        assert client.flush(timeout=30)
        tracked.append(client.track("command", {"n": "after"}))
        assert client.flush(timeout=30)
        client.close()

    assert stored_ids(keys) == sorted(tracked)
    assert [(item.event_id, item.reason) for item in dropped] == [(too_large, "payload_too_large")]


def test_batch_the_server_cuts_off_unread_is_sent_again_in_smaller_batches(tmp_path):
    keys = app_keys_create()
    with running_server(
        tmp_path / "server", APP_INGESTION__MAX_PAYLOAD_SIZE="250000", **database_env_for_server()
    ) as port:
        client = sdk_client(
            keys, f"http://127.0.0.1:{port}", tmp_path / "queue.sqlite3", batch_size=64, max_batch_bytes=16_000_000
        )
        # 8 MB in one batch: refused from its Content-Length, the connection closed before it is all sent.
        tracked = [client.track("upload", {"padding": "x" * 125_000, "n": n}) for n in range(64)]
        delivered = client.flush(timeout=60)
        client.close()

    assert delivered
    assert stored_ids(keys) == sorted(tracked)


def test_server_stopped_and_restarted_mid_stream_loses_nothing(tmp_path):
    keys = app_keys_create()
    port = unused_port()  # the restarted server listens where the client sends: the same port both times
    client = sdk_client(keys, f"http://127.0.0.1:{port}", tmp_path / "queue.sqlite3", batch_size=5)
    tracked = []

    with running_server(tmp_path / "first", port, **database_env_for_server()):
        tracked += [client.track("step", {"phase": "before", "n": n}) for n in range(10)]
        eventually(lambda: len(stored_ids(keys)) == 10)
    tracked += [client.track("step", {"phase": "while down", "n": n}) for n in range(10)]
    eventually(lambda: client.stats().failed_attempts >= 1)
    with running_server(tmp_path / "second", port, **database_env_for_server()):
        tracked += [client.track("step", {"phase": "after", "n": n}) for n in range(10)]
        eventually(lambda: client.stats().pending == 0 and len(stored_ids(keys)) == 30)

    assert stored_ids(keys) == sorted(tracked)
    assert client.stats().dropped == 0
    client.close()


def test_events_queued_while_the_server_is_unreachable_are_sent_by_the_next_run(endpoint, tmp_path):
    keys = app_keys_create()
    queue = tmp_path / "queue.sqlite3"
    first_run = sdk_client(keys, f"http://127.0.0.1:{unused_port()}", queue)  # nothing listens there
    tracked = [first_run.track("command", {"n": n}) for n in range(5)]
    first_run.close()
    assert first_run.stats().pending == 5

    next_run = sdk_client(keys, endpoint, queue)
    delivered = next_run.flush(timeout=30)
    next_run.close()

    assert delivered
    assert stored_ids(keys) == sorted(tracked)


def test_rate_limited_batch_waits_for_retry_after_and_then_arrives_once(endpoint, tmp_path):
    # A minute's 6 requests at once, then one every 10 s: the 7th waits up to 10 s.
    six_a_minute = Tier.objects.create(
        slug="six-a-minute",
        name="Six a minute",
        monthly_event_quota=1_000_000,
        requests_per_minute=6,
        retention_days=30,
    )
    keys = app_keys_create(organization__tier=six_a_minute)
    client = sdk_client(keys, endpoint, tmp_path / "queue.sqlite3")

    sent = []
    for n in range(6):  # the allowance, one request each
        sent.append(client.track("command", {"n": n}))
        assert client.flush(timeout=10)
    last = client.track("command", {"n": 6})
    delivered = client.flush(timeout=30)  # answered 429, and sent again once the Retry-After has passed

    assert delivered
    assert stored_ids(keys) == sorted([*sent, last])
    # One 429 in all: the client did not try again before the Retry-After had passed.
    outcomes_flush()
    refused = Outcome.objects.filter(application_id=keys.application.pk, outcome=Outcome.Kind.RATE_LIMITED)
    assert sum(refused.values_list("count", flat=True)) == 1
    assert client.stats().failed_attempts == 1
    client.close()


def test_invalid_event_is_dropped_and_reported_and_the_rest_of_its_batch_delivered(endpoint, tmp_path):
    keys = app_keys_create()
    dropped = []
    client = sdk_client(keys, endpoint, tmp_path / "queue.sqlite3", on_drop=dropped.extend)

    good = client.track("command", {"n": 1})
    bad = client.track("command", {"text": "PostgreSQL refuses \x00"})
    also_good = client.track("command", {"n": 2})
    settled = client.flush(timeout=30)

    assert settled
    assert stored_ids(keys) == sorted([good, also_good])
    assert [(item.event_id, item.reason) for item in dropped] == [(bad, "invalid_data")]
    assert (client.stats().delivered, client.stats().dropped, client.stats().pending) == (2, 1, 0)
    client.close()


def test_batch_of_only_invalid_events_is_dropped_and_the_queue_moves_on(endpoint, tmp_path):
    keys = app_keys_create()
    dropped = []
    client = sdk_client(keys, endpoint, tmp_path / "queue.sqlite3", on_drop=dropped.extend)
    bad = client.track("t" * 300, {"n": 1})  # the server's limit for a type is 255 characters
    assert client.flush(timeout=30)  # answered 422

    later = client.track("command", {"n": 2})
    delivered = client.flush(timeout=30)

    assert delivered
    assert stored_ids(keys) == [later]
    assert [(item.event_id, item.reason) for item in dropped] == [(bad, "invalid_event")]
    client.close()


def test_do_not_track_sends_nothing_and_stores_nothing(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    keys = app_keys_create()
    client_dir = tmp_path / "client"
    client = sdk_client(keys, endpoint, client_dir / "queue.sqlite3")

    event_id = client.track("command", {"n": 1})
    client.flush(timeout=10)
    client.close()

    assert event_id is None
    assert not client_dir.exists()
    assert not Event.objects.filter(application=keys.application).exists()
    outcomes_flush()
    assert not Outcome.objects.filter(application_id=keys.application.pk).exists()

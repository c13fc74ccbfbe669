"""Event streams against the production server (``python -m telemetry.server``): a chunked HTTP
body stored while it is still arriving, and the WebSocket transport on the server's WebSocket
listener, driven by real clients (http.client, websockets)."""

import http.client
import queue
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ingest.models import Event, Stream
from tests.conftest import app_keys_create
from tests.server import stream_url

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def wait_until(condition, what: str, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def stream_events(keys) -> int:
    return Event.objects.filter(application=keys.application, stream_id__isnull=False).count()


def chunked_stream(port: int, keys) -> tuple[queue.Queue, threading.Thread, dict]:
    """Starts a chunked POST of an event stream whose body is what is put in the queue (None ends it);
    returns the queue, the sending thread and the dict the answer lands in."""
    lines: queue.Queue = queue.Queue()

    def body():
        while (chunk := lines.get()) is not None:
            yield chunk

    answer = {}

    def send():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(
            "POST",
            f"/v1/streams/{keys.org_id}/{keys.app_id}",
            body=body(),
            encode_chunked=True,
            headers={"Authorization": f"Bearer {keys.api_token}", "Content-Type": "application/x-ndjson"},
        )
        response = conn.getresponse()
        answer.update(status=response.status, body=response.read(), code=response.getheader("X-Error-Code"))

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return lines, sender, answer


def test_a_chunked_stream_is_stored_while_it_arrives(live):
    keys = app_keys_create()
    lines, sender, answer = chunked_stream(live[0], keys)
    padding = "x" * 100
    try:
        for n in range(600):  # about 64 KB: several of the server's reads
            lines.put(b'{"n": %d, "pad": "%s"}\n' % (n, padding.encode()))
        # The request is still open: the first values must already be in the database.
        wait_until(lambda: stream_events(keys) >= 300, "values stored before the body ended")
        assert "status" not in answer
        for n in range(600, 5000):
            lines.put(b'{"n": %d}\n' % n)
    finally:
        lines.put(None)
    sender.join(timeout=30)

    assert (answer["status"], answer["body"]) == (200, b"5000")
    assert stream_events(keys) == 5000
    assert sorted(Event.objects.filter(application=keys.application).values_list("data__n", flat=True)) == list(
        range(5000)
    )


def test_websocket_messages_are_events_and_the_count_comes_back(live):
    keys = app_keys_create()
    url = stream_url(live[1], keys)

    with connect(url, user_agent_header="seed-002-client") as socket_:
        socket_.send('{"level": "INFO", "msg": "hi mom"}')
        socket_.send(b'{"type": "metric", "value": 3}')
        socket_.send("plain text, not JSON")
        counts = []
        while not counts or counts[-1] != "3":
            counts.append(socket_.recv(timeout=10))
        socket_.send(b"")  # an empty binary message: the server hangs up
        with pytest.raises(ConnectionClosed):
            socket_.recv(timeout=10)
        close_code = socket_.protocol.close_rcvd.code

    assert close_code == 1000
    assert [int(count) for count in counts] == sorted(int(count) for count in counts)
    stream = Stream.objects.get(application=keys.application)
    assert (stream.transport, stream.event_count, stream.ending) == ("websocket", 3, "completed")
    assert stream.headers["user-agent"] == "seed-002-client"
    assert "authorization" not in stream.headers
    events = Event.objects.filter(stream_id=stream.pk).order_by("id")
    assert [(event.event_type, event.category, event.data) for event in events] == [
        ("stream", "INFO", {"level": "INFO", "msg": "hi mom"}),
        ("metric", None, {"type": "metric", "value": 3}),
        ("stream", None, "plain text, not JSON"),
    ]


def test_websocket_token_may_come_as_a_header(live):
    keys = app_keys_create()
    url = f"ws://127.0.0.1:{live[1]}/v1/streams/{keys.org_id}/{keys.app_id}"

    with connect(url, additional_headers={"Authorization": f"Bearer {keys.api_token}"}) as socket_:
        socket_.send("{}")
        assert socket_.recv(timeout=10) == "1"

    wait_until(
        lambda: Stream.objects.filter(application=keys.application).exclude(ending="").exists(), "the stream is closed"
    )
    assert Stream.objects.get(application=keys.application).ending == "disconnected"


@pytest.mark.parametrize("token", ["", "tk_" + "0" * 32, "other"])
def test_a_websocket_without_the_application_token_is_refused(live, token):
    keys, other = app_keys_create(), app_keys_create()
    token = other.api_token if token == "other" else token
    url = f"ws://127.0.0.1:{live[1]}/v1/streams/{keys.org_id}/{keys.app_id}?token={token}"

    with pytest.raises(InvalidStatus) as refused:
        connect(url)

    assert refused.value.response.status_code == 403
    assert Stream.objects.count() == 0


def test_a_websocket_stops_when_the_monthly_quota_runs_out(live):
    from tests.ingest.test_limits import keys_on, tier

    keys = keys_on(tier(monthly_event_quota=2))
    url = stream_url(live[1], keys)

    with connect(url) as socket_:
        for n in range(3):
            socket_.send(f'{{"n": {n}}}')
        last = None
        with pytest.raises(ConnectionClosed):
            while True:
                last = socket_.recv(timeout=10)
        close = socket_.protocol.close_rcvd

    assert last == "2"
    assert (close.code, close.reason) == (1008, "quota_exceeded")
    assert Event.objects.filter(application=keys.application).count() == 2
    assert Stream.objects.get(application=keys.application).ending == "quota_exceeded"


def test_a_websocket_over_the_rate_limit_is_closed_with_try_again_later(live):
    from tests.ingest.test_limits import keys_on, tier

    keys = keys_on(tier(requests_per_minute=1))
    url = stream_url(live[1], keys)
    with connect(url) as first:
        first.send("{}")
        assert first.recv(timeout=10) == "1"

    with connect(url) as second:
        with pytest.raises(ConnectionClosed):
            second.recv(timeout=10)
        close = second.protocol.close_rcvd

    assert close.code == 1013
    assert close.reason.startswith("rate_limit_exceeded")
    assert Stream.objects.filter(application=keys.application).count() == 1


def test_revoking_the_token_stops_a_stream_in_progress(live):
    from accounts.ingest_targets import TARGET_CACHE_SECONDS
    from accounts.services import credential_revoke

    keys = app_keys_create()
    lines, sender, answer = chunked_stream(live[0], keys)
    padding = b"x" * 100
    try:
        for n in range(300):
            lines.put(b'{"n": %d, "pad": "%s"}\n' % (n, padding))
        wait_until(lambda: stream_events(keys) >= 100, "the first values stored")
        credential_revoke(credential=keys.application.credentials.get())
        time.sleep(TARGET_CACHE_SECONDS + 0.5)  # the server's processes read credentials through this cache
        for n in range(300, 1000):
            lines.put(b'{"n": %d, "pad": "%s"}\n' % (n, padding))
    finally:
        lines.put(None)
    sender.join(timeout=30)

    assert (answer["status"], answer["code"]) == (401, "unauthorized")
    assert int(answer["body"]) == stream_events(keys) < 1000
    assert Stream.objects.get(application=keys.application).ending == "unauthorized"

"""Event streams over HTTP POST (docs/protocols.md#event-streams): newline-delimited JSON values, each one
event, answered with the count stored as text."""

import pytest

from ingest.models import Event, Stream
from tests.conftest import app_keys_create
from tests.ingest.test_limits import keys_on, tier

pytestmark = pytest.mark.django_db


def post(client, keys, body: bytes, **headers):
    headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {keys.api_token}")
    return client.post(
        f"/v1/streams/{keys.org_id}/{keys.app_id}", data=body, content_type="application/x-ndjson", **headers
    )


def stored(keys):
    return list(Event.objects.filter(application=keys.application).order_by("id"))


def test_each_value_is_stored_as_an_event_of_the_stream(client, app_keys):
    body = (
        b'{"time": "2024-07-03T15:16:55.563839+10:00", "level": "INFO", "msg": "hi mom"}\n'
        b'{"type": "metric", "name": "queue", "value": 3}\n'
        b"[1, 2, 3]\n"
    )

    response = post(client, app_keys, body, HTTP_USER_AGENT="Go-http-client/1.1", HTTP_COOKIE="a=b")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"3"
    events = stored(app_keys)
    assert [event.data for event in events] == [
        {"time": "2024-07-03T15:16:55.563839+10:00", "level": "INFO", "msg": "hi mom"},
        {"type": "metric", "name": "queue", "value": 3},
        [1, 2, 3],
    ]
    assert [(event.event_type, event.category) for event in events] == [
        ("stream", "INFO"),
        ("metric", None),
        ("stream", None),
    ]
    assert events[0].timestamp.isoformat() == "2024-07-03T05:16:55.563839+00:00"
    stream = Stream.objects.get()
    assert {event.stream_id for event in events} == {stream.pk}
    assert (stream.transport, stream.ending, stream.event_count) == ("http", "completed", 3)
    assert stream.headers["user-agent"] == "Go-http-client/1.1"
    assert stream.headers["content-type"] == "application/x-ndjson"
    assert not {"authorization", "cookie", "x-api-key"} & set(stream.headers)
    assert all(name == name.lower() for name in stream.headers)


def test_values_concatenated_on_one_line_are_separate_events(client, app_keys):
    response = post(client, app_keys, b'{"a": 1}{"b": 2} {"c": 3}\n"text"')

    assert response.content == b"4"
    assert [event.data for event in stored(app_keys)] == [{"a": 1}, {"b": 2}, {"c": 3}, "text"]


def test_a_malformed_value_stops_the_stream_and_keeps_what_came_before(client, app_keys):
    response = post(client, app_keys, b'{"n": 1}\n{"n": 2}\n{"n": \n{"n": 4}\n')

    assert response.status_code == 400
    assert response.content == b"2"
    assert response["X-Error-Code"] == "invalid_json"
    assert [event.data for event in stored(app_keys)] == [{"n": 1}, {"n": 2}]
    assert Stream.objects.get().ending == "invalid_json"


@pytest.mark.parametrize("body", [b'\xff\xfe{"a": 1}\n', b'{"text": "nul \\u0000 inside"}\n'])
def test_values_that_cannot_be_stored_stop_the_stream_with_400(client, app_keys, body):
    response = post(client, app_keys, b'{"ok": true}\n' + body)

    assert (response.status_code, response.content) == (400, b"1")
    assert len(stored(app_keys)) == 1


def test_a_value_over_the_size_limit_stops_the_stream_with_413(client, app_keys, settings):
    settings.STREAM_MAX_VALUE_SIZE = 1024
    response = post(client, app_keys, b'{"small": 1}\n{"big": "' + b"x" * 2000 + b'"}\n')

    assert (response.status_code, response.content) == (413, b"1")
    assert response["X-Error-Code"] == "payload_too_large"


def test_an_empty_body_stores_nothing_and_answers_zero(client, app_keys):
    response = post(client, app_keys, b"")

    assert (response.status_code, response.content) == (200, b"0")


def test_the_token_may_come_as_x_api_key(client, app_keys):
    response = post(client, app_keys, b'{"a": 1}\n', HTTP_AUTHORIZATION="", HTTP_X_API_KEY=app_keys.api_token)

    assert response.content == b"1"


@pytest.mark.parametrize("case", ["no token", "wrong token", "token of another organization's application"])
def test_without_the_application_token_nothing_is_stored(client, app_keys, case):
    other = app_keys_create()
    token = {
        "no token": "",
        "wrong token": "tk_" + "f" * 32,
        "token of another organization's application": other.api_token,
    }[case]

    response = post(client, app_keys, b'{"a": 1}\n', HTTP_AUTHORIZATION=f"Bearer {token}" if token else "")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert Event.objects.count() == 0 and Stream.objects.count() == 0


def test_the_monthly_quota_stops_the_stream_when_it_runs_out():
    keys = keys_on(tier(monthly_event_quota=3))
    from django.test import Client

    response = post(Client(), keys, b"".join(b'{"n": %d}\n' % n for n in range(5)))

    assert response.status_code == 429
    assert response.content == b"3"
    assert response["X-Error-Code"] == "quota_exceeded"
    assert int(response["Retry-After"]) > 0
    assert len(stored(keys)) == 3
    assert Stream.objects.get(application=keys.application).ending == "quota_exceeded"


def test_the_rate_limit_refuses_a_stream_before_reading_it(client):
    keys = keys_on(tier(requests_per_minute=1))
    assert post(client, keys, b'{"n": 1}\n').status_code == 200

    response = post(client, keys, b'{"n": 2}\n')

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(stored(keys)) == 1


@pytest.mark.parametrize("per_minute", [2, 3])
def test_each_mib_past_the_first_counts_against_the_rate_limit(client, per_minute):
    keys = keys_on(tier(requests_per_minute=per_minute))
    value = b'{"pad": "' + b"x" * 1000 + b'"}\n'  # 1,012 bytes
    values = 2600  # 2.5 MiB: the stream's own request, one at 1 MiB, one at 2 MiB

    response = post(client, keys, value * values)

    count = int(response.content)
    assert count == len(stored(keys))
    if per_minute == 3:
        assert (response.status_code, count) == (200, values)
        assert Stream.objects.get(application=keys.application).ending == "completed"
    else:  # the third request, past 2 MiB, is refused: what came before it stays stored
        assert response.status_code == 429
        assert response["X-Error-Code"] == "rate_limit_exceeded"
        assert int(response["Retry-After"]) > 0
        assert 2 * 1024 * 1024 // len(value) - 32 <= count <= 2 * 1024 * 1024 // len(value)
        assert Stream.objects.get(application=keys.application).ending == "rate_limit_exceeded"


def test_a_websocket_upgrade_on_the_http_port_is_told_where_websockets_are(client, app_keys, settings):
    settings.PUBLIC_WEBSOCKET_URL = "wss://telemetry.example.com"

    response = client.get(f"/v1/streams/{app_keys.org_id}/{app_keys.app_id}", HTTP_UPGRADE="websocket")

    assert response.status_code == 426
    assert response.json()["error"]["message"] == (
        f"WebSocket streams are served at wss://telemetry.example.com/v1/streams/{app_keys.org_id}/{app_keys.app_id}"
    )


def test_pretty_printed_values_spanning_lines_are_one_event_each(client, app_keys):
    response = post(client, app_keys, b'{\n  "a": 1,\n  "b": [1,\n 2]\n}\n{"c": 3}\n')

    assert (response.status_code, response.content) == (200, b"2")
    assert [event.data for event in stored(app_keys)] == [{"a": 1, "b": [1, 2]}, {"c": 3}]


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1}\n{"b": NaN}\n',
        b'{"a": 1}\n{"b": Infinity}\n',
        b'{"a": 1}\n{"b": \n',
        b'{"a": 1}\n"\\ud800"\n',
        b'{"a": 1}\n{"b": "\xff"}\n',
        b'{"a": 1}\n{"b": "x\n',
    ],
)
def test_values_that_are_not_json_or_never_end_stop_the_stream(client, app_keys, body):
    response = post(client, app_keys, body)

    assert (response.status_code, response.content) == (400, b"1")
    assert response["X-Error-Code"] == "invalid_json"


def test_a_value_the_database_refuses_stops_the_stream_and_says_so(client, app_keys):
    response = post(client, app_keys, b'{"a": 1}\n{"n": 1e999999}\n')  # JSON, past what numeric can hold

    assert (response.status_code, response.content) == (400, b"1")
    assert response["X-Error-Code"] == "invalid_data"
    assert Stream.objects.get().ending == "invalid_data"


def test_a_time_outside_the_calendar_in_utc_falls_back_to_arrival_time(client, app_keys):
    response = post(client, app_keys, b'{"time": "0001-01-01T00:00:00+01:00"}\n{"time": "9999-12-31T23:00:00-05:00"}\n')

    assert (response.status_code, response.content) == (200, b"2")
    assert all(event.timestamp.year == Stream.objects.get().started_at.year for event in stored(app_keys))

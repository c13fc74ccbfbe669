"""The AWS Lambda Telemetry API arrays endpoint, with a Lambda listener's own test events as fixtures."""

import json
from datetime import datetime

import pytest
from django.test import Client

from ingest.models import Event
from tests.conftest import app_keys_create
from tests.ingest.test_limits import keys_on, outcome_totals, tier

pytestmark = pytest.mark.django_db

# A Lambda listener's own test events, as it receives them from Lambda (one of each type it parses).
SEED_START = {
    "type": "platform.start",
    "time": "2022-10-12T00:00:00.000Z",
    "record": {"requestId": "test-request-id", "version": "$LATEST"},
}
SEED_REPORT = {
    "type": "platform.report",
    "time": "2022-10-12T00:00:00.000Z",
    "record": {
        "requestId": "test-request-id",
        "status": "success",
        "metrics": {"durationMs": 100.5, "billedDurationMs": 200, "memorySizeMB": 128, "maxMemoryUsedMB": 64},
    },
}
SEED_RUNTIME_DONE = {
    "type": "platform.runtimeDone",
    "time": "2022-10-12T00:00:00.000Z",
    "record": {
        "requestId": "test-request-id",
        "status": "success",
        "metrics": {"durationMs": 50.0},
        "spans": [{"name": "responseLatency", "start": 0.0, "durationMs": 10.0}],
    },
}
SEED_INIT = [
    {
        "type": "platform.initStart",
        "time": "2022-10-12T00:00:00.000Z",
        "record": {"initializationType": "on-demand", "phase": "init"},
    },
    {
        "type": "platform.initRuntimeDone",
        "time": "2022-10-12T00:00:01.000Z",
        "record": {"initializationType": "on-demand", "status": "success", "phase": "init"},
    },
]
SEED_FUNCTION = {"type": "function", "time": "2022-10-12T00:00:00.000Z", "record": "Hello from Lambda!"}
# The other types of docs/protocols.md#aws-lambda, shaped like the Telemetry API's records for them.
INIT_REPORT = {
    "type": "platform.initReport",
    "time": "2022-10-12T00:00:01.000Z",
    "record": {
        "initializationType": "on-demand",
        "phase": "init",
        "status": "success",
        "metrics": {"durationMs": 812.3},
    },
}
FAULT = {
    "type": "platform.fault",
    "time": "2022-10-12T00:00:02.000Z",
    "record": {"requestId": "test-request-id", "faultMessage": "RequestId: test-request-id Process exited"},
}
EXTENSION = {
    "type": "platform.extension",
    "time": "2022-10-12T00:00:00.500Z",
    "record": {"name": "otel-extension", "state": "Ready", "events": ["INVOKE", "SHUTDOWN"]},
}
LOGS_DROPPED = {
    "type": "platform.logsDropped",
    "time": "2022-10-12T00:00:03.000Z",
    "record": {"reason": "Consumer seems to have fallen behind", "droppedRecords": 123, "droppedBytes": 12345},
}
EXTENSION_LOG = {"type": "extension", "time": "2022-10-12T00:00:00.600Z", "record": "[otel-extension] ready"}
UNKNOWN = {"type": "platform.restoreStart", "time": "2022-10-12T00:00:00.000Z", "record": {"runtimeVersion": "x"}}

EVERY_TYPE = [
    *SEED_INIT,
    INIT_REPORT,
    EXTENSION,
    SEED_START,
    SEED_FUNCTION,
    EXTENSION_LOG,
    SEED_RUNTIME_DONE,
    SEED_REPORT,
    FAULT,
    LOGS_DROPPED,
    UNKNOWN,
]


def lambda_url(keys, query: str = "") -> str:
    return f"/v1/lambda/{keys.org_id}/{keys.app_id}{query}"


def post_array(keys, array, *, query: str = "?function=checkout&version=7", token=None, **headers):
    body = array if isinstance(array, bytes) else json.dumps(array).encode()
    headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {token or keys.api_token}")
    headers = {name: value for name, value in headers.items() if value is not None}
    return Client().post(
        lambda_url(keys, query), data=body, content_type=headers.pop("content_type", "application/json"), **headers
    )


def test_every_telemetry_api_type_is_stored_as_sent_unknown_ones_included(app_keys):
    response = post_array(app_keys, EVERY_TYPE)

    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "accepted": 12,
        "rejected": 0,
        "message": "12 of 12 events accepted",
        "errors": [],
    }
    stored = {event.event_type: event for event in Event.objects.filter(application=app_keys.application)}
    assert set(stored) == {element["type"] for element in EVERY_TYPE}
    for element in EVERY_TYPE:
        event = stored[element["type"]]
        assert event.data == element
        assert event.timestamp == datetime.fromisoformat(element["time"])
        assert event.service_name == "checkout"
        assert event.schema_version == "lambda/1"
    assert stored["platform.start"].service_version == "$LATEST"  # the record's own version comes first
    assert stored["platform.report"].service_version == "7"
    assert stored["function"].category == "function"
    assert stored["platform.report"].category == "platform"


def test_a_resent_array_is_stored_once(app_keys):
    post_array(app_keys, [SEED_START, SEED_FUNCTION, SEED_FUNCTION])

    response = post_array(app_keys, [SEED_START, SEED_FUNCTION, SEED_FUNCTION])

    assert response.status_code == 200
    assert Event.objects.filter(application=app_keys.application).count() == 3  # the same line twice is two lines


def test_the_function_comes_from_headers_or_the_arrays_init_start(app_keys):
    init_start = {
        "type": "platform.initStart",
        "time": "2026-11-20T10:00:00Z",
        "record": {
            "initializationType": "on-demand",
            "phase": "init",
            "functionName": "resize",
            "functionVersion": "3",
        },
    }
    assert (
        post_array(
            app_keys,
            [SEED_FUNCTION],
            query="",
            HTTP_X_LAMBDA_FUNCTION_NAME="thumbs",
            HTTP_X_LAMBDA_FUNCTION_VERSION="12",
        ).status_code
        == 200
    )
    assert post_array(app_keys, [init_start], query="").status_code == 200

    assert set(
        Event.objects.filter(application=app_keys.application).values_list("service_name", "service_version")
    ) == {("thumbs", "12"), ("resize", "3")}


def test_an_array_that_names_no_function_is_refused_with_400(app_keys):
    response = post_array(app_keys, [SEED_FUNCTION], query="")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert "function" in response.json()["error"]["message"]
    assert not Event.objects.exists()


def test_the_api_key_header_works_as_well_as_bearer(app_keys):
    response = post_array(app_keys, [SEED_FUNCTION], HTTP_AUTHORIZATION=None, HTTP_X_API_KEY=app_keys.api_token)

    assert response.status_code == 200
    assert Event.objects.filter(application=app_keys.application).count() == 1


def test_invalid_elements_are_reported_by_index_and_the_rest_stored(app_keys):
    bad_report = {**SEED_REPORT, "record": {**SEED_REPORT["record"], "metrics": {"durationMs": "slow"}}}
    array = [
        SEED_START,
        {"time": "2022-10-12T00:00:00Z"},
        "not an object",
        {"type": "function", "time": "yesterday"},
        bad_report,
    ]

    response = post_array(app_keys, array)

    assert response.status_code == 207
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 4)
    assert [(error["index"], error["error"]) for error in body["errors"]] == [
        (1, "invalid_event"),
        (2, "invalid_event"),
        (3, "invalid_event"),
        (4, "invalid_record"),
    ]
    assert list(Event.objects.values_list("event_type", flat=True)) == ["platform.start"]


def test_an_array_with_no_valid_element_is_answered_422(app_keys):
    response = post_array(app_keys, [{"type": "function"}])

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"{not json", "application/json"),
        (b'{"type": "function"}', "application/json"),
        (b"[]\xff", "application/json"),
        (json.dumps([SEED_FUNCTION]).encode(), "text/plain"),
    ],
)
def test_a_body_that_is_not_a_json_array_is_refused_with_400(app_keys, body, content_type):
    response = post_array(app_keys, body, content_type=content_type)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_a_huge_body_is_refused_with_413_unread(app_keys, settings):
    settings.INGEST_MAX_PAYLOAD_SIZE = 1024

    response = post_array(app_keys, [SEED_FUNCTION] * 100)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_more_elements_than_a_batch_holds_are_refused_with_413(app_keys, settings):
    settings.INGEST_MAX_BATCH_SIZE = 2

    response = post_array(app_keys, [SEED_FUNCTION] * 3)

    assert response.status_code == 413
    assert not Event.objects.exists()


@pytest.mark.parametrize("case", ["no token", "wrong token", "another organization's application"])
def test_a_token_that_is_not_the_applications_is_refused_with_401(app_keys, case):
    other = app_keys_create()
    url_keys, token = app_keys, app_keys.api_token
    if case == "no token":
        token = ""
    elif case == "wrong token":
        token = "tk_" + "0" * 32
    else:
        url_keys = other  # the other organization's ids with this application's token

    response = Client().post(
        lambda_url(url_keys, "?function=f"),
        data=json.dumps([SEED_FUNCTION]),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert not Event.objects.exists()


def test_the_quota_stores_what_it_admits_and_then_answers_429():
    keys = keys_on(tier(monthly_event_quota=2))

    partial = post_array(keys, [SEED_START, SEED_FUNCTION, SEED_REPORT])
    spent = post_array(keys, [EXTENSION_LOG])

    assert partial.status_code == 207
    assert [error["error"] for error in partial.json()["errors"]] == ["over_quota"]
    assert spent.status_code == 429
    assert spent.json()["error"]["code"] == "quota_exceeded"
    assert int(spent["Retry-After"]) > 0
    assert Event.objects.filter(application=keys.application).count() == 2


def test_the_rate_limit_answers_429_with_retry_after():
    keys = keys_on(tier(requests_per_minute=1))
    first = post_array(keys, [SEED_START])

    second = post_array(keys, [SEED_FUNCTION])

    assert first.status_code == 200
    assert first["RateLimit-Limit"] == "1"
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limit_exceeded"
    assert 0 < int(second["Retry-After"]) <= 60
    assert outcome_totals(keys)["rate_limited"] == 1
    assert Event.objects.filter(application=keys.application).count() == 1


def test_events_are_stored_with_the_forwarders_user_agent(app_keys):
    post_array(app_keys, [SEED_FUNCTION], HTTP_USER_AGENT="lambda-forwarder/1.0 " + "x" * 200)

    assert Event.objects.get().sdk_version == ("lambda-forwarder/1.0 " + "x" * 200)[:100]


def test_a_time_without_zone_is_refused(app_keys):
    response = post_array(app_keys, [{"type": "function", "time": "2022-10-12T00:00:00", "record": "x"}])

    assert response.status_code == 422
    assert not Event.objects.exists()


@pytest.mark.parametrize("time", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00"])
def test_a_time_that_leaves_the_calendar_in_utc_is_refused_alone(app_keys, time):
    response = post_array(app_keys, [SEED_FUNCTION, {**SEED_FUNCTION, "time": time}])

    assert response.status_code == 207
    assert [(error["index"], error["error"]) for error in response.json()["errors"]] == [(1, "invalid_timestamp")]
    assert Event.objects.filter(application=app_keys.application).count() == 1

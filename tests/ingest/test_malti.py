"""POST /api/v1/ingest: Malti request telemetry (docs/protocols.md#malti), by hand-made requests."""

import json
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.services import credential_issue, credential_revoke
from ingest.access.admission import seconds_to_month_end
from ingest.models import Event
from tests.factories import ApplicationFactory
from tests.ingest.test_limits import outcome_totals, tier

pytestmark = pytest.mark.django_db

URL = "/api/v1/ingest"
SERVICE = "orders-api"


class MaltiKey:
    def __init__(self, service_name: str = SERVICE, **application_fields):
        self.application = ApplicationFactory(**application_fields)
        issued = credential_issue(application=self.application, service_name=service_name)
        self.credential, self.token = issued.credential, issued.api_token

    def events(self):
        return Event.objects.filter(application=self.application).order_by("timestamp")


def record(**overrides) -> dict:
    """A record exactly as malti-telemetry 1.0.4's TelemetryRecord.to_dict() makes it."""
    return {
        "service": SERVICE,
        "method": "GET",
        "endpoint": "/orders/{order_id}",
        "status": 200,
        "response_time": 42,
        "consumer": "web-shop",
        "node": "web-01",
        "context": None,
        "created_at": "2026-11-25T10:30:00.123456+00:00",
        **overrides,
    }


def post(token: str | None, body, **headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if token is not None:
        headers["HTTP_X_API_KEY"] = token
    return Client().post(
        URL, data=data, content_type="application/json", HTTP_USER_AGENT="python-httpx/0.28.1", **headers
    )


def test_a_batch_is_stored_whole_as_http_request_events_then_answered_200():
    key = MaltiKey()
    records = [
        record(),
        record(
            method="POST",
            endpoint="/orders",
            status=201,
            response_time=7,
            consumer="app",
            node=None,
            context="checkout",
            created_at="2026-11-25T12:31:00+01:00",
        ),
    ]

    response = post(key.token, {"requests": records})

    assert response.status_code == 200
    assert response.json() == {"message": "2 requests stored", "count": 2, "service": SERVICE}
    first, second = key.events()
    assert (first.event_type, first.category, first.service_name, first.schema_version) == (
        "http_request",
        "http",
        SERVICE,
        "malti/1",
    )
    assert first.timestamp == datetime(2026, 11, 25, 10, 30, 0, 123456, tzinfo=UTC)
    assert first.data == {
        "method": "GET",
        "endpoint": "/orders/{order_id}",
        "status": 200,
        "response_time": 42,
        "consumer": "web-shop",
        "node": "web-01",
    }
    assert second.timestamp == datetime(2026, 11, 25, 11, 31, tzinfo=UTC)
    assert second.data == {
        "method": "POST",
        "endpoint": "/orders",
        "status": 201,
        "response_time": 7,
        "consumer": "app",
        "node": None,
        "context": "checkout",
    }
    assert first.sdk_version == "python-httpx/0.28.1"
    assert first.organization_id == key.application.organization_id


def test_missing_key_is_refused_with_401():
    MaltiKey()

    response = post(None, {"requests": [record()]})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert not Event.objects.exists()


def test_unknown_key_is_refused_with_401():
    key = MaltiKey()

    response = post(key.token + "x", {"requests": [record()]})

    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "Missing or invalid API token"}}
    assert not key.events().exists()


def test_revoked_key_is_refused_with_401():
    key = MaltiKey()
    credential_revoke(credential=key.credential)

    response = post(key.token, {"requests": [record()]})

    assert response.status_code == 401
    assert not key.events().exists()


def test_another_service_than_the_keys_is_refused_with_403_and_nothing_stored():
    key = MaltiKey()

    response = post(key.token, {"requests": [record(), record(service="billing")]})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "service_mismatch"
    assert "Record 1 is for service 'billing'" in response.json()["error"]["message"]
    assert not key.events().exists()
    assert outcome_totals(key)["invalid:service_mismatch"] == 2


def test_a_key_without_a_service_name_takes_one_service_a_batch():
    key = MaltiKey(service_name="")

    stored = post(key.token, {"requests": [record(service="billing")]})
    mixed = post(key.token, {"requests": [record(service="billing"), record()]})

    assert (stored.status_code, stored.json()["service"]) == (200, "billing")
    assert mixed.status_code == 403
    assert key.events().count() == 1


def test_empty_batch_is_refused_with_400():
    key = MaltiKey()

    response = post(key.token, {"requests": []})

    assert response.status_code == 400
    assert response.json() == {"error": {"code": "empty_batch", "message": "The batch has no requests"}}


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"events": []}', b'{"requests": {}}', b"[]", b"", b'{"requests": [], "x": "\\ud800"}', b"\xff\xfe"],
)
def test_a_body_that_is_not_a_batch_is_refused_with_400(body):
    key = MaltiKey()

    response = post(key.token, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_malformed_records_are_refused_with_422_naming_each_and_nothing_stored():
    key = MaltiKey()
    records = [
        record(),
        record(status="200"),
        record(created_at="2026-11-25T10:30:00"),
        record(),
        {k: v for k, v in record().items() if k != "consumer"},
        record(response_time=-1),
    ]

    response = post(key.token, {"requests": records})

    assert response.status_code == 422
    body = response.json()
    assert body["error"]["code"] == "invalid_record"
    assert body["count"] == 0
    assert [(error["index"], error["field"]) for error in body["errors"]] == [
        (1, "status"),
        (2, "created_at"),
        (4, "consumer"),
        (5, "response_time"),
    ]
    assert not key.events().exists()
    assert outcome_totals(key)["invalid:invalid_record"] == 6  # the batch is refused whole


@pytest.mark.parametrize(
    "bad",
    [
        {"endpoint": "/a\u0000b"},
        {"created_at": "9999-12-31T23:59:59-05:00"},
        {"status": 700},
        {"method": ""},
        {"response_time": 1.5},
    ],
)
def test_values_storage_would_refuse_are_malformed_records(bad):
    key = MaltiKey()

    response = post(key.token, {"requests": [record(), record(**bad)]})

    assert response.status_code == 422
    assert [error["index"] for error in response.json()["errors"]] == [1]
    assert not key.events().exists()


def test_a_batch_the_database_refuses_in_part_is_refused_whole_and_nothing_stored():
    key = MaltiKey()
    with connection.cursor() as cursor:  # PostgreSQL refusing one record's value, as it may a well-formed one
        cursor.execute(
            "CREATE FUNCTION test_refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.data->>'endpoint' = '/refused' THEN RAISE EXCEPTION 'refused' USING ERRCODE = '22023'; END IF; "
            "RETURN NEW; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER test_refuse_marked BEFORE INSERT ON {Event._meta.db_table} "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_marked()"
        )

    response = post(key.token, {"requests": [record(), record(endpoint="/refused"), record(endpoint="/other")]})

    assert response.status_code == 422
    body = response.json()
    assert (body["error"]["code"], body["count"]) == ("invalid_record", 0)
    assert [error["index"] for error in body["errors"]] == [1]
    assert not key.events().exists()


def test_too_many_records_are_refused_with_413(settings):
    settings.INGEST_MAX_BATCH_SIZE = 3
    key = MaltiKey()

    response = post(key.token, {"requests": [record()] * 4})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not key.events().exists()


def test_a_body_over_the_payload_limit_is_refused_with_413_unread(settings):
    settings.INGEST_MAX_PAYLOAD_SIZE = 2048
    key = MaltiKey()

    response = post(key.token, {"requests": [record(context="x" * 3000)]})

    assert response.status_code == 413
    assert not key.events().exists()


def test_past_the_rate_limit_batches_are_refused_with_429_and_retry_after():
    key = MaltiKey(organization__tier=tier(requests_per_minute=2))
    answers = [post(key.token, {"requests": [record()]}) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert (refused["RateLimit-Limit"], refused["RateLimit-Remaining"]) == ("2", "0")
    assert answers[0]["RateLimit-Remaining"] == "1"
    assert key.events().count() == 2


def test_a_batch_the_quota_admits_only_in_part_is_refused_whole_with_429():
    key = MaltiKey(organization__tier=tier(monthly_event_quota=5))
    assert post(key.token, {"requests": [record()] * 3}).status_code == 200

    response = post(key.token, {"requests": [record()] * 3})

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert "room for 2 of these 3 requests; nothing was stored" in response.json()["error"]["message"]
    assert abs(int(response["Retry-After"]) - seconds_to_month_end(datetime.now(UTC))) <= 2
    assert key.events().count() == 3
    # The two events of room left are given back: a batch that fits is still taken.
    assert post(key.token, {"requests": [record()] * 2}).status_code == 200
    assert key.events().count() == 5
    assert outcome_totals(key)["over_quota"] == 3


def test_monitor_only_quota_stores_past_the_quota():
    key = MaltiKey(organization__tier=tier(monthly_event_quota=1), organization__quota_monitor_only=True)

    response = post(key.token, {"requests": [record()] * 3})

    assert response.status_code == 200
    assert key.events().count() == 3


def test_the_key_of_one_organization_stores_into_its_own_application_only():
    key, other = MaltiKey(), MaltiKey()

    post(key.token, {"requests": [record()]})

    assert key.events().count() == 1
    assert not other.events().exists()
    assert key.application.organization_id != other.application.organization_id


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=300),
    st.just("\x00"),
    st.just("x" * 2000),
    st.lists(st.integers(), max_size=3),
    st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat()),
)


@st.composite
def records(draw):
    """Records close to the client's, with a field or two changed or dropped."""
    item = record(created_at=draw(st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat())))
    for field in draw(st.lists(st.sampled_from(sorted(item)), max_size=2)):
        if draw(st.booleans()):
            item[field] = draw(junk)
        else:
            item.pop(field, None)
    return item


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(batch=st.lists(records(), max_size=6))
def test_any_batch_is_answered_without_a_5xx_and_stored_whole_or_not_at_all(batch):
    key = MaltiKey()

    response = post(key.token, {"requests": batch})

    assert response.status_code in (200, 400, 403, 422)
    stored = key.events().count()
    if response.status_code == 200:
        assert response.json()["count"] == stored == len(batch)
    else:
        assert stored == 0
        assert response.json()["error"]["code"] in ("empty_batch", "service_mismatch", "invalid_record")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=200), junk.map(lambda value: json.dumps({"requests": value}).encode())))
def test_any_body_is_answered_without_a_5xx(body):
    key = MaltiKey()

    response = post(key.token, body)

    assert response.status_code in (400, 422)
    assert not key.events().exists()


def test_a_repeated_requests_key_that_hides_a_bad_batch_is_a_bad_request():
    key = MaltiKey()
    body = b'{"requests": [{"service": 1}], "requests": [' + json.dumps(record()).encode() + b"]}"

    response = post(key.token, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert not key.events().exists()

import json
import threading
import time
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from rest_framework.throttling import AnonRateThrottle

from ingest.apis import IngestApi
from ingest.models import Event
from ingest.storage.services import COPY_MIN_EVENTS
from tests.conftest import USER_ID, app_keys_create, batch_body, make_event, signed_headers

pytestmark = pytest.mark.django_db


def stored_ids(keys) -> set[str]:
    return {
        str(value) for value in Event.objects.filter(application=keys.application).values_list("event_id", flat=True)
    }


def error_code(response) -> str:
    return response.json()["error"]["code"]


# --- accepted batches -------------------------------------------------------------------------


def test_valid_batch_is_stored_and_answered_200_with_the_sdk_body(app_keys, signed_post):
    events = [make_event(), make_event()]

    response = signed_post(app_keys, events)

    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "accepted": 2,
        "rejected": 0,
        "message": "2 of 2 events accepted",
        "errors": [],
    }
    assert stored_ids(app_keys) == {event["event_id"] for event in events}


def test_stored_event_keeps_every_field_the_sdk_sent(app_keys, signed_post):
    event = make_event()

    signed_post(app_keys, [event])

    row = Event.objects.get(event_id=event["event_id"])
    assert row.organization_id == app_keys.application.organization_id
    assert (row.user_id, row.session_id, row.event_type, row.category) == (
        USER_ID,
        "sess_" + "c" * 32,
        "command",
        "cli",
    )
    assert row.data == {"command": "build", "success": True}
    assert row.timestamp.isoformat() == "2026-11-20T10:30:00+00:00"
    assert (row.service_name, row.service_version, row.service_language) == ("my-app", "1.2.3", "rust")
    assert row.sdk_version == "telemetry-kit-rust/0.3.0"
    assert row.schema_version == "1.0.0"
    assert row.received_at is not None


def test_event_with_optional_fields_omitted_is_accepted(app_keys, signed_post):
    event = make_event(service={"name": "tiny"}, event={"type": "start"})
    del event["session_id"], event["metadata"]

    response = signed_post(app_keys, [event])

    assert response.status_code == 200
    row = Event.objects.get(event_id=event["event_id"])
    assert (row.session_id, row.category, row.service_version, row.data) == (None, None, None, {})


def test_id_key_and_anon_user_id_are_accepted(app_keys, signed_post):
    event = make_event(user_id="anon_" + "0f" * 32)
    event["id"] = event.pop("event_id")

    response = signed_post(app_keys, [event])

    assert response.status_code == 200
    assert stored_ids(app_keys) == {event["id"]}


def test_empty_batch_is_accepted_with_nothing_stored(app_keys, signed_post):
    response = signed_post(app_keys, [])

    assert response.status_code == 200
    assert response.json()["accepted"] == 0
    assert not Event.objects.exists()


def test_old_event_is_accepted_when_no_age_window_is_configured(app_keys, signed_post):
    response = signed_post(app_keys, [make_event(timestamp="2020-01-01T00:00:00Z")])

    assert response.status_code == 200


@override_settings(INGEST_MAX_EVENT_AGE_DAYS=7)
def test_event_outside_a_configured_age_window_is_rejected(app_keys, signed_post):
    an_hour_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    too_old = make_event(timestamp="2020-01-01T00:00:00Z")
    response = signed_post(app_keys, [too_old, make_event(timestamp=an_hour_ago)])

    assert response.status_code == 207
    assert response.json()["errors"] == [
        {
            "index": 0,
            "event_id": too_old["event_id"],
            "error": "timestamp_out_of_range",
            "message": "timestamp must be within 7 days of the server's time",
        }
    ]
    assert Event.objects.count() == 1


def test_bearer_token_of_the_application_is_accepted(app_keys, signed_post):
    response = signed_post(app_keys, [make_event()], HTTP_AUTHORIZATION=f"Bearer {app_keys.api_token}")

    assert response.status_code == 200


def test_request_verifies_against_any_active_credential(app_keys, signed_post):
    from accounts.services import credential_issue
    from tests.conftest import AppKeys

    second = credential_issue(application=app_keys.application)
    new_keys = AppKeys(app_keys.application, second.api_token, second.hmac_secret)

    assert signed_post(app_keys, [make_event()]).status_code == 200
    assert signed_post(new_keys, [make_event()]).status_code == 200


# --- exactly once ------------------------------------------------------------------------------


def test_resent_event_counts_as_accepted_and_is_stored_once(app_keys, signed_post):
    event = make_event()
    signed_post(app_keys, [event])

    response = signed_post(app_keys, [event, make_event()])

    assert response.status_code == 200
    assert response.json()["accepted"] == 2
    assert Event.objects.filter(event_id=event["event_id"]).count() == 1
    assert Event.objects.count() == 2


# Batches of COPY_MIN_EVENTS or more go to PostgreSQL by COPY, smaller ones by INSERT: both paths.
SIZES = pytest.mark.parametrize("size", [3, COPY_MIN_EVENTS], ids=["insert", "copy"])


@SIZES
def test_events_of_one_batch_keep_their_own_user_session_service_and_type(app_keys, signed_post, size):
    # A batch's repeated values are held once while it is stored; each event's own must survive.
    def own(i: int) -> tuple:
        return f"anon_{i % 2:064x}", f"session-{i % 3}", f"svc-{i % 2}", f"1.{i % 3}", f"type-{i % 3}"

    events = []
    for i in range(size):
        user, session, service, version, event_type = own(i)
        events.append(
            make_event(
                user_id=user,
                session_id=session,
                service={"name": service, "version": version, "language": "rust"},
                event={"type": event_type, "category": "cli", "data": {}},
            )
        )

    response = signed_post(app_keys, events)

    assert response.json()["accepted"] == size
    stored = {str(row.event_id): row for row in Event.objects.all()}
    assert [
        (row.user_id, row.session_id, row.service_name, row.service_version, row.event_type)
        for row in (stored[event["event_id"]] for event in events)
    ] == [own(i) for i in range(size)]


@SIZES
def test_every_field_of_a_batch_is_stored_by_either_path(app_keys, signed_post, size):
    events = [make_event(event={"type": "build", "category": "cli", "data": {"n": i, "ok": True}}) for i in range(size)]

    response = signed_post(app_keys, events, HTTP_X_SDK_VERSION="telemetry-kit-rust/0.4.0")

    assert response.json()["accepted"] == size
    stored = {str(row.event_id): row for row in Event.objects.all()}
    for i, event in enumerate(events):
        row = stored[event["event_id"]]
        assert (row.event_type, row.category, row.data, row.sdk_version) == (
            "build",
            "cli",
            {"n": i, "ok": True},
            "telemetry-kit-rust/0.4.0",
        )
        assert (row.timestamp.isoformat(), row.user_id, row.service_name) == (
            "2026-11-20T10:30:00+00:00",
            USER_ID,
            "my-app",
        )


def test_small_batches_reuse_one_prepared_insert_per_database_connection(app_keys, signed_post):
    from django.db import connection

    for _ in range(3):
        assert signed_post(app_keys, [make_event()]).json()["accepted"] == 1

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO ingest_event%%' "
            "AND statement NOT LIKE '%%ON CONFLICT%%'"
        )  # the retry of a batch meeting stored events
        prepared = cursor.fetchall()
    assert len(prepared) == 1
    assert Event.objects.count() == 3


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the thread's connection commits
def test_with_prepared_statements_off_small_batches_are_stored_and_nothing_is_prepared(app_keys, signed_post):
    from django.db import connections

    seen = {}

    def on_a_connection_of_its_own():  # Django's connections are per thread
        db = connections["default"]
        db.ensure_connection()
        db.connection.prepare_threshold = None  # what APP_DATABASE__PREPARED_STATEMENTS=false leaves it
        try:
            seen["accepted"] = [signed_post(app_keys, [make_event()]).json()["accepted"] for _ in range(3)]
            with db.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_prepared_statements")
                seen["prepared"] = cursor.fetchone()[0]
        finally:
            db.close()

    thread = threading.Thread(target=on_a_connection_of_its_own)
    thread.start()
    thread.join()

    assert seen == {"accepted": [1, 1, 1], "prepared": 0}
    assert Event.objects.count() == 3


@SIZES
def test_resent_batch_with_new_events_stores_each_event_once(app_keys, signed_post, size):
    events = [make_event() for _ in range(size)]
    signed_post(app_keys, events)

    response = signed_post(app_keys, events + [make_event(), make_event()])

    assert response.json()["accepted"] == size + 2
    assert Event.objects.count() == size + 2


def test_duplicate_event_within_one_batch_is_stored_once(app_keys, signed_post):
    event = make_event()

    response = signed_post(app_keys, [event, event])

    assert response.json()["accepted"] == 2
    assert Event.objects.count() == 1


def test_same_event_id_in_another_application_is_a_different_event(app_keys, signed_post):
    other = app_keys_create()
    event = make_event()

    signed_post(app_keys, [event])
    signed_post(other, [event])

    assert Event.objects.filter(event_id=event["event_id"]).count() == 2


# --- per-event validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"schema_version": "2.0.0"}, "unsupported_schema_version"),
        ({"user_id": "user_123"}, "invalid_user_id"),
        ({"user_id": "anon_" + "a" * 63}, "invalid_user_id"),
        ({"user_id": "client_" + "g" * 64}, "invalid_user_id"),
        ({"event_id": "not-a-uuid"}, "invalid_event_id"),
        ({"event_id": None}, "invalid_event_id"),
        ({"timestamp": "yesterday"}, "invalid_timestamp"),
        ({"timestamp": "2026-11-20T10:30:00"}, "invalid_timestamp"),
        ({"service": {"name": ""}}, "invalid_service"),
        ({"service": "my-app"}, "invalid_service"),
        ({"event": {"type": ""}}, "invalid_event"),
        ({"event": {"type": "t" * 256}}, "invalid_event"),
        ({"session_id": "bad\u0000session"}, "invalid_text"),
        ({"event": {"type": "command", "data": {"text": "nul \u0000 here"}}}, "invalid_data"),
    ],
)
def test_invalid_event_is_reported_with_a_stable_code(app_keys, signed_post, change, code):
    bad = make_event(**change)

    response = signed_post(app_keys, [make_event(), bad])

    assert response.status_code == 207
    body = response.json()
    assert (body["status"], body["accepted"], body["rejected"]) == ("partial", 1, 1)
    assert body["errors"][0]["index"] == 1
    assert body["errors"][0]["error"] == code
    assert body["errors"][0]["message"]
    assert Event.objects.count() == 1


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"])
def test_timestamp_beyond_the_calendar_once_in_utc_is_rejected_as_invalid(app_keys, signed_post, timestamp):
    bad = make_event(timestamp=timestamp)

    response = signed_post(app_keys, [make_event(), bad])

    assert response.status_code == 207
    assert response.json()["errors"] == [
        {
            "index": 1,
            "event_id": bad["event_id"],
            "error": "invalid_timestamp",
            "message": "timestamp is out of range once converted to UTC",
        }
    ]
    assert Event.objects.count() == 1
    assert not Event.objects.filter(event_id=bad["event_id"]).exists()


def test_event_missing_a_required_field_names_it(app_keys, signed_post):
    bad = make_event()
    del bad["user_id"]

    response = signed_post(app_keys, [bad, make_event()])

    error = response.json()["errors"][0]
    assert (error["index"], error["event_id"], error["error"]) == (0, bad["event_id"], "invalid_user_id")
    assert "user_id" in error["message"]


def test_event_that_is_not_an_object_is_reported(app_keys, signed_post):
    response = signed_post(app_keys, [make_event(), 42])

    assert response.json()["errors"][0] == {
        "index": 1,
        "event_id": None,
        "error": "invalid_event",
        "message": "Expected `object`, got `int`",
    }


def test_backslash_before_u0000_text_in_data_is_ordinary_text(app_keys, signed_post):
    event = make_event(event={"type": "path", "data": {"path": "C:\\u0000dir"}})

    response = signed_post(app_keys, [event])

    assert response.status_code == 200
    assert Event.objects.get().data == {"path": "C:\\u0000dir"}


@SIZES
def test_number_the_database_cannot_hold_rejects_only_that_event(app_keys, signed_post, size):
    good = [make_event() for _ in range(size - 1)]
    huge_id = str(uuid.uuid4())
    body = batch_body(good).replace(
        b"]}",
        b', {"event_id": "' + huge_id.encode() + b'", "schema_version": "1.0.0", "timestamp": "2026-11-20T10:30:00Z",'
        b' "user_id": "' + USER_ID.encode() + b'", "service": {"name": "x"},'
        b' "event": {"type": "t", "data": {"n": 1e999999}}}]}',
    )

    response = signed_post(app_keys, body, batch_size=size)

    assert response.status_code == 207
    assert response.json()["errors"] == [
        {
            "index": size - 1,
            "event_id": huge_id,
            "error": "invalid_data",
            "message": response.json()["errors"][0]["message"],
        }
    ]
    assert stored_ids(app_keys) == {event["event_id"] for event in good}


def test_batch_where_every_event_is_invalid_is_answered_422(app_keys, signed_post):
    response = signed_post(app_keys, [make_event(user_id="x"), make_event(schema_version="0.9")])

    assert response.status_code == 422
    body = response.json()
    assert (body["status"], body["accepted"], body["rejected"]) == ("rejected", 0, 2)
    assert body["error"]["code"] == "validation_error"
    assert [error["index"] for error in body["errors"]] == [0, 1]
    assert not Event.objects.exists()


# --- request-level errors ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"not json", b'{"events": {}}', b'{"items": []}', b"[]", b'{"events": [1,'])
def test_body_that_is_not_an_events_object_is_answered_400(app_keys, signed_post, body):
    response = signed_post(app_keys, body)

    assert response.status_code == 400
    assert error_code(response) == "bad_request"


def test_body_that_is_not_utf8_is_answered_400(app_keys, signed_post):
    response = signed_post(app_keys, b'{"events": ["\xff"]}')

    assert response.status_code == 400


def test_batch_size_header_that_disagrees_with_the_body_is_answered_400(app_keys, signed_post):
    response = signed_post(app_keys, [make_event()], batch_size=3)

    assert response.status_code == 400
    assert error_code(response) == "bad_request"
    assert "X-Batch-Size" in response.json()["error"]["message"]
    assert not Event.objects.exists()


def test_wrong_content_type_is_answered_400(app_keys, signed_post):
    response = signed_post(app_keys, batch_body([make_event()]), content_type="text/plain")

    assert response.status_code == 400


@override_settings(INGEST_MAX_BATCH_SIZE=2)
def test_more_events_than_the_batch_limit_is_answered_413(app_keys, signed_post):
    response = signed_post(app_keys, [make_event(), make_event(), make_event()])

    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"
    assert not Event.objects.exists()


@override_settings(INGEST_MAX_PAYLOAD_SIZE=2048)
def test_body_over_the_payload_limit_is_answered_413(app_keys, signed_post):
    response = signed_post(app_keys, [make_event(event={"type": "big", "data": "x" * 4096})])

    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"


# --- authentication ----------------------------------------------------------------------------


def test_replayed_nonce_is_rejected_with_401(app_keys, client):
    body = batch_body([make_event()])
    headers = signed_headers(app_keys, body)
    client.post(app_keys.url, data=body, content_type="application/json", **headers)

    replay = client.post(app_keys.url, data=body, content_type="application/json", **headers)

    assert replay.status_code == 401
    assert replay.json()["error"] == {"code": "unauthorized", "message": "X-Nonce was already used"}
    assert Event.objects.count() == 1


@override_settings(REDIS_URL="")
def test_replayed_nonce_is_rejected_by_the_embedded_store_too(app_keys, client):
    body = batch_body([make_event()])
    headers = signed_headers(app_keys, body)

    first = client.post(app_keys.url, data=body, content_type="application/json", **headers)
    replay = client.post(app_keys.url, data=body, content_type="application/json", **headers)

    assert (first.status_code, replay.status_code) == (200, 401)


# Well past the 300 s window: a second ticking over mid-request must not bring it back inside.
@pytest.mark.parametrize("offset", [-330, 330], ids=["stale", "future"])
def test_timestamp_outside_the_tolerance_is_rejected_with_401(app_keys, signed_post, offset):
    response = signed_post(app_keys, [make_event()], timestamp=int(time.time()) + offset)

    assert response.status_code == 401
    assert "X-Timestamp" in response.json()["error"]["message"]


def test_body_changed_after_signing_is_rejected_with_401(app_keys, client):
    body = batch_body([make_event()])
    headers = signed_headers(app_keys, body)
    tampered = body.replace(b"build", b"drop!")

    response = client.post(app_keys.url, data=tampered, content_type="application/json", **headers)

    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert not Event.objects.exists()


@pytest.mark.parametrize("missing", ["HTTP_X_SIGNATURE", "HTTP_X_TIMESTAMP", "HTTP_X_NONCE"])
def test_missing_signing_header_is_rejected_with_401(app_keys, client, missing):
    body = batch_body([])
    headers = signed_headers(app_keys, body)
    del headers[missing]

    response = client.post(app_keys.url, data=body, content_type="application/json", **headers)

    assert response.status_code == 401


@pytest.mark.parametrize("nonce", ["test-nonce", "550e8400-e29b-11d4-a716-446655440000"])
def test_nonce_that_is_not_a_uuid_v4_is_rejected_with_401(app_keys, signed_post, nonce):
    response = signed_post(app_keys, [], nonce=nonce)

    assert response.status_code == 401
    assert "UUID v4" in response.json()["error"]["message"]


def test_bearer_token_that_does_not_match_is_rejected_with_401(app_keys, signed_post):
    response = signed_post(app_keys, [make_event()], HTTP_AUTHORIZATION="Bearer tk_" + "0" * 32)

    assert response.status_code == 401


def test_application_of_another_organization_answers_like_a_bad_signature(app_keys, signed_post):
    other = app_keys_create()
    url = f"/v1/ingest/{other.org_id}/{app_keys.app_id}"

    cross = signed_post(app_keys, [make_event()], url=url)
    unknown_app = signed_post(app_keys, [make_event()], url=f"/v1/ingest/{app_keys.org_id}/app_00000000")
    unknown_org = signed_post(app_keys, [make_event()], url=f"/v1/ingest/org_nope/{app_keys.app_id}")
    bad_signature = signed_post(other, [make_event()], url=app_keys.url)

    bodies = {json.dumps(r.json(), sort_keys=True) for r in (cross, unknown_app, unknown_org, bad_signature)}
    assert {r.status_code for r in (cross, unknown_app, unknown_org, bad_signature)} == {401}
    assert len(bodies) == 1
    assert not Event.objects.exists()


def test_revoked_credential_is_rejected_with_401(app_keys, signed_post):
    from django.utils import timezone

    app_keys.application.credentials.update(revoked_at=timezone.now())

    assert signed_post(app_keys, [make_event()]).status_code == 401


@override_settings(SECURITY_ACCEPT_LEGACY_SIGNATURE=True)
def test_legacy_signature_is_accepted_once_when_enabled(app_keys, client):
    from telemetry.lib.signing import signature

    body = batch_body([make_event()])
    timestamp = str(int(time.time()) - 500)
    headers = {
        "HTTP_X_SIGNATURE": signature(app_keys.hmac_secret, timestamp, None, body),
        "HTTP_X_TIMESTAMP": timestamp,
        "HTTP_AUTHORIZATION": f"Bearer {app_keys.api_token}",
    }

    first = client.post(app_keys.url, data=body, content_type="application/json", **headers)
    replay = client.post(app_keys.url, data=body, content_type="application/json", **headers)

    assert (first.status_code, replay.status_code) == (200, 401)


def test_legacy_signature_is_refused_by_default(app_keys, client):
    from telemetry.lib.signing import signature

    body = batch_body([make_event()])
    timestamp = str(int(time.time()))
    headers = {
        "HTTP_X_SIGNATURE": signature(app_keys.hmac_secret, timestamp, None, body),
        "HTTP_X_TIMESTAMP": timestamp,
    }

    assert client.post(app_keys.url, data=body, content_type="application/json", **headers).status_code == 401


# --- DNT and headers ---------------------------------------------------------------------------


def test_do_not_track_stores_nothing_and_answers_204(app_keys, signed_post):
    response = signed_post(app_keys, [make_event()], HTTP_DNT="1")

    assert response.status_code == 204
    assert response.content == b""
    assert not Event.objects.exists()


def test_do_not_track_still_requires_a_valid_signature(app_keys, client):
    body = batch_body([make_event()])
    headers = signed_headers(app_keys, body, HTTP_DNT="1")
    headers["HTTP_X_SIGNATURE"] = "0" * 64

    assert client.post(app_keys.url, data=body, content_type="application/json", **headers).status_code == 401


def test_every_answer_carries_the_clacks_header(app_keys, signed_post, client):
    answers = [
        signed_post(app_keys, [make_event()]),
        signed_post(app_keys, b"nope"),
        client.get("/health"),
        client.get("/no-such-page"),
    ]

    assert {r["X-Clacks-Overhead"] for r in answers} == {"GNU Terry Pratchett"}


def test_unknown_api_path_answers_json_404(client):
    response = client.get("/v1/nothing-here")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "No such endpoint"}}


def test_request_for_a_host_not_served_answers_json_400(app_keys, signed_post):
    response = signed_post(app_keys, [make_event()], HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert not Event.objects.exists()


@pytest.mark.parametrize("value", ["²", "-1", "1e3", "99999999999999999999999", " "])
def test_malformed_batch_size_header_is_answered_400_never_500(app_keys, signed_post, value):
    response = signed_post(app_keys, [make_event()], HTTP_X_BATCH_SIZE=value)

    assert response.status_code == 400
    assert not Event.objects.exists()


def test_do_not_track_with_a_huge_declared_batch_is_still_204(app_keys, signed_post):
    response = signed_post(app_keys, [make_event()], HTTP_DNT="1", HTTP_X_BATCH_SIZE="9" * 30)

    assert response.status_code == 204


# The view is DRF's: a signed POST is called with Django's request, its errors and every other
# method take DRF's way, and all its answers carry what DRF gives them.


def test_accepted_refused_and_invalid_batches_all_carry_drfs_allow_header(app_keys, signed_post):
    accepted = signed_post(app_keys, [make_event()])
    refused = signed_post(app_keys, [make_event()], HTTP_X_SIGNATURE="0" * 64)
    invalid = signed_post(app_keys, [make_event(schema_version="9.9.9")])

    assert [accepted.status_code, refused.status_code, invalid.status_code] == [200, 401, 422]
    assert {accepted["Allow"], refused["Allow"], invalid["Allow"]} == {"POST, OPTIONS"}


def test_options_on_the_ingest_route_is_answered_by_drf(app_keys, client):
    response = client.options(app_keys.url)

    assert response.status_code == 200
    assert response["Allow"] == "POST, OPTIONS"
    assert response.json()["renders"] == ["application/json"]


def test_a_machine_api_with_plain_methods_cannot_also_count_on_drfs_checks():
    class Throttled(IngestApi):
        throttle_classes = [AnonRateThrottle]

    with pytest.raises(ImproperlyConfigured):
        Throttled.as_view()

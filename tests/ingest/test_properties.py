"""Property tests of the ingest API (hypothesis): whatever a batch holds, the answer is never a 5xx,
accepted + rejected is the batch size, each rejected event carries a documented code, and exactly the
accepted events are stored (once each)."""

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.models import Event
from tests.conftest import USER_ID, app_keys_create, make_event

pytestmark = pytest.mark.django_db

CODES = {
    "invalid_data",
    "invalid_event",
    "invalid_event_id",
    "invalid_service",
    "invalid_session_id",
    "invalid_text",
    "invalid_timestamp",
    "invalid_user_id",
    "missing_field",
    "unsupported_schema_version",
    "timestamp_out_of_range",
    "over_quota",
}

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=300),
    st.just("\x00"),
    st.just("x" * 300),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
timestamps = st.one_of(
    st.just("2026-11-20T10:30:00Z"),
    st.just("0001-01-01T00:00:00+01:00"),
    st.just("9999-12-31T23:00:00-05:00"),
    st.just("2026-13-40T99:99:99Z"),
    st.just("2026-11-20T10:30:00"),
    st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat()),
    junk,
)
data = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=50),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def events(draw):
    event = make_event()
    if draw(st.booleans()):  # most events stay close to valid, with one or two fields changed
        for field in draw(
            st.lists(
                st.sampled_from(
                    ["event_id", "schema_version", "timestamp", "user_id", "session_id", "service", "event"]
                ),
                max_size=2,
            )
        ):
            event[field] = draw(
                {
                    "timestamp": timestamps,
                    "user_id": st.one_of(st.just(USER_ID), st.just("anon_" + "f" * 64), junk),
                    "event_id": st.one_of(st.uuids().map(str), junk),
                }.get(field, junk)
            )
    event["event"] = (
        {
            "type": draw(st.one_of(st.just("command"), st.text(max_size=300))),
            "category": draw(st.one_of(st.none(), st.text(max_size=20))),
            "data": draw(data),
        }
        if draw(st.booleans())
        else event["event"]
    )
    if draw(st.booleans()):
        del event[draw(st.sampled_from(sorted(event)))]
    return event


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(batch=st.lists(events(), max_size=8), repeat=st.booleans())
def test_any_batch_is_answered_and_stored_exactly_as_the_answer_says(signed_post, batch, repeat):
    if repeat and batch:
        batch.append(batch[0])  # the same event twice in one batch
    keys = app_keys_create()

    response = signed_post(keys, batch)

    assert response.status_code in (200, 207, 422), response.content
    answer = response.json()
    assert answer["accepted"] + answer["rejected"] == len(batch)
    assert len(answer["errors"]) == answer["rejected"]
    assert {error["error"] for error in answer["errors"]} <= CODES
    refused = {error["index"] for error in answer["errors"]}
    accepted_ids = {
        str(uuid.UUID(str(event.get("event_id") or event.get("id"))))
        for index, event in enumerate(batch)
        if index not in refused
    }
    stored = {
        str(value) for value in Event.objects.filter(application=keys.application).values_list("event_id", flat=True)
    }
    assert stored == accepted_ids


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.recursive(
            st.none() | st.integers() | st.text(max_size=10),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
            max_leaves=8,
        ).map(lambda value: json.dumps({"events": value}).encode()),
    )
)
def test_any_body_is_answered_with_a_json_error_never_a_5xx(app_keys, signed_post, body):
    response = signed_post(app_keys, body)

    assert response.status_code < 500, response.content
    assert response["Content-Type"].startswith("application/json") or response.status_code == 204

"""Events and anonymous ids in the shape of docs/protocols.md#event-schema."""

import hashlib
import json
import os
import re
import stat
import uuid
from datetime import UTC, datetime

import pytest

from telemetry_kit.events import (
    EventEncoder,
    kept_random_id,
    rfc3339,
    service_describe,
    session_id_new,
    user_id_derive,
    uuid4_text,
    with_metadata,
)

MACHINE = "4c4c4544004d3510804cb4c04f4a3332"


def test_user_id_is_client_and_64_hex_stable_for_a_machine_and_application():
    user_id = user_id_derive(MACHINE, "app_e963188b")

    assert re.fullmatch(r"client_[0-9a-f]{64}", user_id)
    assert user_id == user_id_derive(MACHINE, "app_e963188b")


def test_user_id_differs_between_applications_and_between_machines():
    ids = {
        user_id_derive(MACHINE, "app_e963188b"),
        user_id_derive(MACHINE, "app_00000001"),
        user_id_derive("another-machine", "app_e963188b"),
    }

    assert len(ids) == 3


def test_user_id_is_not_a_plain_hash_of_the_machine_id():
    user_id = user_id_derive(MACHINE, "app_e963188b")

    assert MACHINE not in user_id
    assert user_id[len("client_") :] not in {
        hashlib.sha256(MACHINE.encode()).hexdigest(),
        hashlib.sha256(f"{MACHINE}app_e963188b".encode()).hexdigest(),
    }


def test_machine_without_an_id_of_its_own_gets_a_random_one_kept_for_next_time(tmp_path):
    first = kept_random_id(tmp_path / "cache" / "machine-id")

    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert kept_random_id(tmp_path / "cache" / "machine-id") == first


def test_the_kept_machine_id_is_readable_by_its_user_only_whatever_the_umask(tmp_path):
    previous = os.umask(0o002)
    try:
        kept_random_id(tmp_path / "cache" / "machine-id")
    finally:
        os.umask(previous)

    assert [stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "cache", tmp_path / "cache" / "machine-id")] == [
        0o700,
        0o600,
    ]


def test_session_id_is_sess_and_32_hex_new_each_time():
    assert re.fullmatch(r"sess_[0-9a-f]{32}", session_id_new())
    assert session_id_new() != session_id_new()


def test_rfc3339_is_utc_with_milliseconds():
    moment = datetime(2026, 11, 20, 10, 30, 0, 123000, tzinfo=UTC).timestamp()

    assert rfc3339(moment) == "2026-11-20T10:30:00.123Z"


def encoder(service=None) -> EventEncoder:
    return EventEncoder(
        user_id="client_" + "a" * 64,
        session_id="sess_" + "b" * 32,
        service=service or service_describe("my-app", "1.2.3"),
    )


def encoded(service=None, **overrides):
    arguments = {"event_type": "command", "data": {"name": "build"}, "category": "cli", "now": 1732003200.5}
    arguments.update(overrides)
    event_id, text = encoder(service).encode(**arguments)
    return event_id, json.loads(text)


def test_event_has_the_servers_shape():
    event_id, event = encoded()

    assert event == {
        "event_id": event_id,
        "schema_version": "1.0.0",
        "timestamp": "2024-11-19T08:00:00.500Z",
        "user_id": "client_" + "a" * 64,
        "session_id": "sess_" + "b" * 32,
        "service": {
            "name": "my-app",
            "version": "1.2.3",
            "language": "python",
            "language_version": event["service"]["language_version"],
        },
        "event": {"type": "command", "category": "cli", "data": {"name": "build"}},
    }
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", event_id)
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", event["service"]["language_version"])


def test_optional_fields_are_omitted_never_null():
    _, event = encoded(data=None, category=None, service=service_describe("my-app", None))

    assert event["event"] == {"type": "command"}
    assert "version" not in event["service"]


@pytest.mark.parametrize("data", [{"ratio": float("nan")}, {"when": datetime.now()}, {"big": float("inf")}])
def test_data_that_is_not_json_is_refused(data):
    with pytest.raises((TypeError, ValueError)):
        encoded(data=data)


@pytest.mark.parametrize("event_type", ["", None, 42])
def test_event_type_must_be_a_non_empty_string(event_type):
    with pytest.raises(TypeError):
        encoded(event_type=event_type)


def test_event_ids_are_uuid4_text():
    ids = {uuid4_text() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(uuid.UUID(event_id).version == 4 and str(uuid.UUID(event_id)) == event_id for event_id in ids)


def test_event_type_and_data_are_escaped_as_json():
    _, event = encoded(event_type='say "hi"\n', data={"quote": '"', "unicode": "é"})

    assert event["event"] == {"type": 'say "hi"\n', "category": "cli", "data": {"quote": '"', "unicode": "é"}}


def test_metadata_is_appended_when_sent():
    _, text = encoder().encode("command", {"n": 1}, None)

    sent = json.loads(
        with_metadata(text, transmission_timestamp="2026-11-20T10:31:00.000Z", batch_size=3, retry_count=2)
    )

    assert sent["metadata"] == {"transmission_timestamp": "2026-11-20T10:31:00.000Z", "batch_size": 3, "retry_count": 2}
    assert {key: value for key, value in sent.items() if key != "metadata"} == json.loads(text)

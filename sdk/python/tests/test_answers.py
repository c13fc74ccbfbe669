"""What each answer of the server means for the batch that was sent (docs/protocols.md#signed-batches)."""

import json

import pytest

from telemetry_kit.transport import Verdict, answer_read


def answer(status, body=None, **headers):
    raw = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    return answer_read(status, headers, raw)


def result(status, accepted, errors=()):
    return {"status": status, "accepted": accepted, "rejected": len(errors), "message": "m", "errors": list(errors)}


def test_200_with_a_batch_result_is_delivered():
    got = answer(200, result("success", 3))

    assert (got.verdict, got.accepted, got.errors) == (Verdict.DELIVERED, 3, [])


def test_207_is_delivered_with_the_events_it_rejected():
    error = {"index": 1, "event_id": "e", "error": "invalid_data", "message": "no NUL"}

    got = answer(207, result("partial", 2, [error]))

    assert (got.verdict, got.accepted, got.errors) == (Verdict.DELIVERED, 2, [error])


def test_200_without_a_batch_result_is_not_delivered():
    got = answer(200, b"<html>Welcome to the hotel network</html>")

    assert got.verdict is Verdict.FAILED


def test_422_rejects_every_event_with_its_error():
    error = {"index": 0, "event_id": "e", "error": "invalid_event", "message": "type too long"}
    body = {**result("rejected", 0, [error]), "error": {"code": "validation_error", "message": "m"}}

    got = answer(422, body)

    assert (got.verdict, got.errors) == (Verdict.REJECTED, [error])


@pytest.mark.parametrize(("status", "code"), [(400, "bad_request"), (413, "payload_too_large")])
def test_batch_refused_as_a_whole(status, code):
    got = answer(status, {"error": {"code": code, "message": "no"}})

    assert (got.verdict, got.code, got.message) == (Verdict.BATCH_REFUSED, code, "no")


@pytest.mark.parametrize(
    ("status", "code"), [(429, "rate_limit_exceeded"), (429, "quota_exceeded"), (503, "service_unavailable")]
)
def test_busy_or_down_is_retried_after_the_servers_retry_after(status, code):
    got = answer(status, {"error": {"code": code, "message": "later"}}, **{"Retry-After": "17"})

    assert (got.verdict, got.code, got.retry_after) == (Verdict.UNAVAILABLE, code, 17.0)


@pytest.mark.parametrize("status", [502, 504])
def test_a_proxy_without_its_server_is_retried(status):
    assert answer(status, b"Bad Gateway").verdict is Verdict.UNAVAILABLE


def test_500_is_retried_a_limited_number_of_times():
    got = answer(500, b"")

    assert (got.verdict, got.code) == (Verdict.FAILED, "http_500")


@pytest.mark.parametrize("status", [401, 403, 404, 301])
def test_credentials_or_endpoint_the_server_refuses_are_a_configuration_problem(status):
    assert (
        answer(status, {"error": {"code": "unauthorized", "message": "bad signature"}}).verdict is Verdict.MISCONFIGURED
    )


def test_flat_error_of_the_older_server_is_read_too():
    got = answer(401, {"error": "unauthorized", "message": "Invalid signature"})

    assert (got.code, got.message) == ("unauthorized", "Invalid signature")

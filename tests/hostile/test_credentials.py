"""Credentials on the endpoints that take an API token (streams, WebSocket, Lambda, OTLP, Malti) and on
the signed ingest: a revoked token stops at once in every server process, and a key bound to one
service sends that service's events only. Revocations are made here, in the test process, as an
operator's command or another web process would make them: the server learns of them only through
the database and Redis."""

import http.client
import json
import time
from datetime import UTC, datetime

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from accounts.models import Credential
from accounts.services import credential_issue, credential_revoke
from ingest.models import Event
from tests.conftest import AppKeys, batch_body, iso, make_event, signed_headers
from tests.factories import ApplicationFactory
from tests.server import stream_url, wsgi_to_http

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def keys_issue(service_name: str = "") -> AppKeys:
    application = ApplicationFactory()
    issued = credential_issue(application=application, service_name=service_name)
    return AppKeys(application=application, api_token=issued.api_token, hmac_secret=issued.hmac_secret)


def _stream(keys: AppKeys, service: str):
    return (
        f"/v1/streams/{keys.org_id}/{keys.app_id}",
        b'{"service": "%s"}\n' % service.encode(),
        {"Authorization": f"Bearer {keys.api_token}", "Content-Type": "application/x-ndjson"},
    )


def _lambda(keys: AppKeys, service: str):
    start = {
        "type": "platform.start",
        "time": datetime.now(UTC).isoformat(),
        "record": {"requestId": f"r-{time.monotonic_ns()}", "version": "$LATEST"},
    }
    return (
        f"/v1/lambda/{keys.org_id}/{keys.app_id}?function={service}",
        json.dumps([start]).encode(),
        {"Authorization": f"Bearer {keys.api_token}", "Content-Type": "application/json"},
    )


def _otlp(keys: AppKeys, service: str):
    logs = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeLogs": [{"logRecords": [{"timeUnixNano": str(time.time_ns()), "body": {"stringValue": "hi"}}]}],
            }
        ]
    }
    return (
        f"/v1/otlp/{keys.org_id}/{keys.app_id}/v1/logs",
        json.dumps(logs).encode(),
        {"Authorization": f"Bearer {keys.api_token}", "Content-Type": "application/json"},
    )


def _malti(keys: AppKeys, service: str):
    record = {
        "service": service,
        "method": "GET",
        "endpoint": "/orders",
        "status": 200,
        "response_time": 4,
        "consumer": "web",
        "node": None,
        "context": None,
        "created_at": datetime.now(UTC).isoformat(),
    }
    return (
        "/api/v1/ingest",
        json.dumps({"requests": [record]}).encode(),
        {"X-API-Key": keys.api_token, "Content-Type": "application/json"},
    )


def _signed(keys: AppKeys, service: str):
    body = batch_body([make_event(timestamp=iso(datetime.now(UTC)), service={"name": service})])
    return keys.url, body, {"Content-Type": "application/json", **wsgi_to_http(signed_headers(keys, body))}


TOKEN_ENDPOINTS = {"streams": _stream, "lambda": _lambda, "otlp": _otlp, "malti": _malti}


def post(port: int, request) -> tuple[int, dict, bytes]:
    path, body, headers = request
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()


def stored(keys: AppKeys) -> int:
    return Event.objects.filter(application=keys.application).count()


def revoke(keys: AppKeys) -> None:
    for credential in Credential.objects.filter(application=keys.application):
        credential_revoke(credential=credential)


@pytest.mark.parametrize("endpoint", sorted(TOKEN_ENDPOINTS))
def test_a_revoked_token_is_refused_on_the_very_next_request(live, endpoint):
    keys = keys_issue()
    make = TOKEN_ENDPOINTS[endpoint]
    assert post(live[0], make(keys, "checkout"))[0] == 200  # the server now holds the credential in its cache

    revoke(keys)
    status, _, _ = post(live[0], make(keys, "checkout"))

    assert status == 401
    assert stored(keys) == 1


def test_a_revoked_token_is_refused_a_new_websocket(live):
    keys = keys_issue()
    url = stream_url(live[1], keys)
    with connect(url) as websocket:
        websocket.send("{}")
        assert websocket.recv(timeout=10) == "1"

    revoke(keys)
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10)

    assert refused.value.response.status_code == 403  # how the server refuses any WebSocket before accepting it
    assert stored(keys) == 1


def test_a_websocket_open_when_its_token_is_revoked_stops_at_its_next_message(live):
    keys = keys_issue()
    url = stream_url(live[1], keys)
    with connect(url) as websocket:
        websocket.send("{}")
        assert websocket.recv(timeout=10) == "1"
        revoke(keys)

        websocket.send("{}")
        answers = []
        with pytest.raises(ConnectionClosed):
            while True:
                answers.append(websocket.recv(timeout=10))
        close = websocket.protocol.close_rcvd

    assert (close.code, close.reason) == (1008, "unauthorized")
    assert answers == ["1"]  # nothing more stored
    assert stored(keys) == 1


@pytest.mark.parametrize("endpoint", sorted(TOKEN_ENDPOINTS) + ["signed"])
def test_a_key_bound_to_a_service_cannot_send_another_services_events(live, endpoint):
    keys = keys_issue(service_name="checkout")
    make = {**TOKEN_ENDPOINTS, "signed": _signed}[endpoint]

    status, headers, body = post(live[0], make(keys, "billing"))

    assert status == 403
    code = headers.get("x-error-code") or json.loads(body).get("error", {}).get("code")
    if endpoint == "otlp":  # OTLP answers with a google.rpc.Status, which has no room for our code
        status_body = json.loads(body)
        assert status_body["code"] == 7  # PERMISSION_DENIED
        code = "service_mismatch" if "checkout" in status_body["message"] else None
    assert code == "service_mismatch"
    assert stored(keys) == 0


@pytest.mark.parametrize("endpoint", ["lambda", "otlp", "malti", "signed"])
def test_a_key_bound_to_a_service_sends_that_services_events(live, endpoint):
    keys = keys_issue(service_name="checkout")
    make = {**TOKEN_ENDPOINTS, "signed": _signed}[endpoint]

    status, _, _ = post(live[0], make(keys, "checkout"))

    assert status == 200
    assert set(Event.objects.filter(application=keys.application).values_list("service_name", flat=True)) == {
        "checkout"
    }


def test_a_key_bound_to_a_service_cannot_stream_events_that_name_no_service(live):
    keys = keys_issue(service_name="checkout")
    url = stream_url(live[1], keys)

    with connect(url) as websocket:
        websocket.send('{"service": "checkout"}')
        with pytest.raises(ConnectionClosed):
            websocket.recv(timeout=10)
            websocket.recv(timeout=10)
        close = websocket.protocol.close_rcvd

    assert (close.code, close.reason) == (1008, "service_mismatch")
    assert stored(keys) == 0

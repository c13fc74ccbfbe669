import time
import urllib.error
import urllib.request

import pytest
from django.test import override_settings

from ingest.models import Event
from tests.conftest import make_event
from tests.server import running_server, unused_port


# With DEBUG on, DRF reads the request's negotiated renderer before re-raising an error its
# exception handler does not answer (the signed POST has it built only then); the outage
# middleware answers it all the same.
@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_redis_unreachable_answers_503_with_retry_after_and_stores_nothing(app_keys, signed_post, debug):
    with override_settings(DEBUG=debug, REDIS_URL=f"redis://127.0.0.1:{unused_port()}/0"):
        response = signed_post(app_keys, [make_event()])

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert int(response["Retry-After"]) > 0
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_ready_names_redis_when_it_is_down(client):
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{unused_port()}/0"):
        response = client.get("/ready")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "down"}
    assert "redis" in response.json()["error"]["message"]


@pytest.fixture
def server_without_database(tmp_path):
    """The production server started against a PostgreSQL port where nothing listens."""
    with running_server(tmp_path, DATABASE_URL=f"postgres://postgres@127.0.0.1:{unused_port()}/telemetry") as port:
        yield f"http://127.0.0.1:{port}"


def request(url, **kwargs):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, **kwargs), timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_database_unreachable_answers_503_never_500(server_without_database):
    body = b'{"events":[]}'
    headers = {
        "Content-Type": "application/json",
        "X-Signature": "0" * 64,
        "X-Timestamp": str(int(time.time())),
        "X-Nonce": "550e8400-e29b-41d4-a716-446655440000",
        "X-Batch-Size": "0",
    }

    status, response_headers, content = request(
        f"{server_without_database}/v1/ingest/org_x/app_12345678", data=body, headers=headers, method="POST"
    )

    assert status == 503
    assert b'"service_unavailable"' in content
    assert response_headers["Retry-After"]


def test_health_stays_up_and_ready_names_the_database_when_it_is_down(server_without_database):
    health_status, _, _ = request(f"{server_without_database}/health")
    ready_status, _, ready_body = request(f"{server_without_database}/ready")

    assert health_status == 200
    assert ready_status == 503
    assert b'"database": "down"' in ready_body


@pytest.mark.django_db
def test_secrets_encrypted_under_another_key_answer_503_so_sdks_keep_their_events(app_keys, signed_post, settings):
    settings.SECRET_KEY = "a-different-secret-key-than-the-one-the-secrets-were-encrypted-under"

    response = signed_post(app_keys, [make_event()])

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert not Event.objects.exists()

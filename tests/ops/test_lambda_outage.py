"""The Lambda and OTLP endpoints while Redis is unreachable: 503 with Retry-After, as each client
expects it (OTLP exporters retry on 503), and nothing stored."""

import http.client
import json

import pytest
from google.rpc import status_pb2

from ingest.models import Event
from tests.conftest import app_keys_create
from tests.ingest.test_lambda_api import SEED_FUNCTION
from tests.ingest.test_otlp_api import logs
from tests.server import database_env_for_server, running_server, unused_port

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def post(port: int, path: str, body: bytes, content_type: str, token: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path, body=body, headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    return response.status, response.getheader("Retry-After"), response.getheader("Content-Type"), response.read()


def test_without_redis_both_ways_in_answer_503_with_retry_after(tmp_path):
    keys = app_keys_create()
    env = {**database_env_for_server(), "REDIS_URL": f"redis://127.0.0.1:{unused_port()}/0"}
    with running_server(tmp_path, **env) as port:
        otlp = post(
            port,
            f"/v1/otlp/{keys.org_id}/{keys.app_id}/v1/logs",
            logs("x").SerializeToString(),
            "application/x-protobuf",
            keys.api_token,
        )
        arrays = post(
            port,
            f"/v1/lambda/{keys.org_id}/{keys.app_id}?function=f",
            json.dumps([SEED_FUNCTION]).encode(),
            "application/json",
            keys.api_token,
        )

    status, retry_after, content_type, body = otlp
    assert (status, content_type) == (503, "application/x-protobuf")
    assert int(retry_after) > 0
    assert status_pb2.Status.FromString(body).code == 14  # UNAVAILABLE
    status, retry_after, _, body = arrays
    assert status == 503 and int(retry_after) > 0
    assert json.loads(body)["error"]["code"] == "service_unavailable"
    assert not Event.objects.filter(application=keys.application).exists()

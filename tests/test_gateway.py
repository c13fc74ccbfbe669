"""The server's front (telemetry/gateway.py) passes requests and answers through as a WSGI server
would: bodies whole, streams as they come, files from disk."""

import http.client

import pytest

from ingest.models import Event
from tests.conftest import app_keys_create
from tests.server import database_env_for_server, running_server

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_an_event_stream_with_a_content_length_is_stored_whole(live_port):
    keys = app_keys_create()
    body = b"".join(b'{"n": %d}\n' % n for n in range(50))
    conn = http.client.HTTPConnection("127.0.0.1", live_port, timeout=10)

    conn.request(
        "POST",
        f"/v1/streams/{keys.org_id}/{keys.app_id}",
        body=body,
        headers={"X-Api-Key": keys.api_token, "Content-Length": str(len(body))},
    )
    response = conn.getresponse()

    assert (response.status, response.read()) == (200, b"50")
    assert Event.objects.filter(application=keys.application).count() == 50


def test_a_static_file_is_sent_whole_from_disk(server_data_dir):
    data_dir = server_data_dir()
    bundle = "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    with running_server(data_dir, **database_env_for_server()) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", f"/static/{bundle}")
        response = conn.getresponse()
        body = response.read()
        conn.request("HEAD", f"/static/{bundle}", headers={"Accept-Encoding": "gzip"})
        head = conn.getresponse()
        head.read()

    on_disk = (data_dir / "static" / bundle).read_bytes()
    assert (response.status, int(response.getheader("Content-Length")), body) == (200, len(on_disk), on_disk)
    assert (head.status, head.getheader("Content-Encoding")) == (200, "gzip")

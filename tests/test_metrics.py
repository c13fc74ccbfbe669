import http.client

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import batch_body, make_event, signed_headers
from tests.server import database_env_for_server, running_server, wsgi_to_http


def samples(text: str) -> dict:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(found: dict, name: str, **labels) -> float:
    return sum(
        value
        for (sample, sample_labels), value in found.items()
        if sample == name and all(dict(sample_labels).get(k) == v for k, v in labels.items())
    )


@pytest.mark.django_db
def test_metrics_parse_and_count_ingested_events(app_keys, signed_post, client):
    before = samples(client.get("/metrics").content.decode())

    signed_post(app_keys, [make_event(), make_event(), make_event(user_id="bad")])
    response = client.get("/metrics")

    assert response.status_code == 200
    after = samples(response.content.decode())
    assert total(after, "events_ingested_total") - total(before, "events_ingested_total") == 2
    assert (
        total(after, "events_failed_total", outcome="invalid", reason="invalid_user_id")
        - total(before, "events_failed_total", outcome="invalid", reason="invalid_user_id")
        == 1
    )
    assert total(after, "http_requests_total", route="ingest", status="207") >= 1
    assert total(after, "http_request_duration_seconds_count", route="ingest") >= 1
    assert total(after, "db_connections_active") >= 1


@pytest.mark.django_db
def test_metrics_are_refused_outside_the_allowed_networks(client):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403


@pytest.mark.django_db
def test_metrics_token_admits_any_address_that_bears_it(client, settings):
    settings.METRICS_TOKEN = "s3cret-metrics"

    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    assert (
        client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer s3cret-metrics").status_code == 200
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_metrics_add_up_across_worker_processes(tmp_path):
    from tests.conftest import app_keys_create

    keys = app_keys_create()
    with running_server(tmp_path, APP_SERVER__WORKERS="2", **database_env_for_server()) as port:
        for _ in range(20):
            body = batch_body([make_event()])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request(
                "POST",
                keys.url,
                body=body,
                headers={"Content-Type": "application/json", **wsgi_to_http(signed_headers(keys, body))},
            )
            assert conn.getresponse().status == 200
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        found = samples(conn.getresponse().read().decode())

    assert total(found, "http_requests_total", route="ingest", status="200") == 20
    assert total(found, "events_ingested_total") == 20

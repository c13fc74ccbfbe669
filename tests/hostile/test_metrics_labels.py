"""/metrics' labels stay bounded whatever a client sends: made-up methods and paths fold into one value."""

import http.client
import uuid

import pytest

from tests.test_metrics import samples

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

STANDARD_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}


def _request(port: int, method: str, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _label_values(port: int, label: str) -> set[str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    assert response.status == 200
    found = samples(response.read().decode())
    return {dict(labels)[label] for name, labels in found if dict(labels).get(label) is not None}


def test_made_up_methods_fold_into_one_method_label(live_port):
    statuses = {_request(live_port, f"X{uuid.uuid4().hex[:12].upper()}", "/health") for _ in range(40)}

    methods = _label_values(live_port, "method")

    assert statuses == {405}
    assert methods - STANDARD_METHODS == {"other"}


def test_unknown_paths_fold_into_one_route_label(live_port):
    for _ in range(40):
        assert _request(live_port, "GET", f"/{uuid.uuid4().hex}/{uuid.uuid4().hex}") == 404

    routes = _label_values(live_port, "route")

    assert "unmatched" in routes
    assert not any(len(route) >= 32 for route in routes)  # no path of the requests became a label
    assert len(routes) < 10

"""Client addresses behind a reverse proxy: X-Forwarded-For is believed only from the proxies named in
APP_SERVER__TRUSTED_PROXIES, and then only up to the first hop they did not add."""

import http.client
import re
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest

from accounts.models import AuditEntry
from tests.factories import UserFactory
from tests.server import database_env_for_server, running_server

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PASSWORD = "right-password-123"


def _get(port: int, path: str, headers: dict) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def _sign_in(port: int, username: str, password: str, forwarded_for: str) -> int:
    """Signs in through the admin's form as a browser behind the proxy would; returns the status."""
    proxy = {"X-Forwarded-For": forwarded_for}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/admin/login/", headers=proxy)
    page = conn.getresponse()
    html = page.read().decode()
    cookie = SimpleCookie(page.getheader("Set-Cookie"))["csrftoken"].value
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    body = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token, "next": "/admin/"})
    conn.request(
        "POST",
        "/admin/login/",
        body=body,
        headers={
            **proxy,
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookie}",
            "Referer": f"http://127.0.0.1:{port}/admin/login/",
        },
    )
    response = conn.getresponse()
    response.read()
    return response.status


@pytest.fixture(scope="module")
def proxied_port(django_db_setup, server_data_dir):
    """The production server behind a proxy at 127.0.0.1 (the tests' own address), which it trusts;
    one for the module's tests."""
    env = {**database_env_for_server(), "APP_SERVER__TRUSTED_PROXIES": "127.0.0.1,10.0.0.0/8"}
    with running_server(server_data_dir("proxied"), **env) as port:
        yield port


def test_metrics_refuse_a_remote_client_behind_a_trusted_proxy(proxied_port):
    assert _get(proxied_port, "/metrics", {"X-Forwarded-For": "203.0.113.9"}) == 403
    assert _get(proxied_port, "/metrics", {}) == 200  # the proxy's own scrape


def test_a_forged_leftmost_hop_is_not_believed(proxied_port):
    # The client wrote "127.0.0.1" itself; the trusted proxies appended the real address and their own.
    assert _get(proxied_port, "/metrics", {"X-Forwarded-For": "127.0.0.1, 203.0.113.9, 10.1.2.3"}) == 403


def test_forwarded_for_is_ignored_from_an_address_that_is_not_a_trusted_proxy(tmp_path):
    env = {
        **database_env_for_server(),
        "APP_SERVER__TRUSTED_PROXIES": "10.0.0.0/8",
        "APP_OBSERVABILITY__METRICS_ALLOWED_NETWORKS": "10.0.0.0/8",
    }
    with running_server(tmp_path, **env) as port:
        assert _get(port, "/metrics", {"X-Forwarded-For": "10.1.2.3"}) == 403


def test_forwarded_for_is_ignored_by_default(tmp_path):
    env = {**database_env_for_server(), "APP_OBSERVABILITY__METRICS_ALLOWED_NETWORKS": "10.0.0.0/8"}
    with running_server(tmp_path, **env) as port:
        assert _get(port, "/metrics", {"X-Forwarded-For": "10.1.2.3"}) == 403


def test_failed_sign_ins_from_one_client_do_not_lock_out_another_behind_the_proxy(proxied_port):
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    admin.set_password(PASSWORD)
    admin.save()

    attempts = [_sign_in(proxied_port, "admin", "wrong", "203.0.113.66") for _ in range(6)]
    owner = _sign_in(proxied_port, "admin", PASSWORD, "198.51.100.7")

    assert attempts[-1] == 429  # the attacker is throttled ...
    assert owner == 302  # ... and the owner, elsewhere, signs in
    entries = AuditEntry.objects.filter(target="admin")
    assert set(entries.filter(action="sign_in_failed").values_list("source_ip", flat=True)) == {"203.0.113.66"}
    assert entries.get(action="sign_in").source_ip == "198.51.100.7"

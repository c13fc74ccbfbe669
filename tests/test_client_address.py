"""telemetry.lib.addresses.client_address: X-Forwarded-For walked from the right past trusted proxies."""

import ipaddress

import environ
import pytest
from django.test import RequestFactory

from telemetry.lib.addresses import client_address
from telemetry.lib.config import EnvReader


@pytest.fixture
def proxies(settings):
    settings.SERVER_TRUSTED_PROXIES = [
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    ]


def address(remote: str, forwarded_for: str | None = None) -> str:
    headers = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    return client_address(RequestFactory().get("/", REMOTE_ADDR=remote, **headers))


def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.SERVER_TRUSTED_PROXIES = []

    assert address("127.0.0.1", "203.0.113.9") == "127.0.0.1"


def test_the_header_is_ignored_from_an_address_that_is_not_a_trusted_proxy(proxies):
    assert address("198.51.100.4", "10.1.2.3") == "198.51.100.4"


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("127.0.0.1, 203.0.113.9, 10.1.2.3", "203.0.113.9"),  # the leftmost hop is the client's own claim
        ("203.0.113.9,10.1.2.3 , 10.4.5.6", "203.0.113.9"),
        ("2001:db8::7, fd00::1", "2001:db8::7"),
        ("10.1.2.3", "10.1.2.3"),  # every hop trusted: the farthest proxy
        ("", "127.0.0.1"),
        ("not-an-address", "127.0.0.1"),  # the proxy that passed it on
        ("203.0.113.9, unknown, 10.1.2.3", "10.1.2.3"),
    ],
)
def test_the_client_is_the_nearest_hop_no_trusted_proxy_holds(proxies, forwarded_for, client):
    assert address("127.0.0.1", forwarded_for) == client


def test_a_trusted_proxy_that_is_not_an_address_or_network_stops_the_start(monkeypatch):
    monkeypatch.setenv("APP_SERVER__TRUSTED_PROXIES", "127.0.0.1,nginx")
    env = EnvReader(environ.Env())

    assert env.network_list("APP_SERVER__TRUSTED_PROXIES", []) == []
    assert env.errors == [
        "APP_SERVER__TRUSTED_PROXIES='nginx' is not valid: expected addresses or networks like 10.0.0.0/8"
    ]

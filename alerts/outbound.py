"""Outbound HTTP for alert deliveries: http(s) only, no redirects, bounded in time and in what is
read, and only to public addresses unless the operator allows a private network.

An organization's admin chooses the URL, so without the address check the service would POST for
them into its own network (its database, Redis, a cloud's metadata endpoint). The host is resolved
once, every address checked, and the connection made to the address checked, so a name that
resolves differently a moment later (DNS rebinding) cannot slip past.
"""

import http.client
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 10.0
# A receiver's answer is only logged: its first bytes tell enough.
MAX_RESPONSE_BYTES = 64 * 1024


class RefusedUrl(ValueError):
    """A URL no delivery may be sent to; retrying cannot help."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


def _allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone is not part of the address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in settings.ALERTS_PRIVATE_NETWORKS):
        return True
    return ip.is_global and not ip.is_multicast


def _parts(url: str):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedUrl(f"only http and https URLs are allowed, not {url[:100]!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RefusedUrl(f"the port of {url[:100]!r} is not a number from 0 to 65535") from None
    return parts, port


def _address(host: str, port: int) -> tuple:
    """The address to connect to: the first of ``host``'s, once all of them are found allowed."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    refused = sorted({sockaddr[0] for *_, sockaddr in found if not _allowed(sockaddr[0])})
    if refused:
        raise RefusedUrl(
            f"{host} is a private, loopback or reserved address ({', '.join(refused)}); "
            "an operator may allow its network with APP_ALERTS__PRIVATE_NETWORKS"
        )
    return found[0][4][:2]


def url_check(url: str) -> None:
    """Raises ``RefusedUrl`` for a URL no delivery may go to, as far as can be told now: a name that
    does not resolve (yet) passes, and is checked again when sending."""
    parts, port = _parts(url)
    try:
        _address(parts.hostname, port)
    except OSError:
        pass


def post(url: str, body: bytes, headers: dict[str, str]) -> Response:
    """POSTs ``body`` and reads at most ``MAX_RESPONSE_BYTES`` of the answer within ``TOTAL_TIMEOUT``
    seconds. Raises ``RefusedUrl`` for anything but an http(s) URL with a host, or one whose host has
    an address that is not public (nor allowed), ``OSError`` (timeouts and names that do not resolve
    included) and ``http.client.HTTPException`` for a failed exchange."""
    parts, port = _parts(url)
    address = _address(parts.hostname, port)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    deadline = time.monotonic() + TOTAL_TIMEOUT
    connection = connection_class(parts.hostname, port, timeout=CONNECT_TIMEOUT)
    # Connect to the address checked; TLS still verifies the certificate against the host's name.
    connection._create_connection = lambda _, timeout, source: socket.create_connection(address, timeout, source)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request(
            "POST",
            target,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": "telemetry-alerts", **headers},
        )
        connection.sock.settimeout(max(0.1, deadline - time.monotonic()))
        answer = connection.getresponse()
        received = b""
        while len(received) < MAX_RESPONSE_BYTES:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the answer took longer than {TOTAL_TIMEOUT:g} s")
            chunk = answer.read1(MAX_RESPONSE_BYTES - len(received))
            if not chunk:
                break
            received += chunk
        return Response(answer.status, received)
    finally:
        connection.close()

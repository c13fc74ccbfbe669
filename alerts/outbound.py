"""Outbound HTTP for alert deliveries: http(s) only, no redirects, bounded in time and in what is read."""

import http.client
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

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


def post(url: str, body: bytes, headers: dict[str, str]) -> Response:
    """POSTs ``body`` and reads at most ``MAX_RESPONSE_BYTES`` of the answer within ``TOTAL_TIMEOUT``
    seconds. Raises ``RefusedUrl`` for anything but an http(s) URL with a host, ``OSError`` (timeouts
    included) and ``http.client.HTTPException`` for a failed exchange."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedUrl(f"only http and https URLs are allowed, not {url[:100]!r}")
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    deadline = time.monotonic() + TOTAL_TIMEOUT
    connection = connection_class(parts.hostname, parts.port, timeout=CONNECT_TIMEOUT)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body=body, headers={
            "Content-Type": "application/json", "User-Agent": "telemetry-alerts", **headers})
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

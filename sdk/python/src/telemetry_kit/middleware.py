"""The framework-free half of the request middleware (``telemetry_kit.django``, ``telemetry_kit.asgi``):
which requests are recorded, and the ``http_request`` event each becomes."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

from telemetry_kit.client import Client

EVENT_TYPE = "http_request"
CATEGORY = "http"
# Where Malti's users put a consumer's id (docs/protocols.md#malti); the first header present wins.
DEFAULT_CONSUMER_HEADERS = ("x-consumer-id", "x-user-id", "consumer-id", "user-id")
ANONYMOUS = "anonymous"
# The endpoint of a request no route matched: the raw path would let every scanner's guess become a
# route of its own.
UNMATCHED = "<unmatched>"
# Clean mode leaves out what bots and scanners cause rather than users: 401s and 404s.
CLEAN_MODE_SKIPS = frozenset({401, 404})
MAX_CONSUMER_CHARS = 200


class RequestRecorder:
    """Turns a finished request into an ``http_request`` event on ``client`` (one made from
    ``client_settings`` and the ``TK_*`` environment when not given). ``node`` defaults to ``TK_NODE``,
    else the host's name; ``context``, when given, is sent with every event."""

    def __init__(
        self,
        client: Client | None = None,
        *,
        consumer_headers: Iterable[str] = DEFAULT_CONSUMER_HEADERS,
        clean_mode: bool = True,
        node: str | None = None,
        context: str | None = None,
        **client_settings,
    ):
        if client is not None and client_settings:
            raise TypeError(f"give either a client or its settings, not both: {sorted(client_settings)}")
        self.client = Client(**client_settings) if client is None else client
        self.consumer_headers = tuple(name.lower() for name in consumer_headers)
        self.clean_mode = clean_mode
        self.node = node or os.environ.get("TK_NODE") or socket.gethostname()
        self.context = context

    @property
    def enabled(self) -> bool:
        return self.client.enabled

    def record(
        self,
        *,
        method: str,
        endpoint: str | None,
        status: int,
        milliseconds: float,
        consumer: str | None,
        context: str | None = None,
    ) -> str | None:
        """Tracks one request unless clean mode leaves it out; returns the event's id, or None."""
        if self.clean_mode and status in CLEAN_MODE_SKIPS:
            return None
        data = {
            "method": method,
            "endpoint": endpoint or UNMATCHED,
            "status": status,
            "response_time": round(milliseconds, 3),
            "consumer": str(consumer)[:MAX_CONSUMER_CHARS] if consumer else ANONYMOUS,
            "node": self.node,
        }
        context = context or self.context
        if context:
            data["context"] = str(context)
        return self.client.track(EVENT_TYPE, data, category=CATEGORY)

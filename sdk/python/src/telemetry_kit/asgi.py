"""ASGI middleware for Starlette and FastAPI apps: one ``http_request`` event for each HTTP request.

    app.add_middleware(TelemetryMiddleware, service_name="shop-api")   # TK_* from the environment

The endpoint is the matched route's pattern (``/items/{item_id}``, mounts included), never the raw path.
"""

from __future__ import annotations

import logging
import time

from starlette.routing import Mount

from telemetry_kit.client import Client
from telemetry_kit.middleware import RequestRecorder

logger = logging.getLogger("telemetry_kit")
_MAX_CACHED_MOUNTS = 1024


class TelemetryMiddleware:
    """Takes ``client`` (a ``Client`` or ``AsyncClient``) or the settings to make one, and the options of
    ``RequestRecorder``: ``consumer_headers``, ``clean_mode``, ``node``, ``context``. A handler may set
    ``request.state.telemetry_consumer`` or ``request.state.telemetry_context`` for its request."""

    def __init__(self, app, client: Client | None = None, **options):
        self.app = app
        self.recorder = RequestRecorder(client, **options)
        self._consumer_headers = tuple(name.encode("latin-1") for name in self.recorder.consumer_headers)
        self._mount_patterns: dict[str, str | None] = {}
        self._endpoint_patterns: dict | None = None  # for Starlette before 1.7, which names no route

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.recorder.enabled:
            await self.app(scope, receive, send)
            return
        # The request path's whole cost: a closure, two clock readings, a look at the headers and the
        # matched route, and track(), which only encodes the event and appends it to the sender's buffer.
        status = 500  # what the client gets when the app raises before it answers
        routes_owner = scope.get("app") or self.app  # the routers below overwrite scope["app"]

        async def send_noting_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            milliseconds = (time.perf_counter() - started) * 1000
            try:
                state = scope.get("state") or {}
                self.recorder.record(
                    method=scope["method"],
                    endpoint=self._endpoint(scope, routes_owner),
                    status=status,
                    milliseconds=milliseconds,
                    consumer=state.get("telemetry_consumer") or self._header_consumer(scope),
                    context=state.get("telemetry_context"),
                )
            except Exception:
                logger.exception("telemetry-kit: cannot record a request")

    def _header_consumer(self, scope) -> str | None:
        found = {}
        for name, value in scope["headers"]:
            if name in self._consumer_headers and name not in found:
                found[name] = value
        for name in self._consumer_headers:
            if name in found:
                return found[name].decode("latin-1")
        return None

    def _endpoint(self, scope, routes_owner) -> str | None:
        """The pattern of the route that answered, with the patterns of the mounts it sits in."""
        route = scope.get("route")
        if route is None:
            return self._endpoint_pattern(scope.get("endpoint"), routes_owner)
        path_format = getattr(route, "path_format", None)
        if path_format is None:
            return None
        root_path, app_root_path = scope.get("root_path", ""), scope.get("app_root_path")
        if app_root_path is None or not root_path.startswith(app_root_path) or root_path == app_root_path:
            return path_format  # no mount on the way
        mounts = self._mount_pattern(getattr(routes_owner, "routes", ()), root_path[len(app_root_path) :])
        if mounts is None:
            return path_format
        if isinstance(route, Mount):  # an app that is not a router (static files): its mount is in root_path
            return mounts + "/{path}"
        return mounts + path_format

    def _mount_pattern(self, routes, prefix: str) -> str | None:
        if prefix not in self._mount_patterns:
            if len(self._mount_patterns) >= _MAX_CACHED_MOUNTS:
                self._mount_patterns.clear()
            self._mount_patterns[prefix] = _mount_pattern_find(routes, prefix)
        return self._mount_patterns[prefix]

    def _endpoint_pattern(self, endpoint, routes_owner) -> str | None:
        """The pattern of the one route that ``endpoint`` answers; None for a handler of several routes."""
        if endpoint is None:
            return None
        if self._endpoint_patterns is None:
            self._endpoint_patterns = {}
            _endpoint_patterns_collect(getattr(routes_owner, "routes", ()), "", self._endpoint_patterns)
        return self._endpoint_patterns.get(endpoint)


def _endpoint_patterns_collect(routes, prefix: str, found: dict) -> None:
    for route in routes:
        if isinstance(route, Mount) and route.routes:
            _endpoint_patterns_collect(route.routes, prefix + route.path_format[: -len("/{path}")], found)
            continue
        endpoint = route.app if isinstance(route, Mount) else getattr(route, "endpoint", None)
        path_format = getattr(route, "path_format", None)
        if endpoint is None or path_format is None:
            continue
        try:
            found[endpoint] = None if endpoint in found else prefix + path_format
        except TypeError:  # an endpoint that cannot be a key
            continue


def _mount_pattern_find(routes, prefix: str) -> str | None:
    """``/tenants/{tenant}/v1`` for ``/tenants/acme/v1``, following mounts within mounts."""
    for route in routes:
        if not isinstance(route, Mount):
            continue
        match = route.path_regex.match(prefix + "/")
        if match is None:
            continue
        head = route.path_format[: -len("/{path}")]
        rest = match.group("path").rstrip("/")
        if not rest:
            return head
        inner = _mount_pattern_find(route.routes, "/" + rest)
        return None if inner is None else head + inner
    return None

"""Django middleware: one ``http_request`` event for each request, sync or async.

    MIDDLEWARE = ["telemetry_kit.django.TelemetryMiddleware", ...]   # first, to time the others too
    TELEMETRY_KIT = {"service_name": "shop"}                          # optional; TK_* from the environment

``TELEMETRY_KIT`` takes any ``Client`` setting, or ``"client"``: a client of your own, and the options of
``RequestRecorder``: ``consumer_headers``, ``clean_mode``, ``node``, ``context``. The endpoint is the
resolved URL pattern (``/items/<int:item_id>``), never the raw path.
"""

from __future__ import annotations

import logging
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed

from telemetry_kit.middleware import RequestRecorder

logger = logging.getLogger("telemetry_kit")


class TelemetryMiddleware:
    """A view may set ``request.telemetry_consumer`` or ``request.telemetry_context`` for its request."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        options = dict(getattr(settings, "TELEMETRY_KIT", None) or {})
        self.recorder = RequestRecorder(options.pop("client", None), **options)
        if not self.recorder.enabled:  # do-not-track or not configured: Django leaves the middleware out
            raise MiddlewareNotUsed("telemetry-kit sends nothing")
        self.get_response = get_response
        self._consumer_keys = tuple("HTTP_" + name.upper().replace("-", "_") for name in self.recorder.consumer_headers)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        except Exception:
            self._record(request, 500, started)
            raise
        self._record(request, response.status_code, started)
        return response

    async def _acall(self, request):
        started = time.perf_counter()
        try:
            response = await self.get_response(request)
        except Exception:
            self._record(request, 500, started)
            raise
        self._record(request, response.status_code, started)
        return response

    def _record(self, request, status: int, started: float) -> None:
        # On the request path: reads of what Django has already parsed and track(), which only encodes
        # the event and appends it to the sender thread's buffer.
        milliseconds = (time.perf_counter() - started) * 1000
        try:
            match = request.resolver_match
            endpoint = None if match is None else "/" + match.route.lstrip("^")
            consumer = getattr(request, "telemetry_consumer", None)
            if not consumer:
                meta = request.META
                consumer = next((meta[key] for key in self._consumer_keys if meta.get(key)), None)
            self.recorder.record(
                method=request.method,
                endpoint=endpoint,
                status=status,
                milliseconds=milliseconds,
                consumer=consumer,
                context=getattr(request, "telemetry_context", None),
            )
        except Exception:
            logger.exception("telemetry-kit: cannot record a request")

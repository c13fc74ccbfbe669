"""WSGI entry point: ``telemetry.wsgi:application``.

Two Django handlers share the URLs, the database connections and everything else: the machine
routes (settings.MACHINE_PATHS: ingest, health, readiness, metrics) go through the short
middleware chain of settings.MACHINE_MIDDLEWARE, every other request through settings.MIDDLEWARE.
The signed ingest route, by far the busiest, takes a shorter way to the same view and middleware
(``_DirectRoute``).
"""

import gc
import os

import django
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIHandler, get_path_info

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telemetry.settings")
django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402  (after setup)
from django.core.signals import request_finished, request_started  # noqa: E402
from django.urls import URLPattern, get_resolver  # noqa: E402
from django.utils.log import log_response  # noqa: E402

from ingest.urls import urlpatterns as _ingest_urlpatterns  # noqa: E402


def _handler_with(middleware: list[str], handler_class=WSGIHandler, *args) -> WSGIHandler:
    # A handler reads settings.MIDDLEWARE once, when it is built; swap it for that moment only.
    # This runs at import, before any request is served.
    full = settings.MIDDLEWARE
    settings.MIDDLEWARE = middleware
    try:
        return handler_class(*args)
    finally:
        settings.MIDDLEWARE = full


class _DirectRoute(WSGIHandler):
    """One route's requests passed straight to its view, through the machine middleware (metrics,
    access log, Clacks, CORS, outages as 503, security headers) and Django's handling of errors
    (``handler500``, ``got_request_exception``, the ``django.request`` log), as any other.

    What it leaves out is the per-request work of Django's handler that does nothing for this
    route (benchmarks/README.md): matching the path against the URL patterns before it (the route's
    own pattern is tried alone), the URLconf and script prefix bookkeeping, and the response's
    closing machinery. The request signals are sent as Django's handler sends them, so their
    receivers (closing broken or obsolete database connections among them) run as on any route,
    and a test client can leave out the connection closing as it does for every other route. The
    route's answers are never streamed and its requests carry no files, so nothing else needs
    closing.
    """

    def __init__(self, pattern: URLPattern):
        super().__init__()
        if self._view_middleware or self._template_response_middleware:
            raise ImproperlyConfigured(
                "The direct ingest route calls its view without view or template-response middleware"
            )
        self._pattern = pattern

    def match(self, environ):
        # The path as Django reads it (UTF-8); it starts with a slash, URL patterns do not.
        return self._pattern.resolve(get_path_info(environ)[1:])

    def serve(self, environ, start_response, match) -> list[bytes]:
        request_started.send(sender=self.__class__, environ=environ)
        request = self.request_class(environ)
        request.resolver_match = match
        response = self._middleware_chain(request)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        start_response(
            f"{response.status_code} {response.reason_phrase}",
            [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())],
        )
        body = response.content  # the route never streams
        request_finished.send(sender=self.__class__)
        return [body]

    def _get_response(self, request):
        match = request.resolver_match
        try:
            response = match.func(request, *match.args, **match.kwargs)
            if callable(getattr(response, "render", None)):
                response = response.render()  # DRF's own answers (its errors) are rendered on the way out
            return response
        except Exception as exc:
            response = self.process_exception_by_middleware(exc, request)
            if response is None:
                raise
            return response


_web = WSGIHandler()
_machine = _handler_with(settings.MACHINE_MIDDLEWARE)
_machine_paths = tuple(settings.MACHINE_PATHS)
_ingest = _handler_with(
    settings.MACHINE_MIDDLEWARE, _DirectRoute, next(p for p in _ingest_urlpatterns if p.name == "ingest")
)


def application(environ, start_response):
    """Dispatches by path, and answers a fully built response as one list item.

    Django returns the response object itself as the iterable, which a server must iterate chunk
    by chunk through Python; a list lets granian send the body in one write. Streaming and file
    responses are passed through as they are.
    """
    if environ.get("PATH_INFO", "").startswith(_machine_paths):
        match = _ingest.match(environ)
        if match is not None:
            return _ingest.serve(environ, start_response, match)
        handler = _machine
    else:
        handler = _web
    response = handler(environ, start_response)
    if getattr(response, "streaming", True):
        return response
    try:
        return [response.content]
    finally:
        response.close()


# Django imports the URLconf, and with it every view module, on the first request, which then takes
# a hundred times longer than the next. Import it now, before any client waits, and before the
# freeze below, which then covers those modules too.
get_resolver().url_patterns  # noqa: B018 (reading it is what imports the views)

# Everything loaded so far lives as long as the process: leave it out of the garbage collector's
# full passes, which otherwise walk it all and pause every request thread meanwhile.
gc.freeze()

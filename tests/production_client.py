"""Django's test client, with the machine routes served by ``telemetry.wsgi.application``.

The web server calls that application, not Django's handler: it routes the machine paths through
their own middleware chain and the signed ingest route straight to its view. Tests of those routes
go the same way. As Django's own test handler does, the request signals are sent without
``close_old_connections``, which would end the test's transaction.
"""

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.http import HttpResponse
from django.test.client import ClientHandler


class ProductionHandler(ClientHandler):
    def __call__(self, environ):
        # A test of another app (the SDK's middleware) brings URLs of its own: Django's handler serves it.
        if settings.ROOT_URLCONF != "telemetry.urls" or not environ["PATH_INFO"].startswith(
            tuple(settings.MACHINE_PATHS)
        ):
            return super().__call__(environ)
        from telemetry.wsgi import application  # imported once the tests' settings are in place

        answer = {}

        def start_response(status, headers, exc_info=None):
            answer["status"], answer["headers"] = status, headers

        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            chunks = application(environ, start_response)
            try:
                content = b"".join(chunks)
            finally:
                getattr(chunks, "close", lambda: None)()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
        code, _, reason = answer["status"].partition(" ")
        response = HttpResponse(content, status=int(code), reason=reason)
        del response["Content-Type"]
        for name, value in answer["headers"]:
            if name.lower() == "set-cookie":
                response.cookies.load(value)
            else:
                response[name] = value
        response.wsgi_request = None  # the request object stays inside the application
        return response

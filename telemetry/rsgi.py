"""RSGI entry point: ``telemetry.rsgi:application``, the WSGI application behind the gateway that
reads bodies on the event loop (telemetry/gateway.py)."""

from django.conf import settings

from telemetry.gateway import Gateway, Limits
from telemetry.wsgi import application as wsgi_application

application = Gateway(
    wsgi_application,
    threads=settings.SERVER_THREADS,
    limits=Limits(
        max_body_size=settings.SERVER_MAX_BODY_SIZE,
        body_timeout=settings.SERVER_BODY_TIMEOUT,
        send_timeout=settings.SERVER_SEND_TIMEOUT,
        max_requests_per_address=settings.SERVER_MAX_REQUESTS_PER_ADDRESS,
        # Behind a trusted proxy every client shares its address: the proxy caps them (deploy/nginx).
        uncapped=tuple(settings.SERVER_TRUSTED_PROXIES),
        streamed_prefixes=("/v1/streams/",),
        stream_threads=settings.SERVER_STREAM_THREADS,
    ),
)

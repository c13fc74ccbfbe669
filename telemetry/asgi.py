"""ASGI entry point of the WebSocket listener: ``telemetry.asgi:application``.

``python -m telemetry.server`` serves it on APP_SERVER__WEBSOCKET_PORT beside the WSGI application:
WebSockets need ASGI, while every HTTP route stays on WSGI, which answers ingest requests at
nearly twice the rate an ASGI-to-WSGI bridge does (benchmarks/README.md). Behind nginx both share
one address (deploy/nginx/telemetry.conf sends upgrades here).
"""

import json
import os
import re

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telemetry.settings")
django.setup(set_prefix=False)

from ingest.sockets import stream_socket  # noqa: E402  (after setup)

_STREAM_PATH = re.compile(r"^/v1/streams/([^/]+)/([^/]+)/?$")


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _not_here(send) -> None:
    body = json.dumps({"error": {"code": "websocket_only", "message": "This listener serves WebSocket event "
                                 "streams at /v1/streams/{org_id}/{app_id}; HTTP is served on the main port."}})
    await send({"type": "http.response.start", "status": 426, "headers": [
        (b"content-type", b"application/json"), (b"upgrade", b"websocket")]})
    await send({"type": "http.response.body", "body": body.encode()})


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "websocket":
        match = _STREAM_PATH.match(scope["path"])
        if match is None:
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        await stream_socket(scope, receive, send, org_id=match[1], app_id=match[2])
    else:
        await _not_here(send)

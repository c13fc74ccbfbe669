"""Event streams over WebSocket (seed 002), served by the server's WebSocket listener (ASGI).

Each text or binary message is one event; an empty binary message hangs up. Messages that arrive
back to back are stored together, and after each group the server sends the cumulative count
stored, as text. The database work runs on a small thread pool: the ORM is synchronous.

The token comes from ``Authorization: Bearer``, ``X-API-Key`` or, since browsers cannot set
headers on a WebSocket, the ``token`` query parameter. A connection refused before it is accepted
(bad token) gets HTTP 403 from the server; one refused after (rate limit) a close code and reason.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from urllib.parse import parse_qs

from django.conf import settings
from django.db import close_old_connections

from ingest import streams
from ingest.errors import ApiError
from ingest.intake import bearer_token, request_admit_unsigned, token_authenticate
from ingest.models import Stream

GROUP_MESSAGES = 500  # most messages stored together
# Close codes: 1000 normal, 1007 data not storable, 1008 policy (quota, token), 1009 too big,
# 1013 try again later.
_CLOSE = {"rate_limit_exceeded": 1013, "quota_exceeded": 1008, "unauthorized": 1008, "payload_too_large": 1009,
          "invalid_data": 1007}
_HANG_UP = object()
_GONE = object()
_TOO_BIG = object()

_database = ThreadPoolExecutor(max_workers=settings.SERVER_THREADS, thread_name_prefix="streams-db")


def _in_thread(function, kwargs):
    close_old_connections()  # as Django does around each request: drop connections past their age or broken
    try:
        return function(**kwargs)
    finally:
        close_old_connections()


async def _sync(function, **kwargs):
    return await asyncio.get_running_loop().run_in_executor(_database, partial(_in_thread, function, kwargs))


def _token(headers: dict[str, str], query_string: bytes) -> str | None:
    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    return bearer_token(meta, "HTTP_X_API_KEY") or (parse_qs(query_string.decode("latin-1")).get("token") or [None])[0]


async def _read_messages(receive, queue: asyncio.Queue) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            await queue.put(_GONE)
            return
        payload = message.get("bytes")
        if payload is None:
            payload = message.get("text") or ""
        elif payload == b"":  # seed 002: an empty binary message asks the server to hang up
            await queue.put(_HANG_UP)
            return
        if len(payload) > settings.STREAM_MAX_VALUE_SIZE:
            await queue.put(_TOO_BIG)
            return
        await queue.put(payload)


async def stream_socket(scope, receive, send, *, org_id: str, app_id: str) -> None:
    """Serves one WebSocket event stream of application ``app_id`` until the client hangs up."""
    if (await receive())["type"] != "websocket.connect":
        return
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
    token = _token(headers, scope.get("query_string", b""))
    try:
        target = await _sync(token_authenticate, token=token, org_public_id=org_id, app_public_id=app_id)
    except ApiError:
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    try:
        await _sync(request_admit_unsigned, target=target, events=None)
    except ApiError as refused:
        await send({"type": "websocket.close", "code": _CLOSE.get(refused.code, 1008),
                    "reason": f"{refused.code}: {refused.message}"[:120]})
        return
    stream = await _sync(streams.stream_open, target=target, transport=Stream.Transport.WEBSOCKET,
                         headers=streams.headers_kept(headers.items()))
    queue: asyncio.Queue = asyncio.Queue(maxsize=GROUP_MESSAGES)
    reader = asyncio.create_task(_read_messages(receive, queue))
    ending, close = Stream.Ending.FAILED, None
    try:
        ending, close = await _store_messages(queue, send, stream, token=token, org_id=org_id, app_id=app_id)
    finally:
        reader.cancel()
        # Recorded before the client hears the close, so a client that reads the stream next sees it ended.
        await _sync(streams.stream_close, stream=stream, ending=ending)
    if close is not None:
        await send({"type": "websocket.close", "code": close[0], "reason": close[1]})


async def _store_messages(queue: asyncio.Queue, send, stream: Stream, **credentials
                          ) -> tuple[str, tuple[int, str] | None]:
    """Stores the messages as they come, answering each group with the count so far, until the
    client hangs up or goes away or the stream must stop; returns how it ended and the close to send."""
    stored = 0
    while True:
        group, last = [await queue.get()], None
        while len(group) < GROUP_MESSAGES and not queue.empty():
            group.append(queue.get_nowait())
        if group[-1] in (_HANG_UP, _GONE, _TOO_BIG):
            last = group.pop()
        stop = None
        if group:
            values = [streams.Message.of(payload) for payload in group]
            try:
                stored += await _sync(streams.stream_values_store, stream=stream,
                                      values=[(m.raw, m.fields) for m in values], **credentials)
            except streams.StreamStopped as stopped:
                stored += stopped.stored
                stop = stopped.code
            await send({"type": "websocket.send", "text": str(stored)})
        if last is _TOO_BIG:
            stop = "payload_too_large"
        if stop is not None:
            return stop, (_CLOSE.get(stop, 1008), stop)
        if last is _HANG_UP:
            return Stream.Ending.COMPLETED, (1000, "")
        if last is _GONE:
            return Stream.Ending.DISCONNECTED, None

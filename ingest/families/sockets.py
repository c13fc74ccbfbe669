"""Event streams over WebSocket (docs/protocols.md#event-streams), served by the server's WebSocket listener
(``python -m telemetry.server --websockets``, on APP_SERVER__WEBSOCKET_PORT).

Each text or binary message is one event; an empty binary message hangs up. Messages that arrive
back to back are stored together, and after each group the server sends the cumulative count
stored, as text. The database work runs on a small thread pool: the ORM is synchronous.

The token comes from ``Authorization: Bearer``, ``X-API-Key`` or, since browsers cannot set
headers on a WebSocket, the ``token`` query parameter. A bad token is refused with HTTP 403 during
the handshake; later refusals (rate limit, too many connections) close the connection with a code
and a reason, which browsers can read.

A client costs no more than it sends. The ``websockets`` library (not granian, which assembles a
message of up to 64 MiB before anyone can look at it) refuses a message over
STREAM_MAX_VALUE_SIZE from its frame headers, before reading it (close 1009), and stops reading a
client whose frames wait unread. Messages wait to be stored up to ``GROUP_BYTES`` and
``GROUP_MESSAGES``, and are checked without building their objects. A token holds at most
STREAM_MAX_CONNECTIONS_PER_TOKEN streams, HTTP ones included (``streams.StreamSlot``: counted in
Redis under leases that a process which dies stops renewing); a connection silent for
STREAM_IDLE_TIMEOUT seconds is closed (1001); and each group but the first (which the
connection's own admission covers) is a request against the application's rate limit.
"""

import asyncio
import json
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.db import close_old_connections
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from accounts.ingest_targets import IngestTarget
from accounts.services import credential_touch
from ingest.access.tokens import bearer_token, request_admit_unsigned, token_authenticate
from ingest.errors import ApiError
from ingest.families import streams
from ingest.models import Stream

GROUP_MESSAGES = 500  # most messages stored together
GROUP_BYTES = 1024 * 1024  # most bytes of messages waiting to be stored (one message may go past)
QUEUED_FRAMES = 4  # frames websockets holds unread before it stops reading the socket
OPEN_TIMEOUT_SECONDS = 10  # for the handshake: a client that trickles it holds nothing for long
# Close codes: 1000 normal, 1001 going away (idle), 1007 data not storable, 1008 policy (quota,
# token), 1009 too big, 1013 try again later.
_CLOSE = {
    "rate_limit_exceeded": 1013,
    "quota_exceeded": 1008,
    "unauthorized": 1008,
    "payload_too_large": 1009,
    "invalid_data": 1007,
}
_PATH = re.compile(r"^/v1/streams/([^/]+)/([^/]+)/?$")
_HANG_UP = "hang_up"
_GONE = "gone"
_TOO_BIG = "too_big"

_database = ThreadPoolExecutor(max_workers=settings.SERVER_THREADS, thread_name_prefix="streams-db")


def _in_thread(function, kwargs):
    close_old_connections()  # as Django does around each request: drop connections past their age or broken
    try:
        return function(**kwargs)
    finally:
        close_old_connections()


async def _sync(function, **kwargs):
    return await asyncio.get_running_loop().run_in_executor(_database, partial(_in_thread, function, kwargs))


@dataclass(frozen=True)
class _Opening:
    """What the handshake found: whose stream this is, and with what token and headers."""

    target: IngestTarget
    credential_id: int
    token: str
    org_id: str
    app_id: str
    headers: list[tuple[str, str]]


def _json(status: int, code: str, message: str, **headers: str) -> Response:
    return Response(
        status,
        "",
        Headers({"Content-Type": "application/json", "Connection": "close", **headers}),
        json.dumps({"error": {"code": code, "message": message}}).encode(),
    )


async def _handshake(connection: ServerConnection, request: Request) -> Response | None:
    """Answers requests that are not a stream's WebSocket, and a bad token, before the handshake."""
    url = urlsplit(request.path)
    match = _PATH.match(url.path)
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return _json(
            426,
            "websocket_only",
            "This listener serves WebSocket event streams at "
            "/v1/streams/{org_id}/{app_id}; HTTP is served on the main port.",
            Upgrade="websocket",
        )
    if match is None:
        return _json(404, "not_found", "WebSocket event streams are at /v1/streams/{org_id}/{app_id}")
    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in request.headers.raw_items()}
    token = bearer_token(meta, "HTTP_X_API_KEY") or (parse_qs(url.query).get("token") or [None])[0]
    try:
        caller = await _sync(token_authenticate, token=token, org_public_id=match[1], app_public_id=match[2])
    except ApiError as refused:
        return _json(403, refused.code, refused.message)
    connection.opening = _Opening(
        target=caller.target,
        credential_id=caller.credential_id,
        token=token,
        org_id=match[1],
        app_id=match[2],
        headers=list(request.headers.raw_items()),
    )
    return None


async def stream_socket(connection: ServerConnection) -> None:
    """Serves one WebSocket event stream, opened by ``_handshake``, until it ends."""
    opening: _Opening = connection.opening
    slot = streams.StreamSlot(opening.token)
    try:
        if not await _sync(slot.claim):
            await connection.close(1013, "too_many_connections")
            return
        try:
            await _sync(request_admit_unsigned, target=opening.target, events=None)
        except ApiError as refused:
            await connection.close(_CLOSE.get(refused.code, 1008), f"{refused.code}: {refused.message}"[:120])
            return
        await _sync(credential_touch, credential_id=opening.credential_id)
        stream = await _sync(
            streams.stream_open,
            target=opening.target,
            transport=Stream.Transport.WEBSOCKET,
            headers=streams.headers_kept(opening.headers),
        )
        inbox = _Inbox()
        reader = asyncio.create_task(_receive(connection, inbox))
        ending, close = Stream.Ending.FAILED, None
        try:
            ending, close = await _store_messages(connection, inbox, stream, opening, slot)
        finally:
            reader.cancel()
            # The slot is freed, and then the stream recorded ended, before the client hears the
            # close: a client that finds the stream ended may open another at once.
            await _sync(slot.release)
            await _sync(streams.stream_close, stream=stream, ending=ending)
        if close is not None:
            await connection.close(*close)
    finally:
        await _sync(slot.release)  # again when it ended before its stream opened: releasing is idempotent


class _Inbox:
    """Messages received and not yet stored. The reader waits while they hold ``GROUP_BYTES`` or
    ``GROUP_MESSAGES``; websockets then stops reading the socket, so a client that sends faster
    than its messages are stored is held back rather than buffered."""

    def __init__(self):
        self.messages: list[bytes | str] = []
        self.size = 0
        self.last: str | None = None  # how the messages end: _HANG_UP, _GONE or _TOO_BIG
        self.changed = asyncio.Condition()

    async def put(self, message: bytes | str) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.size < GROUP_BYTES and len(self.messages) < GROUP_MESSAGES)
            self.messages.append(message)
            self.size += len(message)
            self.changed.notify_all()

    async def end(self, last: str) -> None:
        async with self.changed:
            self.last = last
            self.changed.notify_all()

    async def take(self, timeout: float) -> tuple[list[bytes | str], str | None]:
        """Everything received, once there is something (``TimeoutError`` after ``timeout`` seconds
        without), and how the messages end if they have."""
        async with self.changed:
            async with asyncio.timeout(timeout):
                await self.changed.wait_for(lambda: self.messages or self.last is not None)
            group, self.messages, self.size = self.messages, [], 0
            self.changed.notify_all()
            return group, self.last


async def _receive(connection: ServerConnection, inbox: _Inbox) -> None:
    try:
        while True:
            message = await connection.recv()
            if message == b"":  # an empty binary message asks the server to hang up
                await inbox.end(_HANG_UP)
                return
            await inbox.put(message)
    except ConnectionClosed as closed:
        # websockets closes with 1009 itself when a frame's header announces too much.
        too_big = closed.sent is not None and closed.sent.code == 1009
        await inbox.end(_TOO_BIG if too_big else _GONE)


def _group_store(*, group: list[bytes | str], **arguments) -> int:
    return streams.stream_values_store(
        values=[(message.raw, message.fields) for message in map(streams.Message.of, group)], **arguments
    )


async def _store_messages(
    connection: ServerConnection, inbox: _Inbox, stream: Stream, opening: _Opening, slot: streams.StreamSlot
) -> tuple[str, tuple[int, str] | None]:
    """Stores the messages as they come, answering each group with the count so far, until the
    client hangs up, goes away or goes quiet, or the stream must stop; returns how it ended and the
    close to send."""
    stored, admitted = 0, True  # the connection's admission covers its first group
    while True:
        try:
            group, last = await inbox.take(settings.STREAM_IDLE_TIMEOUT)
        except TimeoutError:
            return Stream.Ending.IDLE, (1001, "idle_timeout")
        stop = None
        if group:
            if slot.due() and not await _sync(slot.claim):
                return Stream.Ending.TOO_MANY, (1013, "too_many_connections")
            if not admitted:
                try:
                    await _sync(request_admit_unsigned, target=opening.target, events=None)
                except ApiError as refused:
                    return refused.code, (_CLOSE.get(refused.code, 1008), f"{refused.code}: {refused.message}"[:120])
            admitted = False
            try:
                stored += await _sync(
                    _group_store,
                    group=group,
                    stream=stream,
                    token=opening.token,
                    org_id=opening.org_id,
                    app_id=opening.app_id,
                )
            except streams.StreamStopped as stopped:
                stored += stopped.stored
                stop = stopped.code
            try:
                await connection.send(str(stored))
            except ConnectionClosed:
                return Stream.Ending.DISCONNECTED, None
        if last == _TOO_BIG:
            return "payload_too_large", None  # websockets has sent the close (1009) already
        if stop is not None:
            return stop, (_CLOSE.get(stop, 1008), stop)
        if last == _HANG_UP:
            return Stream.Ending.COMPLETED, (1000, "")
        if last == _GONE:
            return Stream.Ending.DISCONNECTED, None


async def listen(*, host: str, port: int) -> None:
    """Serves WebSocket streams until SIGTERM or SIGINT; then open streams are closed (1001) and
    recorded as ended."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve(
        stream_socket,
        host,
        port,
        process_request=_handshake,
        server_header=None,
        max_size=settings.STREAM_MAX_VALUE_SIZE,
        max_queue=QUEUED_FRAMES,
        compression=None,
        open_timeout=OPEN_TIMEOUT_SECONDS,
    ):
        await stop.wait()

"""The web server's front: granian calls ``Gateway`` (RSGI) on its event loop, and Django runs on a
small pool of threads behind it.

Why not granian's WSGI interface: there a request is handed to a thread as soon as its headers are
in, and the thread then blocks reading the body. A few dozen clients sending a body slowly (or
announcing a length and going quiet) held every thread, and with them /health, the admin and
ingest. Here the event loop reads each body, with a deadline and a size cap, before any thread
sees the request; a thread only ever runs a request whose body is complete, and the answer goes
back to granian whole: its bytes, or the file granian sends from disk (or, past ``STREAM_BUFFER``
bytes of a streaming answer, chunk by chunk with a deadline on each).

Event streams (``Limits.streamed_prefixes``) are read as they arrive instead, by threads of a pool
of their own fed by the loop (``_PumpedBody``): a slow stream holds one of those, never a request
thread. Clients are also capped per address: requests in progress (being read, waiting for a
thread or running) beyond ``max_requests_per_address`` are answered 429 at once. Headers are
granian's to read, within its ``header_read_timeout``.
"""

import asyncio
import collections
import ctypes
import io
import ipaddress
import json
import logging
import os
import queue
import sys
import threading
from dataclasses import dataclass

from granian.rsgi import ProtocolClosed, ProtocolError

logger = logging.getLogger(__name__)

# Streaming answers up to this size are collected in the thread and sent whole, so a client that
# reads slowly holds no thread; larger ones are sent as they are made.
STREAM_BUFFER = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_body_size: int
    body_timeout: float
    send_timeout: float
    max_requests_per_address: int  # 0: no cap
    uncapped: tuple = ()  # networks of trusted proxies, which cap their own clients
    # Paths whose body is read as it arrives (event streams), on threads of their own, so a slow
    # stream can hold one of those but never a request thread.
    streamed_prefixes: tuple = ()
    stream_threads: int = 8


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


_JSON = [("content-type", "application/json"), ("connection", "close")]


def _environ_key(name: str) -> str:
    if name == "content-type":
        return "CONTENT_TYPE"
    if name == "content-length":
        return "CONTENT_LENGTH"
    return "HTTP_" + name.upper().replace("-", "_")


class _Answer:
    """What the WSGI application answered: its status, headers, and body whole or file to send."""

    __slots__ = ("status", "headers", "body", "file")

    def __init__(self):
        self.status, self.headers, self.body, self.file = 500, [], b"", None

    def send(self, protocol) -> None:
        try:
            if self.file is not None:
                protocol.response_file(self.status, self.headers, self.file)
            else:
                protocol.response_bytes(self.status, self.headers, self.body)
        except ProtocolClosed:
            pass  # the client went away while its request ran

    def start_response(self, status, headers, exc_info=None):
        self.status, self.headers = int(status[:3]), headers


class _Threads:
    """Threads that run calls for the event loop. Lighter than an executor's round trip: a call's
    future is the loop's own, and the calls that finish while the loop is busy reach it with one
    wake-up between them, not one each (a tenth of a small request's CPU, benchmarks/README.md)."""

    def __init__(self, count: int, name: str):
        self._calls = queue.SimpleQueue()
        self._finished = collections.deque()
        self._lock = threading.Lock()
        self._wake_pending = False
        for number in range(count):
            threading.Thread(target=self._work, name=f"{name}_{number}", daemon=True).start()

    def run(self, loop, function, *args) -> asyncio.Future:
        future = loop.create_future()
        self._calls.put((future, function, args))
        return future

    def _work(self) -> None:
        while True:
            future, function, args = self._calls.get()
            try:
                outcome = (function(*args), None)
            except BaseException as error:  # handed to the awaiting coroutine, as an executor would
                outcome = (None, error)
            with self._lock:
                self._finished.append((future, *outcome))
                wake, self._wake_pending = not self._wake_pending, True
            if wake:
                future.get_loop().call_soon_threadsafe(self._deliver)
            # Not kept while this thread waits for its next call: a request's body and answer.
            del future, function, args, outcome

    def _deliver(self) -> None:
        with self._lock:
            finished = list(self._finished)
            self._finished.clear()
            self._wake_pending = False
        for future, result, error in finished:
            if future.cancelled():
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def _malloc_tune() -> None:
    """Bodies of large batches (up to megabytes) come and go on several threads. glibc's default
    raises its mmap threshold to the largest block freed, after which such blocks stay in each
    thread's heap when freed. A fixed threshold sends them back to the system when freed."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return  # not glibc
    mallopt(_M_TRIM_THRESHOLD, 256 * 1024)
    mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


class Gateway:
    def __init__(self, wsgi_application, *, threads: int, limits: Limits):
        _malloc_tune()
        self._wsgi = wsgi_application
        self._limits = limits
        self._pool = _Threads(threads, "request")
        self._stream_pool = _Threads(limits.stream_threads, "stream")
        self._streams = 0  # running on the stream pool; the loop's thread only
        self._in_progress: dict[str, int] = {}  # by client address; touched on the loop's thread only
        self._environ_keys: dict[str, str] = {}

    async def __rsgi__(self, scope, protocol):
        address = scope.client.rpartition(":")[0].strip("[]")
        capped = self._limits.max_requests_per_address and not self._trusted(address)
        if capped:
            count = self._in_progress.get(address, 0)
            if count >= self._limits.max_requests_per_address:
                protocol.response_bytes(
                    429,
                    [*_JSON, ("retry-after", "1")],
                    _error("too_many_requests", "Too many requests in progress from this address."),
                )
                return
            self._in_progress[address] = count + 1
        try:
            await self._serve(scope, protocol, address)
        finally:
            if capped:
                left = self._in_progress[address] - 1
                if left:
                    self._in_progress[address] = left
                else:
                    del self._in_progress[address]

    def _trusted(self, address: str) -> bool:
        if not self._limits.uncapped:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._limits.uncapped)

    async def _serve(self, scope, protocol, address: str):
        headers = scope.headers
        length = headers.get("content-length")
        if length is not None and not length.isdigit():
            protocol.response_bytes(400, _JSON, _error("bad_request", "Content-Length is not a number."))
            return
        if self._limits.streamed_prefixes and scope.path.startswith(self._limits.streamed_prefixes):
            await self._serve_streamed(scope, protocol, address)
            return
        if length is not None:
            if int(length) > self._limits.max_body_size:
                protocol.response_bytes(
                    413, _JSON, _error("payload_too_large", f"The body is over {self._limits.max_body_size} bytes.")
                )
                return
        body = b""
        if length != "0" and (length is not None or "transfer-encoding" in headers or scope.http_version == "2"):
            try:
                async with asyncio.timeout(self._limits.body_timeout):
                    # With a length within the cap, HTTP itself bounds the body: one read for it all.
                    body = await (protocol() if length is not None else self._read(protocol))
            except TimeoutError:
                protocol.response_bytes(
                    408,
                    _JSON,
                    _error("request_timeout", f"The body did not arrive within {self._limits.body_timeout} s."),
                )
                return
            except ProtocolClosed:
                return  # the client went away before sending its body: nobody to answer
            if body is None:
                protocol.response_bytes(
                    413, _JSON, _error("payload_too_large", f"The body is over {self._limits.max_body_size} bytes.")
                )
                return
        loop = asyncio.get_running_loop()
        answer = await self._pool.run(loop, self._run, self._environ(scope, address, body), protocol, loop)
        if answer is not None:
            answer.send(protocol)

    async def _serve_streamed(self, scope, protocol, address: str):
        if self._streams >= self._limits.stream_threads:
            protocol.response_bytes(
                503,
                [*_JSON, ("retry-after", "5")],
                _error("busy", "Every stream this server takes at once is open; retry later."),
            )
            return
        loop = asyncio.get_running_loop()
        body = _PumpedBody(protocol, loop, self._limits.body_timeout)
        environ = self._environ(scope, address, b"")
        environ["wsgi.input"] = body
        length = scope.headers.get("content-length")
        if length is not None:
            environ["CONTENT_LENGTH"] = length
        else:
            del environ["CONTENT_LENGTH"]
            environ["HTTP_TRANSFER_ENCODING"] = "chunked"  # a body of unknown length, as HTTP/1.1 says it
        self._streams += 1
        try:
            answer = await self._stream_pool.run(loop, self._run, environ, protocol, loop)
        finally:
            self._streams -= 1
        if answer is None:
            body.task.cancel()
            return
        # A stream stopped early (quota, revoked token) is answered once its client is done sending,
        # as clients read the answer only then; one that keeps sending gets it after the body
        # deadline or the body size limit.
        await body.drain(self._limits.max_body_size, self._limits.body_timeout)
        answer.send(protocol)

    async def _read(self, protocol) -> bytes | None:
        """The whole body, or None past the size cap."""
        chunks, size, cap = [], 0, self._limits.max_body_size
        async for chunk in protocol:
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _environ(self, scope, address: str, body: bytes) -> dict:
        server_host, _, server_port = scope.server.rpartition(":")
        environ = {
            "REQUEST_METHOD": scope.method,
            "SCRIPT_NAME": "",
            # WSGI's path is the decoded bytes as latin-1; Django turns it back into UTF-8.
            "PATH_INFO": scope.path.encode("utf-8", "surrogateescape").decode("latin-1"),
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": server_host.strip("[]"),
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": "HTTP/" + scope.http_version,
            "REMOTE_ADDR": address,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        keys = self._environ_keys
        for name, value in scope.headers.items():
            key = keys.get(name)
            if key is None:
                key = keys.setdefault(name, _environ_key(name)) if len(keys) < 512 else _environ_key(name)
            if key in environ and key.startswith("HTTP_"):
                environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
            else:
                environ[key] = value
        # The body is complete: its length is known even when it came chunked.
        environ["CONTENT_LENGTH"] = str(len(body))
        return environ

    def _run(self, environ: dict, protocol, loop) -> "_Answer | None":
        """On a pool thread: the WSGI application's answer, for the loop to send whole; or None when
        it was too large to hold and this thread has streamed it already."""
        answer = _Answer()
        try:
            result = self._wsgi(environ, answer.start_response)
        except Exception:
            logger.exception("the WSGI application failed")
            answer.status, answer.headers = 500, _JSON
            answer.body = _error("internal_error", "Internal server error")
            return answer
        if isinstance(result, list):
            answer.body = b"".join(result)
            return answer
        path = getattr(getattr(result, "file_to_stream", None), "name", None)
        if answer.status == 200 and isinstance(path, str) and os.path.isabs(path):
            # A whole file (static files): granian sends it from disk, whatever the client's pace.
            answer.file = path
            result.close()
            return answer
        try:
            chunks, size = [], 0
            iterator = iter(result)
            for chunk in iterator:
                chunks.append(chunk)
                size += len(chunk)
                if size > STREAM_BUFFER:
                    # Sent from this thread as it is made: the response may hold a database cursor,
                    # which belongs to this thread. A client that stops reading lets it go after
                    # send_timeout.
                    self._stream(protocol, loop, answer, b"".join(chunks), iterator)
                    return None
            answer.body = b"".join(chunks)
            return answer
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _stream(self, protocol, loop, answer: "_Answer", first: bytes, rest) -> None:
        timeout = self._limits.send_timeout

        async def start():
            transport = protocol.response_stream(answer.status, answer.headers)
            await transport.send_bytes(first)
            return transport

        def send(awaitable) -> bool:
            future = asyncio.run_coroutine_threadsafe(awaitable, loop)
            try:
                return future.result(timeout)
            except Exception:
                future.cancel()
                return False

        transport = send(start())
        if not transport:
            return
        for chunk in rest:
            if send(transport.send_bytes(chunk)) is False:
                return


class _PumpedBody:
    """``wsgi.input`` of a streamed route. A task on the event loop reads the body into a buffer
    (up to ``HIGH_WATER`` bytes, then it waits for the thread), each chunk within ``timeout`` of the
    last; the thread's reads take what has arrived, waiting only while nothing has. A client that
    goes quiet or away ends the body there."""

    HIGH_WATER = 256 * 1024

    def __init__(self, protocol, loop, timeout: float):
        self._chunks, self._loop, self._timeout = protocol.__aiter__(), loop, timeout
        self._ready = threading.Condition()
        self._buffer = bytearray()
        self._ended = False
        self._discard = 0  # once the application is done: bytes still to read and drop
        self._room = asyncio.Event()
        self.task = loop.create_task(self._pump())

    async def _pump(self):
        try:
            while True:
                chunk = await asyncio.wait_for(self._chunks.__anext__(), self._timeout)
                with self._ready:
                    if self._discard:
                        self._discard -= min(self._discard, len(chunk))
                        if not self._discard:
                            return
                        continue
                    self._buffer += chunk
                    self._ready.notify()
                    full = len(self._buffer) >= self.HIGH_WATER
                    if full:
                        self._room.clear()
                if full:
                    await self._room.wait()
        except (StopAsyncIteration, ProtocolClosed, ProtocolError, TimeoutError):
            pass
        finally:
            with self._ready:
                self._ended = True
                self._ready.notify()

    async def drain(self, limit: int, timeout: float) -> None:
        """On the loop, once the application is done: reads and drops what is left of the body, up
        to ``limit`` bytes and ``timeout`` seconds."""
        with self._ready:
            self._discard = max(1, limit)
            self._buffer.clear()
        self._room.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
        except TimeoutError:
            self.task.cancel()

    def _take(self, end: int) -> bytes:
        """With the lock held: the first ``end`` bytes, making room for the pump."""
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        if len(self._buffer) < self.HIGH_WATER:
            self._loop.call_soon_threadsafe(self._room.set)
        return data

    def read(self, size: int = -1) -> bytes:
        with self._ready:
            while not self._ended and (not self._buffer or size < 0):
                self._ready.wait()
            return self._take(len(self._buffer) if size < 0 else min(size, len(self._buffer)))

    def readline(self, size: int = -1) -> bytes:
        with self._ready:
            while not self._ended and b"\n" not in self._buffer and (size < 0 or len(self._buffer) < size):
                self._ready.wait()
            end = self._buffer.find(b"\n") + 1 or len(self._buffer)
            return self._take(end if size < 0 else min(size, end))

"""The client: ``track()`` from any thread, a sender thread that batches, queues and delivers."""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from telemetry_kit.config import Config
from telemetry_kit.events import (
    EventEncoder,
    machine_id,
    rfc3339,
    service_describe,
    session_id_new,
    user_id_derive,
    with_metadata,
)
from telemetry_kit.queue import OfflineQueue, Row
from telemetry_kit.retry import backoff_delay
from telemetry_kit.transport import Answer, Verdict, batch_post

logger = logging.getLogger("telemetry_kit")


@dataclass(frozen=True)
class Dropped:
    """An event that will never be delivered, and why: the server's per-event error code
    (``invalid_data``, ``over_quota``...) or the client's own (``queue_full``, ``too_large``,
    ``not_json``, ``retries_exhausted``)."""

    event_id: str | None
    reason: str
    message: str


@dataclass(frozen=True)
class Stats:
    tracked: int  # events accepted by track()
    delivered: int  # events the server stored (or already had)
    dropped: int  # events given up on, each reported once through logging and on_drop
    failed_attempts: int  # requests that will be retried (server busy or down, 5xx, bad configuration)
    pending: int  # events waiting in memory or in the offline queue


class Client:
    """Sends events to a telemetry-kit server. Every public method is thread-safe and never raises:
    problems are logged on the ``telemetry_kit`` logger (and dropped events passed to ``on_drop``).

    ``Client(service_name="my-tool")`` reads the rest from ``TK_ENDPOINT``, ``TK_ORG_ID``,
    ``TK_APP_ID``, ``TK_SECRET`` and optionally ``TK_TOKEN``; any ``Config`` field may be given here
    instead. With ``DO_NOT_TRACK=1`` in the environment the client does nothing at all: no thread,
    no file, no request.
    """

    def __init__(
        self, config: Config | None = None, *, on_drop: Callable[[list[Dropped]], None] | None = None, **settings
    ):
        self._on_drop = on_drop
        self._cond = threading.Condition()
        self._buffer: collections.deque[tuple[str, str]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._deadline = float("inf")  # monotonic; set by close() to bound the last delivery
        self._flush_requested = self._flush_done = 0
        self._counts = collections.Counter()
        self._backlog = 0  # events in the offline queue after the sender's last pass
        self._retry_at = 0.0  # wall clock; no request before it (backoff, Retry-After)
        self._failures = 0  # consecutive failed requests
        self._batch_limit = 1
        self.enabled = False
        try:
            self.config = Config.from_env(**settings) if config is None else config.replace(**settings)
            self._setup()
        except Exception:
            logger.exception("telemetry-kit: cannot set up the client; it will send nothing")
            self.enabled = False

    def _setup(self) -> None:
        config = self.config
        if config.do_not_track:
            logger.info("telemetry-kit: DO_NOT_TRACK is set; nothing will be recorded or sent")
            return
        problems = config.problems()
        if problems:
            logger.error("telemetry-kit: not sending telemetry: %s", "; ".join(problems))
            return
        queue_file = config.queue_file()
        self._encoder = EventEncoder(
            user_id=user_id_derive(machine_id(queue_file.parent), config.app_id),
            session_id=session_id_new(),
            service=service_describe(config.service_name, config.service_version),
        )
        self._queue = OfflineQueue(
            queue_file,
            max_events=config.max_queue_events,
            max_bytes=config.max_queue_bytes,
            lease_seconds=2 * config.request_timeout + 30,
        )
        self._batch_limit = config.batch_size
        self._backlog = len(self._queue)
        self.enabled = True
        _live_clients.add(self)
        with self._cond:
            self._start()  # now, so events queued by an earlier run go out without waiting for a track()

    # -- the host application's side --------------------------------------------------------------

    def track(self, event_type: str, data=None, category: str | None = None) -> str | None:
        """Records one event; returns its ``event_id``, or None when it was not recorded. Cheap: the
        event is encoded here (so later changes to ``data`` do not leak in) and handed to the sender
        thread; nothing waits for disk or network."""
        if not self.enabled:
            return None
        try:
            event_id, text = self._encoder.encode(event_type, data, category)
        except (TypeError, ValueError) as error:
            self._report([Dropped(None, "not_json", f"{event_type!r}: {error}")])
            return None
        except Exception:
            logger.exception("telemetry-kit: cannot record a %r event", event_type)
            return None
        if len(text) > self.config.max_event_bytes:
            self._report(
                [
                    Dropped(
                        event_id,
                        "too_large",
                        f"{len(text)} bytes; the limit is {self.config.max_event_bytes} (max_event_bytes)",
                    )
                ]
            )
            return None
        overflow = None
        with self._cond:
            if self._closing:
                return None
            if len(self._buffer) >= self.config.max_buffer_events:
                overflow = self._buffer.popleft()[0]
            self._buffer.append((event_id, text))
            self._counts["tracked"] += 1
            if self._thread is None:  # a forked child's first event
                self._start()
            if len(self._buffer) >= self._batch_limit:
                self._cond.notify_all()
        if overflow is not None:
            self._report(
                [
                    Dropped(
                        overflow,
                        "queue_full",
                        "the in-memory buffer is full (max_buffer_events): events come faster than they can be stored",
                    )
                ]
            )
        return event_id

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Stores what was tracked and delivers everything queued, waiting at most ``timeout`` seconds
        (None: as long as it takes). True when nothing is left to send. A backoff or ``Retry-After``
        that ends within the timeout is waited out; one that ends later makes it return False at once,
        the events staying queued."""
        if not self.enabled:
            return True
        if threading.current_thread() is self._thread:
            return False  # called from on_drop: the sender cannot wait for itself
        deadline = float("inf") if timeout is None else time.monotonic() + timeout
        try:
            with self._cond:
                if self._closing:  # the sender has stopped, or is finishing its last pass
                    return self._settled()
                if self._thread is None:
                    self._start()
                self._flush_requested += 1
                wanted = self._flush_requested
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._flush_over(wanted, deadline), timeout)
                return self._flush_done >= wanted and self._settled()
        except Exception:
            logger.exception("telemetry-kit: flush failed")
            return False

    def _settled(self) -> bool:
        return not self._buffer and self._backlog == 0

    def _flush_over(self, wanted: int, deadline: float) -> bool:
        """Whether a flush can stop waiting: everything sent, or the next attempt comes too late."""
        if not self._thread.is_alive():
            return True
        if self._flush_done < wanted:
            return False
        return self._settled() or time.monotonic() + (self._retry_at - time.time()) >= deadline

    def close(self, timeout: float | None = None) -> None:
        """Stores what was tracked and delivers what it can within ``timeout`` seconds (default:
        ``shutdown_timeout``); what is left stays queued for the next run. Runs at interpreter exit."""
        if not self.enabled:
            return
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        try:
            with self._cond:
                if self._closing:
                    return
                self._closing = True
                self._deadline = time.monotonic() + timeout
                thread = self._thread
                self._cond.notify_all()
            _live_clients.discard(self)
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
            if thread is None or not thread.is_alive():
                self._queue.close()
        except Exception:
            logger.exception("telemetry-kit: close failed")

    def stats(self) -> Stats:
        with self._cond:
            counts = self._counts
            return Stats(
                tracked=counts["tracked"],
                delivered=counts["delivered"],
                dropped=counts["dropped"],
                failed_attempts=counts["failed_attempts"],
                pending=len(self._buffer) + self._backlog,
            )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- the sender thread ------------------------------------------------------------------------

    def _start(self) -> None:
        """Starts the sender thread; the caller holds ``_cond``."""
        self._thread = threading.Thread(target=self._run, name="telemetry-kit-sender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_send = time.monotonic()  # a first pass at once, for what an earlier run left queued
        while True:
            with self._cond:
                self._cond.wait_for(self._has_work, max(0.0, self._wake_at(next_send) - time.monotonic()))
                events = list(self._buffer)
                self._buffer.clear()
                self._backlog += len(events)  # so that stats() never shows them nowhere
                flush_seen, closing = self._flush_requested, self._closing
            if time.monotonic() >= next_send:
                next_send = time.monotonic() + self.config.flush_interval
            try:
                self._pass(events)
            except Exception:
                logger.exception("telemetry-kit: the sender failed; will try again")
            with self._cond:
                self._flush_done = flush_seen
                self._cond.notify_all()
            if closing:
                return

    def _has_work(self) -> bool:
        return self._closing or self._flush_requested > self._flush_done or len(self._buffer) >= self._batch_limit

    def _wake_at(self, next_send: float) -> float:
        wait = self._retry_at - time.time()
        if self._backlog and wait > 0:  # queued events wait for their retry time
            return min(next_send, time.monotonic() + wait)
        return next_send

    def _pass(self, events: list[tuple[str, str]]) -> None:
        """Persists ``events`` and delivers queued batches until the queue is empty, a request fails,
        or the close deadline passes."""
        if events:
            try:
                dropped = self._queue.push(events)
            except Exception as error:
                self._report(
                    [Dropped(event_id, "queue_error", f"cannot store the event: {error}") for event_id, _ in events]
                )
            else:
                if dropped:
                    self._report(
                        [
                            Dropped(
                                event_id,
                                "queue_full",
                                "the offline queue is full (max_queue_events, max_queue_bytes): oldest events dropped",
                            )
                            for event_id in dropped
                        ]
                    )
        try:
            while time.monotonic() < self._deadline:
                self._retry_at = self._queue.not_before()
                if time.time() < self._retry_at:
                    break
                rows = self._queue.claim(limit=self._batch_limit, max_bytes=self.config.max_batch_bytes)
                if not rows or not self._send(rows):
                    break
        finally:
            self._backlog = len(self._queue)

    def _send(self, rows: list[Row]) -> bool:
        """Sends one leased batch and settles it; True when the next batch may follow at once."""
        config = self.config
        sent_at = rfc3339(time.time())
        body = (
            '{"events":['
            + ",".join(
                with_metadata(row.body, transmission_timestamp=sent_at, batch_size=len(rows), retry_count=row.attempts)
                for row in rows
            )
            + "]}"
        )
        answer = batch_post(
            url=config.ingest_url,
            secret=config.secret,
            token=config.token,
            body=body.encode(),
            batch_size=len(rows),
            timeout=config.request_timeout,
        )
        ids = [row.id for row in rows]
        if answer.verdict is Verdict.DELIVERED:
            self._queue.remove(ids)
            self._succeeded(answer.accepted, _rejections(rows, answer))
            return True
        if answer.verdict is Verdict.REJECTED:
            self._queue.remove(ids)
            self._succeeded(0, _rejections(rows, answer, everything=True))
            return True
        if answer.verdict is Verdict.BATCH_REFUSED:
            if len(rows) > 1:  # halve until the event the server refuses is alone, then drop it
                self._queue.release(ids)
                self._batch_limit = max(1, len(rows) // 2)
                logger.info(
                    "telemetry-kit: the server refused a batch of %d (%s); trying %d at a time",
                    len(rows),
                    answer.describe(),
                    self._batch_limit,
                )
            else:
                self._queue.remove(ids)
                self._report([Dropped(rows[0].event_id, answer.code, answer.message)])
            return True
        self._retry_later(rows, answer)
        return False

    def _succeeded(self, delivered: int, rejected: list[Dropped]) -> None:
        if self._failures:
            logger.info("telemetry-kit: delivering again after %d failed attempts", self._failures)
        self._failures = 0
        self._batch_limit = min(self.config.batch_size, self._batch_limit * 2)
        with self._cond:
            self._counts["delivered"] += delivered
        if rejected:
            self._report(rejected)

    def _retry_later(self, rows: list[Row], answer: Answer) -> None:
        config = self.config
        failed = answer.verdict is Verdict.FAILED
        exhausted = self._queue.release([row.id for row in rows], failed=failed, max_failures=config.max_failures)
        self._failures += 1
        if answer.code == "connection_lost":
            self._batch_limit = max(1, len(rows) // 2)
        with self._cond:
            self._counts["failed_attempts"] += 1
        # A configuration the server refuses will not fix itself soon: wait as long as backoff ever does.
        failures = 64 if answer.verdict is Verdict.MISCONFIGURED else self._failures
        delay = backoff_delay(
            failures,
            base=config.backoff_base,
            cap=config.backoff_max,
            retry_after=answer.retry_after,
            max_retry_after=config.max_retry_after,
        )
        self._retry_at = time.time() + delay
        self._queue.defer(self._retry_at)
        level = logging.ERROR if answer.verdict is Verdict.MISCONFIGURED else logging.WARNING
        if self._failures > 1 and answer.verdict is Verdict.UNAVAILABLE:
            level = logging.DEBUG  # one warning an outage, not one a retry
        logger.log(
            level,
            "telemetry-kit: %d events not delivered (%s); next attempt in %.1f s",
            len(rows),
            answer.describe(),
            delay,
        )
        if exhausted:
            self._report(
                [
                    Dropped(
                        event_id,
                        "retries_exhausted",
                        f"{config.max_failures} failed attempts, the last: {answer.describe()}",
                    )
                    for event_id in exhausted
                ]
            )

    def _report(self, dropped: list[Dropped]) -> None:
        with self._cond:
            self._counts["dropped"] += len(dropped)
        reasons = collections.Counter(item.reason for item in dropped)
        logger.warning(
            "telemetry-kit: %d events dropped (%s), e.g. %s",
            len(dropped),
            ", ".join(f"{reason}: {count}" for reason, count in reasons.items()),
            dropped[0].message,
        )
        if self._on_drop is not None:
            try:
                self._on_drop(dropped)
            except Exception:
                logger.exception("telemetry-kit: the on_drop callback failed")

    def _after_fork_in_child(self) -> None:
        # The sender thread did not come along, and the parent still owns what was buffered.
        self._cond = threading.Condition()
        self._buffer.clear()
        self._thread = None


def _rejections(rows: list[Row], answer: Answer, *, everything: bool = False) -> list[Dropped]:
    """The events the server refused as invalid, with its error code for each."""
    by_index = {error["index"]: error for error in answer.errors if 0 <= error["index"] < len(rows)}
    chosen = range(len(rows)) if everything else sorted(by_index)
    return [
        Dropped(
            rows[index].event_id,
            str(by_index.get(index, {}).get("error") or answer.code),
            str(by_index.get(index, {}).get("message") or answer.message),
        )
        for index in chosen
    ]


_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    for client in list(_live_clients):
        client.close()


def _after_fork() -> None:
    for client in list(_live_clients):
        client._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_after_fork)

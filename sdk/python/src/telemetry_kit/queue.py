"""The offline queue: events persisted in SQLite until the server has answered for them.

Bounded in rows and bytes (the oldest go first), shared safely by the processes of one application
(a batch is leased to one sender at a time) and by restarts (what was queued is sent next time).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from telemetry_kit.files import private_directory, private_file

logger = logging.getLogger("telemetry_kit")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value REAL NOT NULL);
"""
_NOT_BEFORE = "not_before"


@dataclass(frozen=True)
class Row:
    id: int
    event_id: str
    body: str
    attempts: int


class OfflineQueue:
    """Every method is thread-safe; after a fork the child opens its own connection."""

    def __init__(self, path: Path | str, *, max_events: int, max_bytes: int, lease_seconds: float):
        self.path = str(path)
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._inherited: sqlite3.Connection | None = None
        if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
            weak_self = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _after_fork(weak_self))

    def _after_fork_in_child(self) -> None:
        # SQLite connections must not cross a fork, and the parent's lock may have been held when it
        # forked. The inherited connection is kept, never used or closed: closing it here could
        # disturb the parent's locks on the file.
        self._lock = threading.Lock()
        self._inherited, self._connection = self._connection, None

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _open(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            return self._connect(self.path)
        try:
            private_directory(Path(self.path).parent)
            try:
                return self._connect(self.path)
            except sqlite3.DatabaseError as error:
                if "not a database" not in str(error) and "malformed" not in str(error):
                    raise
                aside = f"{self.path}.damaged-{int(time.time())}"
                logger.warning("telemetry-kit: the offline queue %s is damaged; moved aside to %s", self.path, aside)
                os.replace(self.path, aside)
                return self._connect(self.path)
        except (OSError, sqlite3.Error) as error:
            logger.warning(
                "telemetry-kit: cannot open the offline queue %s (%s); events are kept in memory only", self.path, error
            )
            self.path = ":memory:"
            return self._connect(self.path)

    @staticmethod
    def _connect(path: str) -> sqlite3.Connection:
        if path != ":memory:":
            private_file(path)  # before SQLite creates it with the umask's mode
        connection = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            if path != ":memory:":
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        return connection

    def _transaction(self, work):
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

    def push(self, events: list[tuple[str, str]]) -> list[str]:
        """Appends ``(event_id, json)`` pairs; returns the ids of the oldest events dropped to stay
        within the bounds."""
        rows = [(event_id, body, len(body)) for event_id, body in events]

        def work(db):
            db.executemany("INSERT INTO events (event_id, body, size) VALUES (?, ?, ?)", rows)
            return self._trim(db)

        return self._transaction(work)

    def _trim(self, db: sqlite3.Connection) -> list[str]:
        count, total = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events").fetchone()
        excess_rows, excess_bytes = count - self.max_events, total - self.max_bytes
        if excess_rows <= 0 and excess_bytes <= 0:
            return []
        dropped, freed, cutoff = [], 0, None
        for row_id, event_id, size in db.execute("SELECT id, event_id, size FROM events ORDER BY id"):
            if len(dropped) >= excess_rows and freed >= excess_bytes:
                break
            dropped.append(event_id)
            freed += size
            cutoff = row_id
        db.execute("DELETE FROM events WHERE id <= ?", (cutoff,))
        return dropped

    def claim(self, *, limit: int, max_bytes: int) -> list[Row]:
        """Leases the oldest events not leased by another sender: at most ``limit`` of them and
        ``max_bytes`` of JSON, but always at least one when any is due."""

        def work(db):
            now = time.time()
            rows, size = [], 0
            for row in db.execute(
                "SELECT id, event_id, body, attempts FROM events WHERE lease_until <= ? ORDER BY id LIMIT ?",
                (now, limit),
            ):
                size += len(row[2]) + 1
                if rows and size > max_bytes:
                    break
                rows.append(Row(*row))
            if rows:
                db.executemany(
                    "UPDATE events SET lease_until = ? WHERE id = ?",
                    [(now + self.lease_seconds, row.id) for row in rows],
                )
            return rows

        return self._transaction(work)

    def remove(self, ids: list[int]) -> None:
        self._transaction(lambda db: db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in ids]))

    def release(self, ids: list[int], *, failed: bool = False, max_failures: int = 0) -> list[str]:
        """Gives leased events back after an attempt that did not settle them. With ``failed`` the
        attempt counts against them, and the ids of those that reached ``max_failures`` are removed
        and returned."""

        def work(db):
            db.executemany(
                "UPDATE events SET lease_until = 0, attempts = attempts + 1, failures = failures + ? WHERE id = ?",
                [(int(failed), i) for i in ids],
            )
            if not failed:
                return []
            marks = ",".join("?" * len(ids))
            spent = db.execute(
                f"SELECT id, event_id FROM events WHERE id IN ({marks}) AND failures >= ?", [*ids, max_failures]
            ).fetchall()
            db.executemany("DELETE FROM events WHERE id = ?", [(row_id,) for row_id, _ in spent])
            return [event_id for _, event_id in spent]

        return self._transaction(work)

    def not_before(self) -> float:
        """When any sender of this queue may next send (a server's ``Retry-After`` or a backoff)."""
        with self._lock:
            row = self._db().execute("SELECT value FROM state WHERE key = ?", (_NOT_BEFORE,)).fetchone()
        return row[0] if row else 0.0

    def defer(self, until: float) -> None:
        self._transaction(
            lambda db: db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (_NOT_BEFORE, until))
        )

    def __len__(self) -> int:
        with self._lock:
            return self._db().execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
            self._connection = None


def _after_fork(weak_queue: weakref.ref) -> None:
    queue = weak_queue()
    if queue is not None:
        queue._after_fork_in_child()

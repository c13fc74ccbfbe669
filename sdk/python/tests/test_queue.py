"""The offline queue, on a real SQLite file."""

import os
import sqlite3
import stat

from telemetry_kit.queue import OfflineQueue


def queue_at(path, **bounds) -> OfflineQueue:
    settings = {"max_events": 100, "max_bytes": 100_000, "lease_seconds": 60, **bounds}
    return OfflineQueue(path, **settings)


def events(*names):
    return [(name, f'{{"event_id":"{name}"}}') for name in names]


def test_events_come_out_oldest_first_in_batches(tmp_path):
    queue = queue_at(tmp_path / "q.sqlite3")
    queue.push(events("a", "b", "c"))

    assert [row.event_id for row in queue.claim(limit=2, max_bytes=10_000)] == ["a", "b"]
    assert [row.event_id for row in queue.claim(limit=2, max_bytes=10_000)] == ["c"]


def test_a_leased_batch_is_not_claimed_twice_until_released(tmp_path):
    queue = queue_at(tmp_path / "q.sqlite3")
    other_process = queue_at(tmp_path / "q.sqlite3")
    queue.push(events("a", "b"))
    leased = queue.claim(limit=10, max_bytes=10_000)

    assert other_process.claim(limit=10, max_bytes=10_000) == []
    queue.release([row.id for row in leased])
    again = other_process.claim(limit=10, max_bytes=10_000)
    assert [(row.event_id, row.attempts) for row in again] == [("a", 1), ("b", 1)]


def test_a_batch_stops_at_the_byte_limit_but_holds_at_least_one_event(tmp_path):
    queue = queue_at(tmp_path / "q.sqlite3")
    queue.push(events("a", "b", "c"))

    assert len(queue.claim(limit=10, max_bytes=40)) == 2
    assert len(queue.claim(limit=10, max_bytes=1)) == 1


def test_events_survive_closing_and_reopening(tmp_path):
    queue = queue_at(tmp_path / "q.sqlite3")
    queue.push(events("a", "b"))
    queue.close()

    reopened = queue_at(tmp_path / "q.sqlite3")

    assert len(reopened) == 2
    assert [row.event_id for row in reopened.claim(limit=10, max_bytes=10_000)] == ["a", "b"]


def test_oldest_events_are_dropped_beyond_the_row_bound(tmp_path):
    queue = queue_at(tmp_path / "q.sqlite3", max_events=3)
    queue.push(events("a", "b"))

    dropped = queue.push(events("c", "d", "e"))

    assert dropped == ["a", "b"]
    assert [row.event_id for row in queue.claim(limit=10, max_bytes=10_000)] == ["c", "d", "e"]


def test_oldest_events_are_dropped_beyond_the_byte_bound(tmp_path):
    queue = queue_at(tmp_path / "q.sqlite3", max_bytes=40)  # each event is 16 bytes

    dropped = queue.push(events("a", "b", "c"))

    assert dropped == ["a"]
    assert len(queue) == 2


def test_events_that_keep_failing_are_dropped_after_max_failures(tmp_path):
    queue = queue_at(tmp_path / "q.sqlite3")
    queue.push(events("a"))
    queue.push(events("b"))
    first = queue.claim(limit=1, max_bytes=10_000)
    assert queue.release([row.id for row in first], failed=True, max_failures=2) == []
    both = queue.claim(limit=2, max_bytes=10_000)

    spent = queue.release([row.id for row in both], failed=True, max_failures=2)

    assert spent == ["a"]
    assert [row.event_id for row in queue.claim(limit=10, max_bytes=10_000)] == ["b"]


def test_unavailable_server_does_not_count_as_a_failure(tmp_path):
    queue = queue_at(tmp_path / "q.sqlite3")
    queue.push(events("a"))
    for _ in range(5):
        rows = queue.claim(limit=1, max_bytes=10_000)
        queue.release([row.id for row in rows])

    assert queue.release([row.id for row in queue.claim(limit=1, max_bytes=10_000)], failed=True, max_failures=2) == []


def test_retry_time_is_shared_through_the_file(tmp_path):
    queue_at(tmp_path / "q.sqlite3").defer(1234.5)

    assert queue_at(tmp_path / "q.sqlite3").not_before() == 1234.5


def test_damaged_file_is_moved_aside_and_a_new_queue_started(tmp_path):
    path = tmp_path / "q.sqlite3"
    path.write_bytes(b"this is not a database" * 100)

    queue = queue_at(path)
    queue.push(events("a"))

    assert len(queue) == 1
    assert [p.name.startswith("q.sqlite3.damaged-") for p in tmp_path.iterdir()].count(True) == 1
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM events").fetchone() == (1,)


def test_unwritable_place_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")

    queue = queue_at(blocker / "q.sqlite3")  # a directory cannot be made under a file
    queue.push(events("a"))

    assert queue.path == ":memory:"
    assert len(queue) == 1


def test_queue_files_and_new_directories_are_private_whatever_the_umask(tmp_path):
    previous = os.umask(0o002)
    try:
        queue = queue_at(tmp_path / "custom" / "place" / "q.sqlite3")
        queue.push(events("a"))
    finally:
        os.umask(previous)

    modes = {path.relative_to(tmp_path).as_posix(): stat.S_IMODE(path.stat().st_mode) for path in tmp_path.rglob("*")}
    assert modes == {
        "custom": 0o700,
        "custom/place": 0o700,
        "custom/place/q.sqlite3": 0o600,
        "custom/place/q.sqlite3-wal": 0o600,
        "custom/place/q.sqlite3-shm": 0o600,
    }


def test_an_existing_queue_file_readable_by_others_is_made_private(tmp_path):
    path = tmp_path / "q.sqlite3"
    queue_at(path).push(events("a"))
    path.chmod(0o644)
    directory_mode = stat.S_IMODE(tmp_path.stat().st_mode)

    reopened = queue_at(path)

    assert len(reopened) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == directory_mode  # a directory it did not make is left alone

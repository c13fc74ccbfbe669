import multiprocessing
import stat

import pytest
from django.core.exceptions import ImproperlyConfigured

from telemetry.lib.secret_key import persistent_secret_key

PROCESSES = 16


def _read_key_at_the_same_time(path, barrier, results):
    barrier.wait()
    results.put(persistent_secret_key(path))


def test_processes_starting_together_all_get_the_same_non_empty_key(tmp_path):
    context = multiprocessing.get_context("fork")
    for attempt in range(50):
        path = tmp_path / f"secret_key_{attempt}"
        barrier, results = context.Barrier(PROCESSES), context.Queue()
        processes = [context.Process(target=_read_key_at_the_same_time, args=(path, barrier, results))
                     for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        keys = {results.get(timeout=30) for _ in processes}
        for process in processes:
            process.join()

        assert keys == {path.read_text()}
        assert len(path.read_text()) >= 50


def test_the_key_is_kept_readable_by_its_owner_only_and_nothing_else_is_left_behind(tmp_path):
    key = persistent_secret_key(tmp_path / "secret_key")

    assert persistent_secret_key(tmp_path / "secret_key") == key
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


def test_an_empty_key_file_stops_start_up_instead_of_being_used(tmp_path):
    (tmp_path / "secret_key").write_text("")

    with pytest.raises(ImproperlyConfigured, match="secret_key is empty"):
        persistent_secret_key(tmp_path / "secret_key")

import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured

from telemetry.lib.secret_key import persistent_secret_key

PROCESSES = 16
ROOT = Path(__file__).resolve().parent.parent


ATTEMPTS = 50


def _read_keys_at_the_same_time(directory, barrier, results):
    # One process a start; every round they all read a new key path at once.
    for attempt in range(ATTEMPTS):
        barrier.wait()
        results.put((attempt, persistent_secret_key(directory / f"secret_key_{attempt}")))


def test_processes_starting_together_all_get_the_same_non_empty_key(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    processes = [
        context.Process(target=_read_keys_at_the_same_time, args=(tmp_path, barrier, results)) for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    keys = {attempt: set() for attempt in range(ATTEMPTS)}
    for _ in range(ATTEMPTS * PROCESSES):
        attempt, key = results.get(timeout=30)
        keys[attempt].add(key)
    for process in processes:
        process.join()

    for attempt in range(ATTEMPTS):
        path = tmp_path / f"secret_key_{attempt}"
        assert keys[attempt] == {path.read_text()}
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


def _manage_check(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, "APP_DATA_DIR": str(tmp_path), **env},
    )


def test_a_container_without_secret_key_refuses_to_start_and_says_why(tmp_path):
    # The image sets this: each container would otherwise generate a key of its own.
    result = _manage_check(tmp_path, APP_SECURITY__SECRET_KEY_REQUIRED="true")

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_the_image_requires_secret_key_and_compose_refuses_to_start_without_it():
    dockerfile = (ROOT / "Dockerfile").read_text()
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())

    assert "APP_SECURITY__SECRET_KEY_REQUIRED=true" in dockerfile
    assert compose["x-app"]["environment"]["SECRET_KEY"].startswith("${SECRET_KEY:?")

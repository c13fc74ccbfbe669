import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def manage_check(tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    environment.update(APP_DATA_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("APP_INGESTION__MAX_BATCH_SIZE", "lots"),
        ("APP_INGESTION__MAX_BATCH_SIZE", "0"),
        ("APP_SERVER__PORT", "70000"),
        ("APP_SECURITY__TIMESTAMP_TOLERANCE", "-5"),
        ("APP_OBSERVABILITY__LOG_FORMAT", "xml"),
        ("DEBUG", "perhaps"),
        ("DATABASE_URL", "mysql://db/telemetry"),
        ("REDIS_URL", "localhost:6379"),
        ("APP_CORS__ALLOWED_ORIGINS", "app.example.com"),
        ("APP_CORS__ALLOWED_ORIGINS", "https://app.example.com/path"),
    ],
)
def test_invalid_setting_stops_start_up_naming_the_variable(tmp_path, name, value):
    result = manage_check(tmp_path, **{name: value})

    assert result.returncode != 0
    assert "Invalid configuration" in result.stderr
    assert name in result.stderr


def test_every_bad_value_is_reported_at_once(tmp_path):
    result = manage_check(tmp_path, APP_SERVER__PORT="x", APP_SECURITY__NONCE_TTL="y")

    assert "APP_SERVER__PORT" in result.stderr and "APP_SECURITY__NONCE_TTL" in result.stderr


def test_defaults_start_with_nothing_configured(tmp_path):
    result = manage_check(tmp_path)

    assert result.returncode == 0, result.stderr


def test_the_embedded_broker_keeps_its_files_in_the_data_directory(tmp_path):
    started_in, data = tmp_path / "elsewhere", tmp_path / "data"
    started_in.mkdir()
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    environment.update(APP_DATA_DIR=str(data), PYTHONPATH=str(ROOT))
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "telemetry", "worker", "--pool", "solo", "-l", "warning"],
        cwd=started_in,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bindings = data / "broker" / "control" / "celery.pidbox.exchange"
    try:
        deadline = time.monotonic() + 60
        while not bindings.exists() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    assert bindings.exists()
    assert list(started_in.iterdir()) == []


def test_every_setting_read_from_the_environment_is_in_env_example():
    settings_source = (ROOT / "telemetry" / "settings.py").read_text()
    example = (ROOT / ".env.example").read_text()
    import re

    names = set(re.findall(r'env\.\w+\("([A-Z_]+)"', settings_source))
    assert names, "no settings found"
    missing = sorted(name for name in names if f"{name}=" not in example)
    assert missing == []


@pytest.mark.django_db
def test_each_request_is_logged_once_as_json_without_secrets(app_keys, signed_post, caplog):
    import json as jsonlib

    from tests.conftest import make_event

    caplog.set_level("INFO", logger="telemetry.access")
    response = signed_post(app_keys, [make_event()], HTTP_AUTHORIZATION=f"Bearer {app_keys.api_token}")

    records = [r for r in caplog.records if r.name == "telemetry.access"]
    assert len(records) == 1
    record = records[0]
    assert (record.method, record.status, record.org_id, record.app_id) == (
        "POST",
        200,
        app_keys.org_id,
        app_keys.app_id,
    )
    assert record.duration_ms > 0
    from pythonjsonlogger.json import JsonFormatter

    line = JsonFormatter("%(message)s").format(record)
    assert jsonlib.loads(line)["path"] == app_keys.url
    assert app_keys.api_token not in line and app_keys.hmac_secret not in line and "command" not in line
    assert response.status_code == 200


def effective_setting(tmp_path, name, **env) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    environment.update(APP_DATA_DIR=str(tmp_path), **env)
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "--no-imports",
            "-c",
            f"from django.conf import settings; print(settings.{name})",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "600"),
        ({"APP_SECURITY__NONCE_TTL": "3600"}, "3600"),
        ({"APP_SECURITY__TIMESTAMP_TOLERANCE": "900", "APP_SECURITY__NONCE_TTL": "600"}, "1800"),
        ({"APP_SECURITY__ACCEPT_LEGACY_SIGNATURE": "true", "APP_SECURITY__NONCE_TTL": "600"}, "1200"),
    ],
)
def test_nonce_is_remembered_as_long_as_a_request_bearing_it_could_be_accepted(tmp_path, env, expected):
    assert effective_setting(tmp_path, "SECURITY_NONCE_TTL", **env) == expected

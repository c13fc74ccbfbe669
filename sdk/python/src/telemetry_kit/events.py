"""Events in the exact shape of docs/protocols.md#event-schema, and the anonymous ids they carry."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

from telemetry_kit.files import private_directory, private_file
from telemetry_kit.signing import SCHEMA_VERSION

# Fixed, so the same machine and application always give the same user id; part of the hashed
# message, so the id cannot be matched with other software's ids derived from the same machine id.
_USER_ID_CONTEXT = b"telemetry-kit user id\x00"
_MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")  # systemd's, D-Bus's


def rfc3339(seconds: float) -> str:
    """UTC with milliseconds and a ``Z``: ``2026-11-20T10:30:00.123Z``."""
    whole, millis = divmod(round(seconds * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def user_id_derive(machine_id: str, app_id: str) -> str:
    """``client_`` + 64 hex: an HMAC keyed with the machine id over the application id, so it is
    stable per machine and application, and neither the machine id nor another application's id
    for the same machine can be recovered from it."""
    digest = hmac.new(machine_id.encode(), _USER_ID_CONTEXT + app_id.encode(), hashlib.sha256).hexdigest()
    return f"client_{digest}"


def session_id_new() -> str:
    return f"sess_{uuid.uuid4().hex}"


def machine_id(fallback_dir: Path) -> str:
    """The operating system's id for this machine, or else a random one kept in ``fallback_dir``."""
    return _system_machine_id() or kept_random_id(fallback_dir / "machine-id")


def kept_random_id(path: Path) -> str:
    """A random id made on first use and read back from ``path`` ever after."""
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        return kept
    value = uuid.uuid4().hex
    private_directory(path.parent)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    private_file(partial)
    partial.write_text(value)
    os.replace(partial, path)  # whole or not at all, should two processes race
    return value


def _system_machine_id() -> str | None:
    if sys.platform == "win32":
        return _windows_machine_guid()
    if sys.platform == "darwin":
        return _macos_platform_uuid()
    for name in _MACHINE_ID_FILES:
        try:
            value = Path(name).read_text().strip()
        except (OSError, UnicodeDecodeError):
            continue
        if value:
            return value
    return None


def _windows_machine_guid() -> str | None:
    try:
        import winreg

        with winreg.OpenKey(
            winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\Microsoft\Cryptography", 0, winreg.KEY_READ | winreg.KEY_WOW64_64KEY
        ) as key:  # the same from 32-bit Python
            return str(winreg.QueryValueEx(key, "MachineGuid")[0]) or None
    except OSError:
        return None


def _macos_platform_uuid() -> str | None:
    try:
        output = subprocess.run(
            ["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in output.splitlines():
        if "IOPlatformUUID" in line:
            return line.rsplit("=", 1)[-1].strip().strip('"') or None
    return None


def service_describe(name: str, version: str | None) -> dict:
    service = {"name": name}
    if version:
        service["version"] = version
    service["language"] = "python"
    service["language_version"] = platform.python_version()
    return service


def uuid4_text() -> str:
    """``str(uuid.uuid4())`` at a quarter of its cost: it is paid on every ``track()``."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class EventEncoder:
    """Encodes the events of one client. Hot path (``track()`` runs it in the host's request or
    command): what every event shares is encoded once, and only the event's own part per call."""

    def __init__(self, *, user_id: str, session_id: str, service: dict):
        shared = json.dumps({"user_id": user_id, "session_id": session_id, "service": service}, separators=(",", ":"))
        self._shared = shared[1:-1]

    def encode(self, event_type: str, data, category: str | None, now: float | None = None) -> tuple[str, str]:
        """``(event_id, JSON text)`` of one event without its ``metadata``, which is added when it is
        sent. Optional fields are omitted, never null. Raises ``TypeError``/``ValueError`` for data
        that is not JSON (NaN and infinities included: the server's JSON has no such numbers)."""
        if not isinstance(event_type, str) or not event_type:
            raise TypeError("event_type must be a non-empty string")
        if category is not None and not isinstance(category, str):
            raise TypeError("category must be a string or None")
        body = {"type": event_type}
        if category is not None:
            body["category"] = category
        if data is not None:
            body["data"] = data
        body_json = json.dumps(body, separators=(",", ":"), allow_nan=False)
        event_id = uuid4_text()
        timestamp = rfc3339(time.time() if now is None else now)
        return event_id, (
            f'{{"event_id":"{event_id}","schema_version":"{SCHEMA_VERSION}",'
            f'"timestamp":"{timestamp}",{self._shared},"event":{body_json}}}'
        )


def with_metadata(event_json: str, *, transmission_timestamp: str, batch_size: int, retry_count: int) -> str:
    """The stored event with its ``metadata`` appended, without decoding it again."""
    metadata = (
        f'{{"transmission_timestamp":"{transmission_timestamp}","batch_size":{batch_size},"retry_count":{retry_count}}}'
    )
    return f'{event_json[:-1]},"metadata":{metadata}}}'

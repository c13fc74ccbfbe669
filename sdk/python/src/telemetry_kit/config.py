"""Settings, given in code or read from the environment (``TK_*`` names: docs/protocols.md#client-settings)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# The server's own limit on events per batch (APP_INGESTION__MAX_BATCH_SIZE's default).
MAX_BATCH_SIZE = 1000
_TRUE = {"1", "true", "yes", "on"}
_ENVIRONMENT = {
    "endpoint": "TK_ENDPOINT",
    "org_id": "TK_ORG_ID",
    "app_id": "TK_APP_ID",
    "token": "TK_TOKEN",
    "secret": "TK_SECRET",
    "service_name": "TK_SERVICE_NAME",
    "service_version": "TK_SERVICE_VERSION",
    "queue_path": "TK_QUEUE_PATH",
}
_INSECURE_HTTP = (
    "endpoint must be an https:// URL: http:// sends events in the clear, so it is allowed only to "
    "localhost, 127.0.0.0/8 and ::1, or with allow_insecure_http (TK_ALLOW_INSECURE_HTTP=1)"
)


@dataclass(frozen=True)
class Config:
    endpoint: str = ""  # the server's base URL: https://telemetry.example.com
    org_id: str = ""
    app_id: str = ""
    # Kept out of repr: a Config in a log line or a traceback must not leak what signs the events.
    secret: str = field(default="", repr=False)  # the HMAC secret, used as the UTF-8 string it is
    token: str | None = field(default=None, repr=False)  # optional; sent as a bearer token when set
    service_name: str = ""
    service_version: str | None = None
    queue_path: str | None = None  # the SQLite offline queue; default: a per-application file in the user's cache
    do_not_track: bool = False
    allow_insecure_http: bool = False  # http:// to a host other than loopback: events and signatures in the clear
    batch_size: int = 100  # events per request, at most MAX_BATCH_SIZE
    flush_interval: float = 5.0  # seconds between sends of a batch that is not full
    max_buffer_events: int = 10_000  # in memory, waiting for the sender thread
    max_queue_events: int = 10_000  # on disk
    max_queue_bytes: int = 10 * 1024 * 1024
    max_event_bytes: int = 256 * 1024
    max_batch_bytes: int = 1024 * 1024
    request_timeout: float = 10.0
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    max_retry_after: float = 86_400.0
    max_failures: int = 10  # 5xx answers (other than 502/503/504) an event may meet before it is dropped
    shutdown_timeout: float = 5.0  # how long the exit flush may take

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **settings) -> Config:
        """Settings given here win over the environment's; ``DO_NOT_TRACK=1`` wins over everything."""
        environ = os.environ if environ is None else environ
        given = {name: value for name, value in settings.items() if value is not None}
        for name, variable in _ENVIRONMENT.items():
            if name not in given and environ.get(variable):
                given[name] = environ[variable]
        given.setdefault("service_name", _script_name())
        if environ.get("DO_NOT_TRACK", "").strip().lower() in _TRUE:
            given["do_not_track"] = True
        if "allow_insecure_http" not in given and environ.get("TK_ALLOW_INSECURE_HTTP", "").strip().lower() in _TRUE:
            given["allow_insecure_http"] = True
        return cls(**given)

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes)

    @property
    def ingest_url(self) -> str:
        return f"{self.endpoint.rstrip('/')}/v1/ingest/{self.org_id}/{self.app_id}"

    def queue_file(self) -> Path:
        if self.queue_path:
            return Path(self.queue_path).expanduser()
        return _cache_dir() / f"{self.org_id}-{self.app_id}.sqlite3"

    def problems(self) -> list[str]:
        """What keeps these settings from working; empty when they can."""
        found = []
        for name in ("org_id", "app_id", "secret"):
            if not getattr(self, name):
                found.append(f"{name} is not set ({_ENVIRONMENT[name]})")
        scheme = self.endpoint.partition("://")[0].lower() if "://" in self.endpoint else ""
        if scheme not in ("http", "https"):
            found.append("endpoint must be an http:// or https:// URL (TK_ENDPOINT)")
        elif scheme == "http" and not self.allow_insecure_http and not _loopback(self.endpoint):
            found.append(_INSECURE_HTTP)
        if not 1 <= len(self.service_name) <= 255 or len(self.service_version or "") > 255:
            found.append("service_name must have 1 to 255 characters, service_version at most 255")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            found.append(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
        for name in (
            "flush_interval",
            "max_buffer_events",
            "max_queue_events",
            "max_queue_bytes",
            "max_event_bytes",
            "max_batch_bytes",
            "request_timeout",
            "backoff_base",
            "backoff_max",
            "max_failures",
        ):
            if not getattr(self, name) > 0:
                found.append(f"{name} must be positive")
        return found


def _loopback(url: str) -> bool:
    """Whether the URL's host is this machine by name or address, so plain HTTP never leaves it."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":  # urlsplit lowercases it
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _script_name() -> str:
    name = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    return name if name and name not in ("-c", "-m", "__main__") else "python"


def _cache_dir() -> Path:
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "telemetry-kit"

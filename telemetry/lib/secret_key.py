"""A secret key that survives restarts when the operator did not set one."""

import os
import secrets
from pathlib import Path


def persistent_secret_key(path: Path) -> str:
    """Reads the key kept in ``path``, creating it (readable by the owner only) on first use."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process (web, worker, beat start together) wrote it first.
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key

"""A secret key that survives restarts when the operator did not set one."""

import os
import secrets
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def persistent_secret_key(path: Path) -> str:
    """Reads the key kept in ``path``, creating it (readable by the owner only) on first use.

    Web, worker and beat start together: the key is written whole to a file of its own and then
    linked into place, which fails when another process got there first; its key is read instead.
    No process can see the file half written, nor does an interrupted start leave it empty.
    """
    try:
        return _key_read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, written = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(written, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(written)
    return _key_read(path)


def _key_read(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(
            f"{path} is empty (a start was interrupted while writing it): delete it to "
            "generate a new key, or set SECRET_KEY"
        )
    return key

"""Files only this user may read: the offline queue holds events and the fallback machine id, which
other users of the machine have no business reading, wherever the application puts them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

# SQLite's companions of a database file: it gives new ones the database file's mode, but ones left by
# an earlier run keep theirs.
_SIDECARS = ("-wal", "-shm", "-journal")


def private_directory(path: Path) -> None:
    """Makes ``path`` and its missing parents with mode 0700 whatever the umask; a directory that
    exists already (``/tmp``, a shared volume) is left as it is."""
    missing = []
    for directory in (path, *path.parents):
        if directory.is_dir():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # another process made it first: theirs, made the same way
            continue
        directory.chmod(0o700)  # mkdir's mode is cut by the umask


def private_file(path: Path | str) -> None:
    """Creates ``path`` with mode 0600 if it is missing, and takes group and other access away from
    it (and from SQLite's companions of it) if an earlier version or the umask gave them any."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(descriptor)
    for name in (str(path), *(f"{path}{suffix}" for suffix in _SIDECARS)):
        try:
            if stat.S_IMODE(os.stat(name).st_mode) & 0o077:
                os.chmod(name, 0o600)
        except FileNotFoundError:
            continue

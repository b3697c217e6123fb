"""Everything the server writes under its var/ directory is its owner's alone.

The directory holds the database (and its -wal/-shm), the generated SECRET_KEY, TLS keys,
the rate-limit counters and the metrics files. The umask applies to every file the process
creates from here on (SQLite gives its -wal and -shm the database's mode); files left by an
earlier version, or copied in, are narrowed at start.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

UMASK = 0o077


def secure(var_dir: Path) -> None:
    os.umask(UMASK)
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _narrow(var_dir, 0o700)
    for root, dirs, files in os.walk(var_dir):
        for name in dirs:
            _narrow(Path(root) / name, 0o700)
        for name in files:
            _narrow(Path(root) / name, 0o600)


def _narrow(path: Path, mode: int) -> None:
    try:
        st = path.lstat()
        # A symlink's target may be anything (the operator's choice); another user's file is
        # not ours to change.
        if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
            return
        if stat.S_IMODE(st.st_mode) & 0o077:
            path.chmod(stat.S_IMODE(st.st_mode) & mode)
    except (FileNotFoundError, PermissionError):
        pass  # removed meanwhile (another worker's temporary file), or not ours

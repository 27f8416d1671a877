"""The data folder holds databases, keys and logs: only the service user may read it.

Every process that writes there (each service, `flowdock up`, `flowdock migrate` / admin commands) calls
`make_private` first: the umask makes everything it creates owner-only (files 0600, folders 0700), and the folder
and the files near its top that earlier versions created with the default umask are tightened.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def make_private(data_dir: Path, *, depth: int = 2) -> None:
    """Set the owner-only umask, create `data_dir` 0700 if missing, and tighten it and its entries `depth` levels
    down (databases, key files, keyrings, logs, run files; blob files are created 0600 by the blob store)."""
    os.umask(PRIVATE_UMASK)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _tighten(data_dir, depth)


def _tighten(path: Path, depth: int) -> None:
    with contextlib.suppress(OSError):  # another user's file (a mounted secret) is left as it is
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            return
        wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        if info.st_mode & 0o777 & ~wanted:
            os.chmod(path, info.st_mode & 0o777 & wanted)
        if stat.S_ISDIR(info.st_mode) and depth > 0:
            for child in path.iterdir():
                _tighten(child, depth - 1)

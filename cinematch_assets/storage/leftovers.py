"""What killed runs leave behind, and when it is safe to remove: one rule for the
temporary files of the MovieLens download, the synthetic generator's temporary folders
and the Delta writer's in-progress markers.

A leftover records its writer (host and process id). On this host the writer is gone when
its process no longer runs; a writer on another host (a shared folder) or an unknown one
counts as alive until STALE_SECONDS after the leftover was made.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path

STALE_SECONDS = 24 * 3600


def process_alive(pid: int) -> bool:
    """True when a process with this id runs on this machine (another user's included)."""
    if pid <= 0:
        return False  # 0 and negative ids address process groups, not one process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def writer_gone(host: str | None, pid: int | None, since: float) -> bool:
    """Has the process that made a leftover (at `since`, epoch seconds) died?"""
    if host == socket.gethostname() and pid is not None:
        return not process_alive(pid)
    return time.time() - since > STALE_SECONDS


def temp_prefix(kind: str) -> str:
    """The start of a temporary name that records its writer: `.<kind>-<pid>@<host>@`
    (a host name holds no `@`); `sweep` reads it back."""
    return f".{kind}-{os.getpid()}@{socket.gethostname()}@"


def sweep(folder: Path, kind: str) -> list[Path]:
    """Remove the temporary files and folders of `kind` in `folder` whose writer is gone;
    return them. A name that records no writer counts as an unknown writer's."""
    owner = re.compile(rf"\.{re.escape(kind)}-(\d+)@([^@]*)@")
    removed = []
    for leftover in sorted(folder.glob(f".{kind}-*")):
        found = owner.match(leftover.name)
        try:
            made = leftover.lstat().st_mtime
        except OSError:
            continue  # removed meanwhile
        host, pid = (found.group(2), int(found.group(1))) if found else (None, None)
        if not writer_gone(host, pid, made):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed

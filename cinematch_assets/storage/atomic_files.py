"""Files and folders written so that a reader sees the old version or the new one, never
half of one: each is written beside its target under a temporary name, flushed to disk,
and renamed onto it. No Spark, so the app, the reports, the serving files and the
sources share it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's) data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` to write to; renamed onto `target` when the block
    succeeds, removed when it fails.

    The file is fsynced before the rename and the folder after it: without that, a power
    loss can leave the new name pointing at a file whose data never reached the disk (a
    zero-length manifest)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    # mkstemp's 0600 would hide the file from a static file server or an app run as
    # another user.
    os.chmod(temp, 0o644)
    try:
        yield Path(temp)
        fsync_path(Path(temp))
        os.replace(temp, target)
        # Some filesystems refuse to fsync a folder; the rename is then as durable as they allow.
        with contextlib.suppress(OSError):
            fsync_path(target.parent)
    finally:
        Path(temp).unlink(missing_ok=True)


def write_atomic(path: Path, data: str | bytes) -> Path:
    """`data` (text as UTF-8) into `path`, atomically."""
    with atomic_path(path) as temp:
        temp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if absent) for the block; other processes
    and threads wait. The operating system releases it if the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def replace_folder(new: Path, dest: Path, aside_prefix: str) -> None:
    """Rename the finished folder `new` to `dest`. An old `dest` is first renamed aside
    (a sibling named `aside_prefix` + a random part, which the caller's sweep of killed
    writers' leftovers recognises) and deleted only once the new folder is in place; if
    that second rename fails, the old folder is renamed back. So `dest` is never
    half-written: it is absent only between two renames."""
    aside = None
    if dest.exists() or dest.is_symlink():
        aside = dest.with_name(f"{aside_prefix}{uuid.uuid4().hex[:8]}")
        os.replace(dest, aside)
    try:
        os.replace(new, dest)
    except OSError:
        if aside is not None:
            os.replace(aside, dest)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)

"""Files written so that a reader sees the old version or the new one, never half of one:
each is written beside its target under a temporary name and renamed onto it. No Spark,
so the app, the reports and the serving files share it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` to write to; renamed onto `target` when the block
    succeeds, removed when it fails."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    # mkstemp's 0600 would hide the file from a static file server or an app run as
    # another user.
    os.chmod(temp, 0o644)
    try:
        yield Path(temp)
        os.replace(temp, target)
    finally:
        Path(temp).unlink(missing_ok=True)


def write_atomic(path: Path, data: str | bytes) -> Path:
    """`data` (text as UTF-8) into `path`, atomically."""
    with atomic_path(path) as temp:
        temp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)

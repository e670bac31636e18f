"""Reading the serving files: a file that is missing or unreadable raises
`ArtifactProblem`, whose message is one plain sentence for a page or an API answer (what
is wrong and what rebuilds it; the details go to the log), and what was loaded is kept
for the files' current version only (`LatestFiles`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from cinematch_assets.storage import serving_files as files

log = logging.getLogger(__name__)
T = TypeVar("T")


class ArtifactProblem(RuntimeError):
    """A serving file is missing or unreadable; the message says which one and what
    rebuilds it, in words for the page."""


@contextmanager
def reading(what: str, path: Path) -> Iterator[None]:
    """Any failure to read `path` (`what` it holds) as an ArtifactProblem that names the
    file and the asset that writes it; the full error goes to the log."""
    try:
        yield
    except ArtifactProblem:
        raise
    except Exception as exc:  # a damaged file can fail in any library's own way
        log.warning("cannot read %s", path, exc_info=True)
        state = "is missing" if isinstance(exc, FileNotFoundError) else "cannot be read"
        raise ArtifactProblem(
            f"{what} {state}: `{path}`. Rebuild it with `make materialize` (or materialize "
            f"`{files.written_by(path)}` in Dagster), then reload this page."
        ) from exc


class LatestFiles:
    """What was loaded from some files, kept for their current version only: loaded again
    when a file's modification time or size changes, and the old copy dropped, so memory
    stays bounded however often the pipeline re-materializes. Safe across sessions."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, ...], tuple[tuple[int, ...], Any]] = {}
        self._lock = threading.Lock()

    def get(self, paths: Sequence[Path], load: Callable[[], T]) -> T:
        key = tuple(str(p) for p in paths)
        stamp = tuple(n for p in paths for n in file_stamp(p))
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        value = load()
        with self._lock:
            self._entries[key] = (stamp, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)


def file_stamp(path: Path) -> tuple[int, int]:
    """What changes when `path` is replaced; a missing file has a stamp too (loading it
    is what fails, or finds an optional file absent)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return 0, -1
    return stat.st_mtime_ns, stat.st_size


LOADED = LatestFiles()

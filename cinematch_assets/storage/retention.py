"""What the lake keeps: every table rewrite leaves the old version's files for time travel,
and each save in the app adds a small file. Retention removes the files no version younger
than the retention needs (Delta's vacuum), after merging the app ratings' small files
(compaction, under the app's write lock). No Spark."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from deltalake import DeltaTable

from cinematch_assets.storage import app_ratings
from cinematch_assets.storage.atomic_files import exclusive_lock
from cinematch_assets.storage.delta_tables import vacuum_table

# Compact the app ratings table once its saves have left this many files.
COMPACT_FROM_FILES = 64


@dataclass(frozen=True)
class Retained:
    tables: int
    files_removed: int
    bytes_before: int
    bytes_after: int
    app_files_compacted: int


def lake_tables(lake: Path) -> list[Path]:
    """Every Delta table under `lake` (a folder with a `_delta_log`)."""
    return sorted(log.parent for log in Path(lake).rglob("_delta_log") if log.is_dir())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def compact_app_ratings(home: Path) -> int:
    """Merge the app ratings table's small files into few (a new version with the same
    rows) once there are `COMPACT_FROM_FILES`; returns the files merged. The app's writers
    wait meanwhile (the same lock)."""
    table = app_ratings.ratings_path(home)
    if not DeltaTable.is_deltatable(str(table)):
        return 0
    with exclusive_lock(app_ratings.write_lock(table)):
        delta = DeltaTable(str(table))
        if len(delta.file_uris()) < COMPACT_FROM_FILES:
            return 0
        return int(delta.optimize.compact()["numFilesRemoved"])


def apply_retention(home: Path, lake: Path, retention_hours: int) -> Retained:
    """Compact the app ratings, then vacuum every table of `lake` past `retention_hours`.
    A file younger than that is never removed: a retention shorter than a run is safe
    only when no other run writes meanwhile (the app's tables are vacuumed under their
    writers' lock, so a save in progress is safe at any retention)."""
    before = folder_bytes(lake)
    compacted = compact_app_ratings(home)
    app_tables = {app_ratings.ratings_path(home), app_ratings.accounts_path(home)}
    removed = 0
    tables = lake_tables(lake)
    for table in tables:
        with contextlib.ExitStack() as stack:
            if table in app_tables:
                stack.enter_context(exclusive_lock(app_ratings.write_lock(table)))
            removed += len(vacuum_table(table, retention_hours=retention_hours))
    return Retained(len(tables), removed, before, folder_bytes(lake), compacted)

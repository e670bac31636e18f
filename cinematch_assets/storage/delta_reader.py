"""Reading the lake's Delta tables without Spark: one snapshot, one file list, one reader.

delta-rs resolves the snapshot (which Parquet files make up version N) from the Delta log;
`pyarrow.dataset` reads those files. deltalake's own Arrow path (`to_pyarrow_table()`,
`to_pyarrow_dataset()`) is not used: with every deltalake/pyarrow pair tried it aborts
the process at exit about one run in two ("terminate called without an active
exception", delta-rs issue 2184), which a shell pipeline, a scheduler or CI reads as a
failure. This module imports no Spark, so the app and scripts can use it.

    from cinematch_assets.storage.delta_reader import read_delta
    ratings = read_delta("data/lake/silver/ratings_clean")             # latest version
    first = read_delta("data/lake/silver/ratings_clean", version=0)    # time travel

A plain file list is the whole table only when the table uses no feature that changes
what its files mean; tables that do (deletion vectors, column mapping, partition
columns, which this project's writer never creates) are refused with a clear error
rather than read wrongly. Spark reads go through the same `plain_snapshot`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

# Reader features a plain list of Parquet files cannot honour, and what they are called.
UNSUPPORTED_READER_FEATURES = {
    "deletionVectors": "deletion vectors (rows deleted without rewriting their files)",
    "columnMapping": "column mapping (physical column names differ from the table's)",
}


class UnsupportedTableError(ValueError):
    """The table uses a Delta feature that reading its file list would get wrong."""


def _unsupported_features(table: DeltaTable) -> list[str]:
    protocol = table.protocol()
    features = set(protocol.reader_features or [])
    configuration = table.metadata().configuration or {}
    if configuration.get("delta.columnMapping.mode", "none") != "none":
        features.add("columnMapping")
    found = [
        UNSUPPORTED_READER_FEATURES[f]
        for f in sorted(features & UNSUPPORTED_READER_FEATURES.keys())
    ]
    if table.metadata().partition_columns:
        columns = ", ".join(table.metadata().partition_columns)
        found.append(f"partition columns ({columns}: their values live in the log, not the files)")
    return found


def plain_snapshot(path: str | os.PathLike[str], version: int | None = None) -> DeltaTable:
    """The Delta table at `path` (at `version`, default latest), checked to be one whose
    `file_uris()` are exactly its rows. Raises FileNotFoundError when there is no table
    and UnsupportedTableError when the files alone would not give the right rows."""
    root = Path(path).resolve()
    if not DeltaTable.is_deltatable(str(root)):
        raise FileNotFoundError(f"No Delta table at {root} (has its asset been materialized?)")
    table = DeltaTable(str(root), version=version)
    if problems := _unsupported_features(table):
        raise UnsupportedTableError(
            f"The Delta table at {root} uses {'; '.join(problems)}, which reading its Parquet "
            "files directly cannot honour. Read it with a full Delta reader (Spark with "
            "CINEMATCH_DELTA_ENGINE=spark, or deltalake's own readers)."
        )
    return table


def arrow_schema(table: DeltaTable) -> pa.Schema:
    return pa.schema(table.schema().to_arrow())


def read_delta(
    path: str | os.PathLike[str],
    version: int | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """The Delta table at `path` (at `version`, default latest) as a `pyarrow.Table`, with
    the table's schema (columns an older file lacks read as null). `columns` selects."""
    table = plain_snapshot(path, version)
    dataset = ds.dataset(table.file_uris(), schema=arrow_schema(table), format="parquet")
    return dataset.to_table(columns=list(columns) if columns is not None else None)


def read_delta_since(
    path: str | os.PathLike[str],
    since: int | None,
    columns: Sequence[str] | None = None,
) -> tuple[int, pa.Table]:
    """(the latest version, the rows of the files added after version `since`): for an
    append-only table, the rows appended since then. All rows when `since` is None or no
    longer readable. A rewrite (compaction) re-adds old rows: over-reading, never missing."""
    table = plain_snapshot(path)
    try:
        before = set() if since is None else set(plain_snapshot(path, since).file_uris())
    except DeltaError:  # a version past the log's retention: read everything
        before = set()
    added = [uri for uri in table.file_uris() if uri not in before]
    dataset = ds.dataset(added, schema=arrow_schema(table), format="parquet")
    return table.version(), dataset.to_table(columns=list(columns) if columns is not None else None)

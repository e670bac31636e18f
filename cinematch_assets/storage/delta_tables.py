"""Delta Lake tables written by Spark and committed by delta-rs.

The Delta Lake JARs for Spark are not on PyPI, so by default (engine "delta-rs"):
1. Spark writes the DataFrame's Parquet files into a fresh folder inside the table
   directory (executors write in parallel; nothing is collected to the driver).
2. The driver commits those files as one Delta transaction with delta-rs, with size,
   modification time and per-file statistics read from the Parquet footers.
   A crash before the commit leaves the table at its previous version; the orphan
   folder is removed by the next write (or by `vacuum_table`).
3. Reads load the snapshot's files with `spark.read.parquet`, so time travel works
   (`delta_reader` does the same with pyarrow, for readers without Spark).

With engine "spark" (a cluster that has the Delta JARs), Spark's own `format("delta")`
reads and writes. Both produce standard Delta tables that any Delta reader opens.
Schema enforcement is ours in both cases, so the error reads the same.

Paths are local or shared-filesystem folders (the driver reads the Parquet footers).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, Schema
from deltalake.transaction import AddAction, CommitProperties, create_table_with_add_actions
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from cinematch_assets.storage.atomic_files import write_atomic
from cinematch_assets.storage.delta_reader import arrow_schema, plain_snapshot
from cinematch_assets.storage.leftovers import writer_gone

Engine = Literal["delta-rs", "spark"]
WriteMode = Literal["overwrite", "append"]
ENGINES: tuple[str, ...] = ("delta-rs", "spark")

# In-flight writes leave a marker here; `_` keeps Delta readers and vacuum away from it.
PENDING_DIR = "_pending_writes"
# Delta truncates string statistics; we skip longer strings rather than store a wrong max.
MAX_STRING_STAT = 32


class SchemaMismatchError(ValueError):
    """The data's schema differs from the table's and evolution was not allowed."""


@dataclass(frozen=True)
class TableWrite:
    """What one committed write produced."""

    path: Path
    version: int
    mode: str
    num_rows: int
    num_files: int
    size_bytes: int
    schema_changed: bool


# ---------------------------------------------------------------------------- schemas


def arrow_schema_of(spark_schema: T.StructType) -> pa.Schema:
    """Arrow schema of what Spark writes (Spark writes every top-level column nullable)."""
    nullable = T.StructType([T.StructField(f.name, f.dataType, True) for f in spark_schema])
    return to_arrow_schema(nullable, timezone="UTC")


def spark_schema_of(table: DeltaTable) -> T.StructType:
    return from_arrow_schema(arrow_schema(table))


def _delta_types(schema: Schema) -> dict[str, Any]:
    """Column name -> Delta type (as JSON), ignoring nullability."""
    return {f["name"]: f["type"] for f in json.loads(schema.to_json())["fields"]}


def _describe(delta_type: Any) -> str:
    return delta_type if isinstance(delta_type, str) else json.dumps(delta_type)


def schema_differences(table_schema: Schema, data_schema: Schema) -> list[str]:
    """Human-readable differences between the table's and the data's columns."""
    have, new = _delta_types(table_schema), _delta_types(data_schema)
    problems = [
        f"missing column {name!r} ({_describe(t)})" for name, t in have.items() if name not in new
    ]
    problems += [
        f"unexpected column {name!r} ({_describe(t)})"
        for name, t in new.items()
        if name not in have
    ]
    problems += [
        f"column {name!r} changes type {_describe(have[name])} -> {_describe(t)}"
        for name, t in new.items()
        if name in have and have[name] != t
    ]
    return problems


# ---------------------------------------------------------------------------- stats


def _stat_value(value: Any) -> Any:
    """A Parquet min/max in Delta's JSON statistics format, or None to leave it out."""
    if isinstance(value, bool | bytes):
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
            return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        # JSON has no infinity: delta-rs reads a file's whole statistics as missing.
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING_STAT else None
    if isinstance(value, int):
        return value
    return None


def parquet_file_stats(metadata: pq.FileMetaData) -> dict[str, Any]:
    """Delta per-file statistics (numRecords, minValues, maxValues, nullCount) from a footer.

    Only top-level primitive columns get statistics; nested ones are simply left out,
    which Delta readers treat as "unknown".
    """
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for i in range(metadata.num_columns):
        name = metadata.schema.column(i).path
        if "." in name:
            continue
        columns = [metadata.row_group(g).column(i) for g in range(metadata.num_row_groups)]
        stats = [c.statistics for c in columns]
        if not stats or any(s is None for s in stats):
            continue
        if all(s.has_null_count for s in stats):
            nulls[name] = sum(s.null_count for s in stats)
        with_values = [s for s in stats if s.has_min_max]
        if with_values and len(with_values) == len(stats):
            low = [_stat_value(s.min) for s in with_values]
            high = [_stat_value(s.max) for s in with_values]
            if None not in low and None not in high:
                mins[name], maxs[name] = min(low), max(high)
    return {
        "numRecords": metadata.num_rows,
        "minValues": mins,
        "maxValues": maxs,
        "nullCount": nulls,
    }


# ---------------------------------------------------------------------------- orphans


def _writer_gone(marker_file: Path) -> bool:
    """Has the writer that left this marker died (`leftovers.writer_gone`)? A marker that
    cannot be read (written by another tool, or damaged) names no writer."""
    try:
        marker = json.loads(marker_file.read_text())
        return writer_gone(marker["host"], int(marker["pid"]), float(marker["started"]))
    except (ValueError, TypeError, KeyError):
        return writer_gone(None, None, marker_file.stat().st_mtime)
    except FileNotFoundError:
        return True


def remove_orphans(path: str | os.PathLike[str]) -> list[str]:
    """Delete the folders of writes that died before committing; return their names.

    Every write registers its folder in `_pending_writes/` before Spark writes and
    unregisters it after the commit. A registered folder whose writer is gone was
    committed only if the current snapshot references it (a crash between commit and
    unregistering); otherwise no version ever saw it, and it is safe to delete.
    """
    table = Path(path)
    pending = table / PENDING_DIR
    if not pending.is_dir():
        return []
    committed: set[str] = set()
    if DeltaTable.is_deltatable(str(table)):
        committed = {Path(uri).parent.name for uri in DeltaTable(str(table)).file_uris()}
    removed = []
    for marker_file in sorted(pending.glob("*.json")):
        folder = marker_file.stem
        if folder not in committed and not _writer_gone(marker_file):
            continue  # a live writer, perhaps another process: leave it alone
        if folder not in committed:
            shutil.rmtree(table / folder, ignore_errors=True)
            removed.append(folder)
        marker_file.unlink(missing_ok=True)
    return removed


# ---------------------------------------------------------------------------- writes


def _is_table(path: Path) -> bool:
    return DeltaTable.is_deltatable(str(path))


def _check_schema(
    table: DeltaTable, data_schema: Schema, mode: str, allow_schema_evolution: bool, path: Path
) -> bool:
    """Raise SchemaMismatchError unless the write may proceed; return True if it evolves."""
    problems = schema_differences(table.schema(), data_schema)
    if not problems:
        return False
    if allow_schema_evolution and mode == "overwrite":
        return True
    if allow_schema_evolution and all(p.startswith("unexpected column") for p in problems):
        return True  # appending new columns: old rows read them as null
    hint = (
        "Only new columns can be added by an append."
        if allow_schema_evolution
        else "Pass allow_schema_evolution=True (or set the asset's "
        "'cinematch/allow_schema_evolution' metadata) if this change is intended."
    )
    raise SchemaMismatchError(
        f"Schema mismatch writing to Delta table {path}: " + "; ".join(problems) + ". " + hint
    )


def _collect_added_files(folder: Path, table_root: Path) -> list[AddAction]:
    """Turn Spark's output files into Delta add actions; drop Spark's side files."""
    actions = []
    for item in sorted(folder.rglob("*")):
        if not item.is_file():
            continue
        if item.name.startswith(("_", ".")) or item.suffix == ".crc":
            item.unlink()  # _SUCCESS and Hadoop checksum files are not table data
            continue
        metadata = pq.ParquetFile(item).metadata
        if metadata.num_rows == 0:
            # Spark writes an empty file for an empty DataFrame; the log keeps the schema.
            item.unlink()
            continue
        stat = item.stat()
        actions.append(
            AddAction(
                path=item.relative_to(table_root).as_posix(),
                size=stat.st_size,
                partition_values={},
                modification_time=int(stat.st_mtime * 1000),
                data_change=True,
                stats=json.dumps(parquet_file_stats(metadata)),
            )
        )
    return actions


def _commit_properties(commit_metadata: Mapping[str, Any] | None) -> CommitProperties:
    custom = {"engine": "cinematch"} | {k: str(v) for k, v in (commit_metadata or {}).items()}
    return CommitProperties(custom_metadata=custom)


def write_table(
    df: DataFrame,
    path: str | os.PathLike[str],
    *,
    mode: WriteMode = "overwrite",
    allow_schema_evolution: bool = False,
    engine: Engine = "delta-rs",
    commit_metadata: Mapping[str, Any] | None = None,
) -> TableWrite:
    """Write `df` to the Delta table at `path` as one atomic commit and describe the result."""
    if mode not in ("overwrite", "append"):
        raise ValueError(f"mode must be 'overwrite' or 'append', not {mode!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    table_root = Path(path).resolve()
    data_schema = Schema.from_arrow(arrow_schema_of(df.schema))
    existing = DeltaTable(str(table_root)) if _is_table(table_root) else None
    evolves = (
        _check_schema(existing, data_schema, mode, allow_schema_evolution, table_root)
        if existing
        else False
    )
    if engine == "spark":
        _write_with_spark(df, table_root, mode, evolves)
    else:
        _write_with_delta_rs(df, table_root, mode, existing, data_schema, evolves, commit_metadata)
    return describe_table(table_root, mode=mode, schema_changed=evolves)


def _write_with_delta_rs(
    df: DataFrame,
    table_root: Path,
    mode: WriteMode,
    existing: DeltaTable | None,
    data_schema: Schema,
    evolves: bool,
    commit_metadata: Mapping[str, Any] | None,
) -> None:
    table_root.mkdir(parents=True, exist_ok=True)
    remove_orphans(table_root)
    folder = f"part-{uuid.uuid4().hex}"
    marker = table_root / PENDING_DIR / f"{folder}.json"
    # Atomic: a reader never finds half a marker.
    write_atomic(
        marker,
        json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}),
    )
    try:
        df.write.parquet(str(table_root / folder))
        actions = _collect_added_files(table_root / folder, table_root)
        _commit(table_root, actions, mode, existing, data_schema, evolves, commit_metadata)
    except BaseException:
        # Nothing was committed (a failed commit changes nothing): the folder is garbage.
        shutil.rmtree(table_root / folder, ignore_errors=True)
        marker.unlink(missing_ok=True)
        raise
    if not actions:
        shutil.rmtree(table_root / folder, ignore_errors=True)
    marker.unlink()


def _commit(
    table_root: Path,
    actions: list[AddAction],
    mode: WriteMode,
    existing: DeltaTable | None,
    data_schema: Schema,
    evolves: bool,
    commit_metadata: Mapping[str, Any] | None,
) -> None:
    """One Delta transaction adding `actions` (and, for overwrite, removing the rest)."""
    properties = _commit_properties(commit_metadata)
    if existing is None:
        create_table_with_add_actions(
            str(table_root), data_schema, actions, mode="error", commit_properties=properties
        )
        return
    if evolves and mode == "append":
        new = set(_delta_types(data_schema)) - set(_delta_types(existing.schema()))
        existing.alter.add_columns([f for f in data_schema.fields if f.name in new])
        existing = DeltaTable(str(table_root))
    existing.create_write_transaction(
        actions,
        mode=mode,
        schema=data_schema if mode == "overwrite" else existing.schema(),
        commit_properties=properties,
    )


def _write_with_spark(df: DataFrame, table_root: Path, mode: WriteMode, evolves: bool) -> None:
    writer = df.write.format("delta").mode(mode)
    if evolves:
        writer = writer.option("overwriteSchema" if mode == "overwrite" else "mergeSchema", "true")
    writer.save(str(table_root))


# ---------------------------------------------------------------------------- reads


def read_table(
    spark: SparkSession,
    path: str | os.PathLike[str],
    *,
    version: int | None = None,
    engine: Engine = "delta-rs",
) -> DataFrame:
    """The table (at `version`, default latest) as a Spark DataFrame."""
    table_root = Path(path).resolve()
    if engine == "spark":
        if not _is_table(table_root):
            raise FileNotFoundError(
                f"No Delta table at {table_root} (has its asset been materialized?)"
            )
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(str(table_root))
    table = plain_snapshot(table_root, version)
    schema = spark_schema_of(table)
    files = table.file_uris()
    if not files:
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).parquet(*files)


def describe_table(
    path: str | os.PathLike[str], *, mode: str = "", schema_changed: bool = False
) -> TableWrite:
    """Version, row count, files and size of the table's latest snapshot (from the log only)."""
    table = DeltaTable(str(path))
    actions = pa.table(table.get_add_actions(flatten=True))
    rows = actions.column("num_records").to_pylist() if actions.num_rows else []
    if any(r is None for r in rows):
        raise ValueError(f"{path}: some files carry no numRecords statistics")
    return TableWrite(
        path=Path(path),
        version=table.version(),
        mode=mode,
        num_rows=sum(rows),
        num_files=actions.num_rows,
        size_bytes=sum(actions.column("size_bytes").to_pylist()) if actions.num_rows else 0,
        schema_changed=schema_changed,
    )


def table_history(path: str | os.PathLike[str], limit: int | None = None) -> list[dict[str, Any]]:
    """The commit log, newest first."""
    return DeltaTable(str(path)).history(limit)


def vacuum_table(
    path: str | os.PathLike[str], *, retention_hours: int = 168, dry_run: bool = False
) -> list[str]:
    """Delete orphan folders and the files that no version younger than `retention_hours`
    needs (time travel to older versions ends there). Returns what was (or would be)
    removed."""
    removed = [] if dry_run else remove_orphans(path)
    table = DeltaTable(str(path))
    settings = {"retention_hours": retention_hours, "enforce_retention_duration": False}
    stale = table.vacuum(dry_run=True, **settings)
    # delta-rs commits a vacuum even when it removes nothing: the version would move with
    # no change, which a reader watching versions (the app ratings sensor) takes for news.
    if dry_run or not stale:
        return removed + stale
    return removed + table.vacuum(dry_run=False, **settings)

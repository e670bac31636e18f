"""The Delta storage engine: commits, time travel, schema enforcement, atomicity, interop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import Row
from pyspark.sql import types as T

from cinematch_assets.storage.delta_reader import read_delta
from cinematch_assets.storage.delta_tables import (
    PENDING_DIR,
    SchemaMismatchError,
    describe_table,
    parquet_file_stats,
    read_table,
    remove_orphans,
    table_history,
    vacuum_table,
    write_table,
)
from cinematch_assets_tests.conftest import REPO_ROOT

SCHEMA = T.StructType(
    [
        T.StructField("userId", T.IntegerType()),
        T.StructField("title", T.StringType()),
        T.StructField("rating", T.DoubleType()),
        T.StructField("rated_at", T.TimestampType()),
        T.StructField("genres", T.ArrayType(T.StringType())),
    ]
)


def rows(n: int, offset: int = 0) -> list[tuple]:
    return [
        (
            i + offset,
            f"Movie {i + offset}",
            0.5 + (i % 10) / 2,
            datetime(2016, 1, 1, 12, 0, i % 60, tzinfo=UTC),
            ["Drama", "Comedy"] if i % 3 else [],
        )
        for i in range(n)
    ]


def test_write_creates_table_with_stats_and_reads_back(spark, tmp_path):
    path = tmp_path / "ratings"
    result = write_table(spark.createDataFrame(rows(50), SCHEMA), path)

    assert (result.version, result.num_rows) == (0, 50)
    assert result.num_files >= 1 and result.size_bytes > 0
    back = read_table(spark, path)
    assert back.schema == SCHEMA
    # PySpark hands timestamps back as naive local datetimes.
    expected = [(*r[:3], r[3].astimezone().replace(tzinfo=None), r[4]) for r in rows(50)]
    assert sorted(back.collect()) == sorted(Row(*r) for r in expected)

    # Every add action carries per-file statistics in the Delta log.
    log = (path / "_delta_log" / "00000000000000000000.json").read_text().splitlines()
    adds = [json.loads(line)["add"] for line in log if '"add"' in line]
    stats = [json.loads(a["stats"]) for a in adds]
    assert sum(s["numRecords"] for s in stats) == 50
    assert min(s["minValues"]["userId"] for s in stats) == 0
    assert max(s["maxValues"]["userId"] for s in stats) == 49
    assert all(s["nullCount"]["title"] == 0 for s in stats)
    assert all("genres" not in s["minValues"] for s in stats)  # nested: no min/max
    assert all(s["minValues"]["rated_at"].endswith("Z") for s in stats)
    # Spark's side files are not left in the table.
    leftovers = [p.name for p in path.rglob("*") if p.name.endswith(".crc") or p.name == "_SUCCESS"]
    assert leftovers == []
    assert not any((path / PENDING_DIR).iterdir())


def test_parquet_file_stats_from_footer(tmp_path):
    import pyarrow as pa

    table = pa.table(
        {
            "a": pa.array([3, None, 1], pa.int32()),
            "s": pa.array(["b", "a", "x" * 40]),  # longer than Delta keeps: no min/max
            "f": pa.array([1.5, float("nan"), 0.5]),
            "d": pa.array([datetime(2020, 1, 1).date()] * 3),
            "inf": pa.array([float("-inf"), 0.0, 1.0]),  # JSON has no infinity: left out
        }
    )
    pq.write_table(table, tmp_path / "f.parquet")
    stats = parquet_file_stats(pq.ParquetFile(tmp_path / "f.parquet").metadata)
    assert stats["numRecords"] == 3
    assert stats["minValues"]["a"] == 1 and stats["maxValues"]["a"] == 3
    assert stats["nullCount"] == {"a": 1, "s": 0, "f": 0, "d": 0, "inf": 0}
    assert "s" not in stats["minValues"] and "inf" not in stats["minValues"]
    assert stats["minValues"]["d"] == "2020-01-01"


def test_overwrite_append_and_time_travel(spark, tmp_path):
    path = tmp_path / "t"
    write_table(spark.createDataFrame(rows(10), SCHEMA), path)
    write_table(spark.createDataFrame(rows(5, offset=100), SCHEMA), path)  # overwrite
    write_table(spark.createDataFrame(rows(3, offset=200), SCHEMA), path, mode="append")

    assert describe_table(path).version == 2
    assert read_table(spark, path, version=0).count() == 10
    assert {r.userId for r in read_table(spark, path, version=1).collect()} == set(range(100, 105))
    latest = read_table(spark, path)
    assert latest.count() == 8
    assert describe_table(path).num_rows == 8
    history = table_history(path)
    assert [h["version"] for h in history] == [2, 1, 0]
    assert all(h.get("engine") == "cinematch" for h in history)


def test_schema_enforcement_gives_a_clear_error(spark, tmp_path):
    path = tmp_path / "t"
    write_table(spark.createDataFrame(rows(4), SCHEMA), path)
    renamed = spark.createDataFrame(rows(2), SCHEMA).withColumnRenamed("rating", "stars")
    retyped = spark.createDataFrame(rows(2), SCHEMA).withColumn(
        "userId", __import__("pyspark.sql.functions", fromlist=["col"]).col("userId").cast("string")
    )

    with pytest.raises(SchemaMismatchError) as err:
        write_table(renamed, path, mode="append")
    message = str(err.value)
    assert "missing column 'rating'" in message and "unexpected column 'stars'" in message
    assert "allow_schema_evolution" in message
    with pytest.raises(SchemaMismatchError, match="'userId' changes type integer -> string"):
        write_table(retyped, path)
    # Nothing was written by the refused writes.
    assert describe_table(path).version == 0
    assert read_table(spark, path).count() == 4


def test_schema_evolution_when_allowed(spark, tmp_path):
    from pyspark.sql import functions as F

    path = tmp_path / "t"
    base = spark.createDataFrame(rows(4), SCHEMA)
    write_table(base, path)
    wider = base.withColumn("weight", F.lit(0.5))
    result = write_table(wider, path, mode="append", allow_schema_evolution=True)
    assert result.schema_changed
    back = read_table(spark, path)
    assert "weight" in back.columns
    assert back.filter(F.col("weight").isNull()).count() == 4  # old rows read it as null
    assert back.count() == 8

    narrowed = base.select("userId", "title")
    write_table(narrowed, path, allow_schema_evolution=True)
    assert read_table(spark, path).columns == ["userId", "title"]


def test_empty_table_keeps_its_schema_and_opens_outside_spark(spark, tmp_path):
    path = tmp_path / "empty"
    result = write_table(spark.createDataFrame([], SCHEMA), path)
    assert (result.num_rows, result.num_files) == (0, 0)
    back = read_table(spark, path)
    assert back.schema == SCHEMA and back.count() == 0

    arrow = read_delta(path)
    assert arrow.num_rows == 0
    assert arrow.schema.names == ["userId", "title", "rating", "rated_at", "genres"]


def test_tables_open_with_delta_rs_and_pyarrow(spark, tmp_path):
    path = tmp_path / "interop"
    write_table(spark.createDataFrame(rows(20), SCHEMA), path)
    arrow = read_delta(path)
    assert arrow.num_rows == 20
    assert str(arrow.schema.field("rated_at").type) == "timestamp[us, tz=UTC]"
    assert sorted(arrow.column("userId").to_pylist()) == list(range(20))
    first = arrow.sort_by("userId").slice(0, 2).to_pylist()
    assert first[1]["genres"] == ["Drama", "Comedy"] and first[0]["genres"] == []


def test_read_missing_table_says_so(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="materialized"):
        read_table(spark, tmp_path / "nothing")


def test_orphans_of_live_writers_are_kept(tmp_path):
    table = tmp_path / "t"
    (table / PENDING_DIR).mkdir(parents=True)
    (table / "part-live").mkdir()
    marker = {"host": os.uname().nodename, "pid": os.getpid(), "started": time.time()}
    (table / PENDING_DIR / "part-live.json").write_text(json.dumps(marker))
    assert remove_orphans(table) == []
    assert (table / "part-live").is_dir()


def test_an_unreadable_marker_is_not_taken_for_a_dead_writer(tmp_path):
    """Half a marker (or one in another format) may belong to a live writer: its folder
    stays until the marker is older than a foreign writer's timeout."""
    table = tmp_path / "t"
    (table / PENDING_DIR).mkdir(parents=True)
    (table / "part-half").mkdir()
    marker = table / PENDING_DIR / "part-half.json"
    marker.write_text('{"host": "some')
    assert remove_orphans(table) == []
    assert (table / "part-half").is_dir() and marker.exists()
    old = time.time() - 25 * 3600
    os.utime(marker, (old, old))
    assert remove_orphans(table) == ["part-half"]
    assert not (table / "part-half").exists() and not marker.exists()


def test_a_writers_marker_appears_whole(spark, tmp_path, monkeypatch):
    """The marker is written under a temporary name and renamed: never half a file."""
    from cinematch_assets.storage import delta_tables

    written = []
    real = delta_tables.write_atomic

    def spy(path, data):
        written.append((Path(path).parent.name, json.loads(data)))
        return real(path, data)

    monkeypatch.setattr(delta_tables, "write_atomic", spy)
    write_table(spark.range(3), tmp_path / "t")
    assert [folder for folder, _ in written] == [PENDING_DIR]
    assert written[0][1]["pid"] == os.getpid()


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cinematch_assets.storage import delta_tables
    from cinematch_assets.resources.spark import SparkResource

    spark = SparkResource(
        master="local[1]", remote="", driver_memory="1g", shuffle_partitions=1, ui_enabled=False
    ).spark_session
    path, ready = Path(sys.argv[1]), Path(sys.argv[2])

    def stall_before_commit(*args, **kwargs):
        ready.write_text("parquet written")
        time.sleep(600)

    delta_tables._commit = stall_before_commit
    df = spark.createDataFrame([(i, f"new {i}") for i in range(1000)], "id int, name string")
    delta_tables.write_table(df, path)
    """
)


def test_writer_killed_before_commit_leaves_previous_version(spark, tmp_path):
    path = tmp_path / "atomic"
    before = spark.createDataFrame([(i, f"old {i}") for i in range(7)], "id int, name string")
    write_table(before, path)
    ready = tmp_path / "ready"

    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path), str(ready)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 180
    while not ready.exists():
        if writer.poll() is not None:
            pytest.fail(f"writer exited early: {writer.stderr.read().decode()[-2000:]}")
        assert time.time() < deadline, "writer never reached the commit"
        time.sleep(0.2)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()

    orphans = [p for p in path.glob("part-*") if p.is_dir()]
    assert len(orphans) == 2  # the committed folder and the killed writer's
    assert any(p.suffix == ".parquet" for p in orphans[0].parent.rglob("*"))
    # The table is still at the previous version with the previous rows.
    assert describe_table(path).version == 0
    assert sorted(r.name for r in read_table(spark, path).collect()) == sorted(
        f"old {i}" for i in range(7)
    )
    assert read_delta(path).num_rows == 7

    # The next write succeeds and removes the dead writer's folder.
    after = spark.createDataFrame([(1, "next")], "id int, name string")
    result = write_table(after, path)
    assert (result.version, result.num_rows) == (1, 1)
    referenced = {Path(uri).parent.name for uri in DeltaTable(str(path)).file_uris()}
    referenced |= {Path(u).parent.name for u in DeltaTable(str(path), version=0).file_uris()}
    assert {p.name for p in path.glob("part-*")} == referenced
    assert not any((path / PENDING_DIR).iterdir())


def test_vacuum_removes_unreferenced_files_and_keeps_the_latest(spark, tmp_path):
    path = tmp_path / "t"
    write_table(spark.createDataFrame(rows(6), SCHEMA), path)
    old_files = DeltaTable(str(path), version=0).file_uris()
    write_table(spark.createDataFrame(rows(2, offset=50), SCHEMA), path)

    assert vacuum_table(path) == []  # everything is younger than the default week
    would = vacuum_table(path, retention_hours=0, dry_run=True)
    assert len(would) == len(old_files) and all(Path(f).exists() for f in old_files)
    vacuum_table(path, retention_hours=0)
    assert not any(Path(f).exists() for f in old_files)
    assert read_table(spark, path).count() == 2

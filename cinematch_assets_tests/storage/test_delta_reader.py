"""The Spark-free Arrow reader of the lake's tables."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from cinematch_assets.storage.delta_reader import (
    UnsupportedTableError,
    read_delta,
    read_delta_since,
)
from cinematch_assets.storage.delta_tables import read_table, write_table
from cinematch_assets_tests.conftest import REPO_ROOT

ROWS = "userId int, title string, rated_at timestamp, genres array<string>"


def _rows(n: int, offset: int = 0) -> list[tuple]:
    at = datetime(2016, 1, 1, tzinfo=UTC)
    return [(i + offset, f"Movie {i + offset}", at, ["Drama"] * (i % 2)) for i in range(n)]


@pytest.fixture(scope="module")
def committed(spark, tmp_path_factory):
    """A table with two versions written by the project's writer: 30 rows, then 5."""
    path = tmp_path_factory.mktemp("reader") / "movies"
    write_table(spark.createDataFrame(_rows(30), ROWS), path)
    write_table(spark.createDataFrame(_rows(5, offset=100), ROWS), path)
    return path


def test_reads_the_latest_snapshot_with_the_table_schema(committed):
    table = read_delta(committed)
    assert table.num_rows == 5
    assert sorted(table.column("userId").to_pylist()) == list(range(100, 105))
    assert table.schema.names == ["userId", "title", "rated_at", "genres"]
    assert table.schema.field("rated_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("genres").type.value_type == pa.string()


def test_time_travel_and_column_selection(committed):
    first = read_delta(committed, version=0, columns=["userId"])
    assert first.schema.names == ["userId"]
    assert sorted(first.column("userId").to_pylist()) == list(range(30))


def test_empty_table_keeps_its_schema(spark, tmp_path):
    write_table(spark.createDataFrame([], ROWS), tmp_path / "empty")
    table = read_delta(tmp_path / "empty")
    assert table.num_rows == 0 and table.schema.names == ["userId", "title", "rated_at", "genres"]


def test_columns_added_by_an_append_read_as_null_in_older_files(spark, tmp_path):
    path = tmp_path / "evolving"
    write_table(spark.createDataFrame([(1,)], "id int"), path)
    newer = spark.createDataFrame([(2, "b")], "id int, name string")
    write_table(newer, path, mode="append", allow_schema_evolution=True)
    assert sorted(read_delta(path).to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "name": None},
        {"id": 2, "name": "b"},
    ]


def test_missing_table_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="materialized"):
        read_delta(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"configuration": {"delta.enableDeletionVectors": "true"}}, "deletion vectors"),
        ({"configuration": {"delta.columnMapping.mode": "name"}}, "column mapping"),
        ({"partition_by": ["part"]}, "partition columns (part"),
    ],
)
def test_tables_a_file_list_cannot_honour_are_refused(spark, tmp_path, options, named):
    """Features this project's writer never uses, in tables written by another writer:
    both readers refuse them instead of returning wrong rows."""
    path = tmp_path / "foreign"
    write_deltalake(str(path), pa.table({"id": [1, 2], "part": ["a", "b"]}), **options)
    with pytest.raises(UnsupportedTableError, match=named.replace("(", r"\(")):
        read_delta(path)
    with pytest.raises(UnsupportedTableError, match="full Delta reader"):
        read_table(spark, path)


README_READ = (
    "from cinematch_assets.storage.delta_reader import read_delta; "
    "print(read_delta({path!r}).num_rows)"
)


def test_reading_a_table_then_exiting_is_clean_every_time(committed):
    """The README's read, in a fresh interpreter each time, exits 0 with the right count:
    deltalake's own Arrow path aborts at exit in about half of such runs."""
    outcomes = [
        subprocess.run(
            [sys.executable, "-c", README_READ.format(path=str(committed))],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        for _ in range(8)
    ]
    assert [(run.returncode, run.stdout.strip()) for run in outcomes] == [(0, "5")] * 8, [
        run.stderr[-500:] for run in outcomes if run.returncode
    ]


def test_the_rows_appended_since_a_version(tmp_path):
    """An append-only table read from a version on: the rows of later commits only; all of
    them from None or from a version the log no longer has."""
    path = tmp_path / "log"
    for start in (0, 10, 20):
        write_deltalake(str(path), pa.table({"n": list(range(start, start + 10))}), mode="append")
    version, since = read_delta_since(path, 0)
    assert version == 2 and sorted(since.column("n").to_pylist()) == list(range(10, 30))
    assert read_delta_since(path, 2)[1].num_rows == 0
    assert read_delta_since(path, None)[1].num_rows == 30
    assert read_delta_since(path, 7)[1].num_rows == 30

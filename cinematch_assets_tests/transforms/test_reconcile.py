"""Rows kept + rows dropped per reason: the mechanism every layer uses to leave rows out."""

from __future__ import annotations

from pyspark.sql import functions as F

from cinematch_assets.transforms.reconcile import (
    KEPT,
    REASON,
    first_reason,
    kept_rows,
    reason_counts,
    reconciliation_metadata,
)


def test_first_reason_wins_and_null_conditions_keep_the_row(spark):
    df = spark.createDataFrame([(1,), (5,), (12,), (None,)], "x int")
    annotated = df.withColumn(
        REASON,
        first_reason((F.col("x") > 10, "too big"), (F.col("x") > 3, "big")),
    )
    assert {r.x: r[REASON] for r in annotated.collect()} == {
        1: None,
        5: "big",
        12: "too big",  # both hold: the first listed wins
        None: None,  # a null condition is not a reason to drop
    }
    assert reason_counts(annotated) == {KEPT: 2, "big": 1, "too big": 1}
    kept = kept_rows(annotated)
    assert kept.columns == ["x"]
    assert sorted(r.x for r in kept.collect() if r.x is not None) == [1]


def test_counts_include_kept_even_when_nothing_is_kept(spark):
    df = spark.createDataFrame([(1, "gone")], f"x int, {REASON} string")
    assert reason_counts(df) == {KEPT: 0, "gone": 1}


def test_metadata_balances_the_books():
    meta = reconciliation_metadata({KEPT: 7, "a": 2, "b": 1})
    assert meta == {
        "input_rows": 10,
        "kept_rows": 7,
        "dropped_rows": 3,
        "dropped_by_reason": {"a": 2, "b": 1},
    }

"""Data-quality measurements on DataFrames; the asset checks turn them into pass/fail."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cinematch_assets.conventions import MAX_RATING, MIN_RATING


def null_counts(df: DataFrame, columns: Sequence[str]) -> dict[str, int]:
    """Nulls per column, in one pass."""
    row = df.select(*[F.count_if(F.col(c).isNull()).alias(c) for c in columns]).first()
    return {c: int(row[c]) for c in columns}


def is_half_star(rating: Column) -> Column:
    """True for 0.5, 1.0, ..., 5.0 (MovieLens' half-star grid); False for anything else,
    null and NaN included."""
    on_grid = (
        rating.between(MIN_RATING, MAX_RATING)
        & ~F.isnan(rating)
        & ((rating * 2) == F.floor(rating * 2))
    )
    return F.coalesce(on_grid, F.lit(False))


def off_grid_count(df: DataFrame, column: str = "rating") -> int:
    """Ratings that are null, NaN, outside [0.5, 5.0] or not on the half-star grid."""
    return df.filter(~is_half_star(F.col(column))).count()


def duplicate_key_count(df: DataFrame, keys: Sequence[str]) -> int:
    """Rows beyond the first for each key (0 when the key is unique)."""
    return df.count() - df.select(*keys).distinct().count()


def missing_reference_count(df: DataFrame, reference: DataFrame, key: str) -> int:
    """Rows of `df` whose `key` does not exist in `reference`."""
    return df.join(reference.select(key).distinct(), on=key, how="left_anti").count()


def partition_counts(
    parts: dict[str, DataFrame], whole: DataFrame, keys: Sequence[str]
) -> dict[str, int]:
    """Do `parts` (e.g. train and test) partition `whole` by `keys`? In one shuffle (every
    row of every table tagged by its table, counted per key): each table's rows, the rows
    of a part whose key another part holds too (`in_<a>_and_<b>`), the rows of `whole`
    whose key no part holds (`<whole>_but_missing`) and the rows of the parts whose key
    `whole` lacks (`not_in_whole`)."""
    names = [*parts, "whole"]
    tagged = [
        table.select(*keys, F.lit(name).alias("_table"))
        for name, table in (*parts.items(), ("whole", whole))
    ]
    union = tagged[0]
    for table in tagged[1:]:
        union = union.unionByName(table)
    per_key = union.groupBy(*keys).agg(
        *[F.count_if(F.col("_table") == name).alias(name) for name in names]
    )
    in_parts = sum((F.col(name) for name in parts), F.lit(0))
    pairs = [(a, b) for i, a in enumerate(parts) for b in list(parts)[i + 1 :]]
    row = per_key.agg(
        *[F.sum(name).alias(f"{name}_rows") for name in names],
        *[F.sum(F.when(F.col(b) > 0, F.col(a)).otherwise(0)).alias(f"in_{a}_and_{b}")
          for a, b in pairs],
        F.sum(F.when(in_parts == 0, F.col("whole")).otherwise(0)).alias("whole_but_missing"),
        F.sum(F.when(F.col("whole") == 0, in_parts).otherwise(0)).alias("not_in_whole"),
    ).first()  # fmt: skip
    return {name: int(row[name] or 0) for name in row.asDict()}

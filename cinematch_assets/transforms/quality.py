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

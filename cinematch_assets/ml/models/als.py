"""Spark MLlib ALS, fitted the same way for both models, and its factors as DataFrames."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cinematch_assets.ml.models.fits import count_fit

FACTORS = "features"
# ALS checkpoints its item factors (into spark.checkpoint.dir) every this many iterations.
# Between checkpoints each iteration deepens the lineage every task serializes
# recursively: with Spark's default of 10 a fit needs 640-768 KB of the default 1 MB
# thread stack, with 5 under 512 KB. The factors are the same.
CHECKPOINT_INTERVAL = 5


def empty_factors() -> Column:
    """Factors of rank 0: a model of biases alone (a baseline) has the same shape."""
    return F.array().cast("array<float>")


def als_blocks(df: DataFrame) -> int:
    """ALS user and item blocks: one per shuffle partition. Spark's default of 10 makes
    hundreds of tiny tasks per fit on small data; on a cluster, shuffle partitions are
    sized to its cores anyway."""
    return max(1, int(df.sparkSession.conf.get("spark.sql.shuffle.partitions")))


def fit_als(
    ratings: DataFrame,
    *,
    rating_col: str,
    rank: int,
    reg_param: float,
    max_iter: int,
    seed: int,
    implicit: bool = False,
    alpha: float = 1.0,
    nonnegative: bool = False,
) -> ALSModel:
    """ALS on (userId, movieId, `rating_col`). Implicit: `rating_col` is the confidence
    source, c = 1 + alpha * value (Hu, Koren & Volinsky 2008)."""
    blocks = als_blocks(ratings)
    count_fit("als")
    return ALS(
        userCol="userId",
        itemCol="movieId",
        ratingCol=rating_col,
        rank=rank,
        regParam=reg_param,
        maxIter=max_iter,
        implicitPrefs=implicit,
        alpha=alpha,
        nonnegative=nonnegative,
        seed=seed,
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        checkpointInterval=CHECKPOINT_INTERVAL,
        coldStartStrategy="nan",
    ).fit(ratings.select("userId", "movieId", rating_col))


def factor_tables(model: ALSModel) -> tuple[DataFrame, DataFrame]:
    """(userId, features) and (movieId, features) of a fitted model."""
    users = model.userFactors.select(F.col("id").alias("userId"), F.col(FACTORS))
    items = model.itemFactors.select(F.col("id").alias("movieId"), F.col(FACTORS))
    return users, items


def dot(a: Column, b: Column) -> Column:
    """Row-wise dot product of two factor array columns; null where either is null (0 for
    rank-0 arrays). Vectorized in numpy: Spark's higher-order array functions are
    interpreted row by row, several times slower at rank 50."""
    return F.pandas_udf(_dot, "double")(a, b)


def _dot(a: pd.Series, b: pd.Series) -> pd.Series:
    out = np.full(len(a), np.nan)
    present = (a.notna() & b.notna()).to_numpy()
    if present.any():
        left = np.stack(a[present].to_numpy())
        right = np.stack(b[present].to_numpy())
        out[present] = np.einsum("ij,ij->i", left, right, dtype=np.float64)
    return pd.Series(out).where(present, None)

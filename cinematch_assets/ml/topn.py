"""Top-N lists for many users at once, distributed: blocks of users scored against the
item factors with numpy inside `mapInPandas`.

The item factors are collected to the driver once (movies x rank floats: 22 MB for 86k
movies at rank 64) and shipped with the function (Spark broadcasts a large function
itself); users never leave the executors. Movies a user already rated are excluded,
which `ALSModel.recommendForAllUsers` cannot do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cinematch_assets.ml.scoring import positions_in, top_n

RECOMMENDATIONS_SCHEMA = "userId int, rank int, movieId int, score float"


def item_matrix(
    items: DataFrame, *, bias: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`items` (movieId, features[, bias]) on the driver: sorted ids, factor matrix, bias."""
    columns = ["movieId", "features", *([bias] if bias else [])]
    rows = items.select(*columns).orderBy("movieId").toPandas()
    ids = rows["movieId"].to_numpy(dtype=np.int64)
    rank = len(rows["features"].iloc[0]) if len(rows) else 0
    matrix = (
        np.stack(rows["features"].to_numpy()).astype(np.float32)
        if len(rows)
        else np.zeros((0, rank), np.float32)
    )
    return ids, matrix, rows[bias].to_numpy(dtype=np.float32) if bias else None


def recommend(
    users: DataFrame,
    items: DataFrame,
    n: int,
    *,
    exclude: DataFrame | None = None,
    item_bias: str | None = None,
) -> DataFrame:
    """The `n` best movies for every user of `users` (userId, features) by
    `features . item features (+ item_bias)`, never one of the user's `exclude`
    (userId, movieId) pairs. Returns (userId, rank 1..n, movieId, score); a user with
    fewer than `n` candidates gets fewer rows."""
    ids, matrix, bias = item_matrix(items, bias=item_bias)
    if exclude is not None:
        rated = exclude.groupBy("userId").agg(F.collect_list("movieId").alias("_exclude"))
        users = users.join(rated, "userId", "left")
    else:
        users = users.withColumn("_exclude", F.lit(None).cast("array<int>"))
    rank = matrix.shape[1]

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            vectors = (
                np.stack(batch["features"].to_numpy()).astype(np.float32)
                if len(batch) and rank
                else np.zeros((len(batch), rank), np.float32)
            )
            excluded = [positions_in(ids, rated) for rated in batch["_exclude"]]
            positions, scores = top_n(vectors, matrix, n, item_bias=bias, exclude=excluded)
            found = positions >= 0
            yield pd.DataFrame(
                {
                    "userId": np.repeat(batch["userId"].to_numpy(), positions.shape[1])[
                        found.ravel()
                    ],
                    "rank": np.tile(np.arange(1, positions.shape[1] + 1), len(batch))[
                        found.ravel()
                    ],
                    "movieId": ids[positions[found]],
                    "score": scores[found],
                }
            )

    return users.select("userId", "features", "_exclude").mapInPandas(score, RECOMMENDATIONS_SCHEMA)


class FactorModel(Protocol):
    """A fitted model as tables: `users` (userId, features) and `items` (movieId,
    features, ...), as both the rating and the ranking model have them."""

    @property
    def users(self) -> DataFrame: ...

    @property
    def items(self) -> DataFrame: ...


def recommend_unseen(
    model: FactorModel,
    users: DataFrame,
    seen: DataFrame,
    n: int,
    *,
    item_bias: str | None = None,
) -> DataFrame:
    """Top-n for `users` (userId) among the model's movies, none of them in `seen`
    (userId, movieId)."""
    return recommend(
        model.users.join(users.select("userId"), "userId"),
        model.items,
        n,
        exclude=seen,
        item_bias=item_bias,
    )

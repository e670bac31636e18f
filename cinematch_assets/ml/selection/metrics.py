"""Evaluation metrics as DataFrame code (no RDDs: they run over Spark Connect too).

Regression: RMSE, MSE and MAE of predicted stars. Ranking, for top-k lists against the
relevant items of each user (binary relevance): precision@k, recall@k, NDCG@k and
MAP@k with Spark's `RankingMetrics` definitions (MAP@k divides by min(relevant, k)),
averaged over every user who has at least one relevant item, lists or not.
"""

from __future__ import annotations

import numpy as np
from pyspark.sql import Column, DataFrame, Row, Window
from pyspark.sql import functions as F

from cinematch_assets.conventions import LIKED_STARS

RANKING_METRICS = ("precision", "recall", "ndcg", "map")
Z95 = 1.959964  # a 95% interval is the mean +- this many standard errors


def relevant_rows(rows: DataFrame) -> DataFrame:
    """(userId, movieId) of the `rows` the user liked (LIKED_STARS or more): a hit if
    it was on the list."""
    return rows.filter(F.col("rating") >= LIKED_STARS).select("userId", "movieId")


def _regression_columns(label: str, prediction: str) -> list[Column]:
    error = F.col(prediction) - F.col(label)
    return [
        F.avg(error * error).alias("mse"),
        F.avg(F.abs(error)).alias("mae"),
        F.count("*").alias("rows"),
    ]


def _regression_result(row: Row) -> dict[str, float]:
    mse = float(row["mse"]) if row["mse"] is not None else float("nan")
    return {
        "rmse": mse**0.5,
        "mse": mse,
        "mae": float(row["mae"]) if row["mae"] is not None else float("nan"),
        "rows": int(row["rows"]),
    }


def regression_metrics(
    df: DataFrame, *, label: str = "rating", prediction: str = "prediction"
) -> dict[str, float]:
    """RMSE, MSE and MAE over every row of `df`, and the number of rows."""
    return _regression_result(df.agg(*_regression_columns(label, prediction)).first())


def regression_metrics_by(
    df: DataFrame,
    by: str,
    *,
    label: str = "rating",
    prediction: str = "prediction",
    extra: dict[str, Column] | None = None,
) -> dict[str, dict[str, float]]:
    """`regression_metrics` per value of the `by` column, and `extra` aggregates, in one
    pass."""
    extra = extra or {}
    aggregates = [*_regression_columns(label, prediction)]
    aggregates += [column.alias(name) for name, column in extra.items()]
    rows = df.groupBy(by).agg(*aggregates).collect()
    return {
        row[by]: _regression_result(row) | {name: float(row[name]) for name in extra}
        for row in rows
    }


def _discount(rank: Column) -> Column:
    """1 / log2(rank + 1): the DCG weight of a hit at 1-based `rank`."""
    return F.lit(1.0) / F.log2(rank + F.lit(1))


def ranking_metrics(
    recommendations: DataFrame,
    relevant: DataFrame,
    *,
    k: int,
    user: str = "userId",
    interval: bool = False,
) -> dict[str, float]:
    """precision@k, recall@k, NDCG@k and MAP@k of `recommendations` (user, rank 1..,
    movieId) against `relevant` (user, movieId), averaged over the users of `relevant`;
    a user without a list scores 0. Also `users`: how many were averaged; with
    `interval`, `<metric>_ci`: the half-width of each mean's 95% confidence interval over
    users (normal approximation, 1.96 standard errors)."""
    keyed = recommendations.withColumn("_list", F.lit(""))
    return ranking_metrics_by(keyed, relevant, k=k, by="_list", user=user, interval=interval)[""]


def ranking_metrics_by(
    recommendations: DataFrame,
    relevant: DataFrame,
    *,
    k: int,
    by: str,
    user: str = "userId",
    interval: bool = False,
) -> dict[str, dict[str, float]]:
    """`ranking_metrics` of each list kind (the `by` column) at once, in one pass."""
    scores = _user_scores(recommendations, relevant, k=k, by=by, user=user)
    spreads = [F.stddev_samp(name).alias(f"{name}_sd") for name in RANKING_METRICS]
    rows = (
        scores.groupBy(by)
        .agg(
            *[F.avg(name).alias(name) for name in RANKING_METRICS],
            *(spreads if interval else []),
            F.count("*").alias("users"),
        )
        .collect()
    )

    def half_width(row: Row, name: str) -> float:
        return Z95 * float(row[f"{name}_sd"] or 0.0) / max(int(row["users"]), 1) ** 0.5

    return {
        row[by]: {name: float(row[name] or 0.0) for name in RANKING_METRICS}
        | ({f"{name}_ci": half_width(row, name) for name in RANKING_METRICS} if interval else {})
        | {"users": int(row["users"])}
        for row in rows
    }


def ndcg_per_user(
    recommendations: DataFrame, relevant: DataFrame, *, k: int, user: str = "userId"
) -> np.ndarray:
    """Each user of `relevant`'s NDCG@k (0 without a list), in ascending user order: what
    paired comparisons of two orders on the same users read."""
    keyed = recommendations.withColumn("_list", F.lit(""))
    scores = _user_scores(keyed, relevant, k=k, by="_list", user=user)
    rows = scores.select(user, "ndcg").orderBy(user).toArrow()
    return rows.column("ndcg").to_numpy(zero_copy_only=False).astype(np.float64)


def _user_scores(
    recommendations: DataFrame, relevant: DataFrame, *, k: int, by: str, user: str
) -> DataFrame:
    """Per list kind and user of `relevant`: precision, recall, NDCG and MAP at k."""
    kinds = recommendations.select(by).distinct()
    per_user_relevant = (
        relevant.groupBy(user).agg(F.count("*").alias("n_relevant")).crossJoin(kinds)
    )
    hits = (
        recommendations.filter(F.col("rank") <= k)
        .join(relevant, [user, "movieId"], "left_semi")
        .withColumn(
            "hits_so_far", F.row_number().over(Window.partitionBy(by, user).orderBy("rank"))
        )
        .groupBy(by, user)
        .agg(
            F.count("*").alias("hits"),
            F.sum(_discount(F.col("rank"))).alias("dcg"),
            F.sum(F.col("hits_so_far") / F.col("rank")).alias("precision_sum"),
        )
    )
    ideal_hits = F.least(F.col("n_relevant"), F.lit(k))
    ideal_dcg = F.aggregate(
        F.sequence(F.lit(1), ideal_hits), F.lit(0.0), lambda acc, r: acc + _discount(r)
    )
    return (
        per_user_relevant.join(hits, [by, user], "left")
        .fillna(0, subset=["hits", "dcg", "precision_sum"])
        .select(
            by,
            user,
            (F.col("hits") / F.lit(k)).alias("precision"),
            (F.col("hits") / F.col("n_relevant")).alias("recall"),
            (F.col("dcg") / ideal_dcg).alias("ndcg"),
            (F.col("precision_sum") / ideal_hits).alias("map"),
        )
    )


def exposure_metrics_by(
    recommendations: DataFrame, train: DataFrame, *, k: int, by: str, floor: float = 3.0
) -> dict[str, dict[str, float]]:
    """How much each list kind (the `by` column) leans on the same movies, over the top-k
    of its lists: `coverage` (share of the training catalog shown to anyone), `novelty`
    (mean self-information -log2 of a shown movie's share of training ratings), `gini`
    (of exposure over the training catalog, unshown movies included: 0 even, 1 one movie
    for all) and `below_floor` (share of entries predicted below `floor` stars, where the
    lists carry stars)."""
    counts = train.groupBy("movieId").agg(F.count("*").alias("ratings"))
    catalog = counts.count()
    total = counts.agg(F.sum("ratings")).first()[0] or 1
    top = recommendations.filter(F.col("rank") <= k)
    entries = (
        top.join(counts, "movieId", "left")
        .groupBy(by)
        .agg(
            F.avg(-F.log2(F.coalesce(F.col("ratings"), F.lit(1)) / F.lit(total))).alias("novelty"),
            F.avg((F.col("pred_rating") < floor).cast("double")).alias("below_floor"),
        )
    )
    exposure = top.groupBy(by, "movieId").count().toPandas()
    result = {}
    for row in entries.collect():
        shown = np.sort(exposure.loc[exposure[by] == row[by], "count"].to_numpy(np.float64))
        result[row[by]] = {
            "coverage": len(shown) / catalog if catalog else 0.0,
            "novelty": float(row["novelty"]),
            "gini": gini(np.concatenate([np.zeros(max(catalog - len(shown), 0)), shown])),
            "below_floor": None if row["below_floor"] is None else float(row["below_floor"]),
        }
    return result


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (sorted ascending)."""
    n, total = len(counts), counts.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(((2 * ranks - n - 1) * counts).sum() / (n * total))

"""Each model's own search on validation data (never the test split): the bias
baseline's damping, the rating model's ALS settings by RMSE, the ranking model's and
EASE's by NDCG@k against the most-popular baseline on the same users. A search that runs
on one split keeps its best fit for the run (`fits.keep`): the champion scores its
candidates on that very split and the final fit may be the same one."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cinematch_assets.ml.lists.recommend import ease_ranker, most_popular, recommend, unseen_lists
from cinematch_assets.ml.models.ease import EaseModel, EaseParams, ease_key, ease_pairs, fit_ease
from cinematch_assets.ml.models.fits import FitKey, fit_key, keep
from cinematch_assets.ml.models.ranking import RankingModel, fit_ranking_model
from cinematch_assets.ml.models.rating import (
    BiasGrid,
    RatingModel,
    RatingVariant,
    cached,
    clip_stars,
    fit_bias_grid,
    fit_biases,
    fit_rating_model,
    predict,
    rating_key,
)
from cinematch_assets.ml.selection.metrics import (
    ndcg_per_user,
    ranking_metrics,
    relevant_rows,
)
from cinematch_assets.ml.selection.tuning import (
    Evidence,
    Score,
    Split,
    TuningResult,
    grid_search,
    tuning_result,
)


def rating_score(model: RatingModel, rows: DataFrame, *, fallback: RatingModel | None) -> Score:
    """RMSE on `rows` with each row's squared error, in (userId, movieId) order: what a
    paired comparison of two settings reads."""
    error = F.col("prediction") - F.col("rating")
    squared = (
        predict(model, rows, fallback=fallback)
        .select("userId", "movieId", (error * error).alias("squared"))
        .orderBy("userId", "movieId")
        .toArrow()
        .column("squared")
        .to_numpy()
    )
    return Score(math.sqrt(squared.mean()) if len(squared) else float("nan"), squared)


def ranking_score(lists: DataFrame, relevant: DataFrame, *, k: int) -> Score:
    """NDCG@k of `lists` with each user's, in user order (paired comparisons)."""
    per_user = ndcg_per_user(lists, relevant, k=k)
    return Score(float(per_user.mean()) if len(per_user) else 0.0, per_user)


def als_cost(params: dict[str, Any]) -> float:
    """What an ALS fit costs, relatively: each iteration solves a rank x rank system per
    user and movie (rank^2 to build, rank^3 to solve, the building dominating at these
    ranks), so rank^2 x iterations. Only the order matters."""
    return params["rank"] ** 2 * params.get("max_iter", 10) / 1e4


def bias_grid_rmse(grid: BiasGrid, rows: DataFrame) -> list[float]:
    """RMSE on `rows` of every setting of `grid`, in one Spark job: a user or movie the
    setting has no bias for adds 0, as `predict` without a fallback."""
    spark = rows.sparkSession
    n = len(grid.settings)
    users = grid.users.rename(columns={f"b{i}": f"_u{i}" for i in range(n)})
    items = grid.items.rename(columns={f"b{i}": f"_m{i}" for i in range(n)})
    joined = rows.join(
        F.broadcast(spark.createDataFrame(users.astype({"userId": "int32"}))), "userId", "left"
    ).join(
        F.broadcast(spark.createDataFrame(items.astype({"movieId": "int32"}))), "movieId", "left"
    )
    errors = [
        clip_stars(
            F.lit(mean) + F.coalesce(F.col(f"_u{i}"), F.lit(0.0))
            + F.coalesce(F.col(f"_m{i}"), F.lit(0.0))
        ) - F.col("rating")
        for i, mean in enumerate(grid.global_means)
    ]  # fmt: skip
    row = joined.agg(*[F.avg(error * error) for error in errors]).first()
    return [math.sqrt(row[i]) for i in range(n)]


def tune_biases(
    splits: Sequence[Split], grid: Sequence[dict[str, Any]], *, log: Callable[[str], object]
) -> TuningResult:
    """Damping and decay weighting of the bias baseline, by RMSE on the validation parts:
    every combination of a split fitted in one pass (`fit_bias_grid`) and scored in one
    job, so a combination's seconds are its share of the split's."""
    settings = [(params["damping"], params["decay_weighted"]) for params in grid]
    values = [[0.0] * len(splits) for _ in grid]
    seconds = [0.0] * len(grid)
    for s, (train, validation) in enumerate(splits):
        started = time.perf_counter()
        rmses = bias_grid_rmse(fit_bias_grid(train, settings), validation)
        spent = time.perf_counter() - started
        for c, value in enumerate(rmses):
            values[c][s] = value
            seconds[c] += spent / len(grid)
        log(f"bias grid, split {s + 1}/{len(splits)}: {len(grid)} settings in {spent:.1f} s")
    return tuning_result(grid, values, seconds, metric="rmse", lower_is_better=True)


def tune_rating_model(
    splits: Sequence[Split],
    grid: Sequence[dict[str, Any]],
    *,
    variant: RatingVariant,
    bias_params: dict[str, Any],
    seed: int,
    parallelism: int,
    log: Callable[[str], object],
    tolerance: float = 0.0,
) -> TuningResult:
    """ALS parameters (rank, reg_param, max_iter) by RMSE on the validation parts; rows
    the model cannot score get the bias baseline's prediction, as in the evaluation. A
    larger rank or more iterations is chosen only when it lowers RMSE by more than
    `tolerance` (relative) and twice the paired standard error (`Evidence`). Tuned on
    one split, the chosen fit is kept for the run (`fits.keep`)."""
    # Each split's biases once, cached, for every combination fitted on it.
    prepared = [
        (train, validation, cached(fit_biases(train, **bias_params)))
        for train, validation in splits
    ]

    fitted: dict[tuple[int, ...], RatingModel] = {}

    def evaluate(params: dict[str, Any], split: tuple[DataFrame, DataFrame, RatingModel]) -> Score:
        train, validation, biases = split
        model = fit_rating_model(train, variant=variant, seed=seed, biases=biases, **params)
        if len(prepared) == 1:
            fitted[tuple(sorted(params.items()))] = model
        return rating_score(model, validation, fallback=biases)

    try:
        result = grid_search(
            grid,
            prepared,
            evaluate,
            metric="rmse",
            lower_is_better=True,
            parallelism=parallelism,
            log=log,
            evidence=Evidence(als_cost, tolerance),
        )
        if fitted:  # one validation split: the champion scores its candidates on it
            best = fitted[tuple(sorted(result.best_params.items()))]
            keep(rating_key(prepared[0][0], best.params, seed), best)
        return result
    finally:
        for _, _, biases in prepared:
            biases.users.unpersist()
            biases.items.unpersist()


def tune_ranking_model(
    split: Split,
    grid: Sequence[dict[str, Any]],
    *,
    k: int,
    seed: int,
    parallelism: int,
    log: Callable[[str], object],
    tolerance: float = 0.0,
) -> tuple[TuningResult, float]:
    """Rank, reg_param, alpha (and confidence) by NDCG@k on the validation part, lists
    over the movies each user did not rate in the training part; a larger rank or more
    iterations only when NDCG@k rises by more than `tolerance` (relative) and twice the
    paired standard error over users (`Evidence`). Also returns the most-popular
    baseline's NDCG@k on the same users. The chosen fit is kept for the run
    (`fits.keep`)."""
    train, validation = split
    seen = train.select("userId", "movieId", "rating")
    relevant = relevant_rows(validation)
    users = relevant.select("userId").distinct()

    fitted: dict[FitKey, RankingModel] = {}

    def evaluate(params: dict[str, Any], split: Split) -> Score:
        model = fit_ranking_model(split[0], seed=seed, **params)
        fitted[fit_key("ranking", split[0], params, seed)] = model
        return ranking_score(unseen_lists(model, users, seen, k), relevant, k=k)

    result = grid_search(
        grid,
        [split],
        evaluate,
        metric=f"ndcg@{k}",
        lower_is_better=False,
        parallelism=parallelism,
        log=log,
        evidence=Evidence(als_cost, tolerance),
    )
    best = fit_key("ranking", train, result.best_params, seed)
    keep(best, fitted[best])  # the champion scores its candidates on this very split
    baseline = ranking_metrics(most_popular(train, users, seen, k), relevant, k=k)["ndcg"]
    return result, baseline


def tune_ease(
    split: Split,
    grid: Sequence[dict[str, Any]],
    *,
    max_items: int,
    k: int,
    log: Callable[[str], object],
) -> tuple[TuningResult, float]:
    """lambda and the Gram's weighting (`reg`, `decay_weighted`) by NDCG@k on the
    validation part (X^T X computed once per weighting, for every lambda); also the
    most-popular baseline's NDCG@k on the same users. The best fit is kept for the run
    (`fits.keep`)."""
    train, validation = split
    weighted = any(params["decay_weighted"] for params in grid)
    pairs = ease_pairs(train, max_items, decay_weighted=weighted)
    grams: dict[bool, np.ndarray] = {}  # the latest weighting's only: each is n x n
    seen = train.select("userId", "movieId", "rating")
    relevant = relevant_rows(validation)
    users = (
        relevant.select("userId").distinct().withColumn("features", F.array().cast("array<float>"))
    )

    best: list[tuple[float, EaseModel]] = []  # the best so far: the search runs in order

    def evaluate(params: dict[str, Any], split: Split) -> float:
        decay = params["decay_weighted"]
        if decay not in grams:
            grams.clear()
            grams[decay] = pairs.gram(decay)
        model = EaseModel(
            pairs.kept,
            fit_ease(grams[decay], params["reg"]),
            EaseParams(params["reg"], max_items, decay),
        )
        value = ranking_metrics(recommend(ease_ranker(model), users, seen, k), relevant, k=k)[
            "ndcg"
        ]
        if not best or value > best[0][0]:
            best[:] = [(value, model)]
        return value

    result = grid_search(
        grid,
        [split],
        evaluate,
        metric=f"ndcg@{k}",
        lower_is_better=False,
        parallelism=1,  # each fit holds a movies x movies inverse
        log=log,
    )
    chosen = best[0][1]
    chosen_params = asdict(chosen.params)
    if all(chosen_params[name] == value for name, value in result.best_params.items()):
        keep(ease_key(train, chosen.params), chosen)  # the champion scores on this split
    baseline = ranking_metrics(most_popular(train, users, seen, k), relevant, k=k)["ndcg"]
    return result, baseline

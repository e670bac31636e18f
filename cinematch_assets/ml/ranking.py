"""The ranking model: which movies to show. Implicit-feedback ALS (Hu, Koren & Volinsky
2008) over who rated what: every rating is a positive preference, held with confidence
c = 1 + alpha * value, where the value is the Gold time-decay weight (recent ratings
count more) or 1 (`binary`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cinematch_assets.ml.als import factor_tables, fit_als
from cinematch_assets.ml.fits import FitKey, fit_key, keep
from cinematch_assets.ml.metrics import ranking_metrics, relevant_rows
from cinematch_assets.ml.recommend import most_popular, unseen_lists
from cinematch_assets.ml.tuning import Split, TuningResult, grid_search

Confidence = Literal["decay_weight", "binary"]
CONFIDENCES: tuple[str, ...] = ("decay_weight", "binary")


@dataclass(frozen=True)
class RankingParams:
    """The implicit ALS settings: confidence c = 1 + alpha * value (`confidence`)."""

    rank: int
    reg_param: float
    alpha: float
    max_iter: int
    confidence: Confidence


@dataclass(frozen=True)
class RankingModel:
    """`users` (userId, features) and `items` (movieId, features)."""

    users: DataFrame
    items: DataFrame
    params: RankingParams
    als: ALSModel | None = None


def confidence_value(confidence: Confidence) -> Column:
    if confidence == "decay_weight":
        return F.col("weight")
    if confidence == "binary":
        return F.lit(1.0)
    raise ValueError(f"confidence must be one of {CONFIDENCES}, not {confidence!r}")


def fit_ranking_model(
    train: DataFrame,
    *,
    rank: int,
    reg_param: float,
    alpha: float,
    max_iter: int,
    confidence: Confidence,
    seed: int,
) -> RankingModel:
    model = fit_als(
        train.withColumn("confidence", confidence_value(confidence)),
        rating_col="confidence",
        rank=rank,
        reg_param=reg_param,
        max_iter=max_iter,
        seed=seed,
        implicit=True,
        alpha=alpha,
    )
    users, items = factor_tables(model)
    params = RankingParams(rank, reg_param, alpha, max_iter, confidence)
    return RankingModel(users=users, items=items, params=params, als=model)


def tune_ranking_model(
    split: Split,
    grid: Sequence[dict[str, Any]],
    *,
    k: int,
    seed: int,
    parallelism: int,
    log: Callable[[str], object],
) -> tuple[TuningResult, float]:
    """Rank, reg_param, alpha (and confidence) by NDCG@k on the validation part, lists
    over the movies each user did not rate in the training part. Also returns the
    most-popular baseline's NDCG@k on the same users. The best fit is kept for the run
    (`fits.keep`)."""
    train, validation = split
    seen = train.select("userId", "movieId", "rating")
    relevant = relevant_rows(validation)
    users = relevant.select("userId").distinct()

    fitted: dict[FitKey, RankingModel] = {}

    def evaluate(params: dict[str, Any], split: Split) -> float:
        model = fit_ranking_model(split[0], seed=seed, **params)
        fitted[fit_key("ranking", split[0], params, seed)] = model
        return ranking_metrics(unseen_lists(model, users, seen, k), relevant, k=k)["ndcg"]

    result = grid_search(
        grid,
        [split],
        evaluate,
        metric=f"ndcg@{k}",
        lower_is_better=False,
        parallelism=parallelism,
        log=log,
    )
    best = fit_key("ranking", train, result.best_params, seed)
    keep(best, fitted[best])  # the champion scores its candidates on this very split
    baseline = ranking_metrics(most_popular(train, users, seen, k), relevant, k=k)["ndcg"]
    return result, baseline

"""The ranking model: which movies to show. Implicit-feedback ALS (Hu, Koren & Volinsky
2008) over who rated what: every rating is a positive preference, held with confidence
c = 1 + alpha * value, where the value is the Gold time-decay weight (recent ratings
count more) or 1 (`binary`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cinematch_assets.ml.models.als import factor_tables, fit_als

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

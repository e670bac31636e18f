"""The rating model: how many stars a user would give a movie.

Every rating model here, the baselines included, has one shape:

    stars = clip(global_mean + user bias + movie bias + user factors . movie factors)

- the damped bias baseline: factors of rank 0;
- `bias_residual` (default): the damped biases plus explicit ALS on what they leave over;
- `user_mean` (the article's): bias = the user's mean rating, ALS (nonnegative) on the
  user-mean normalized rating (Gold's `rating_norm`);
- `none`: ALS on the raw stars (the ablation's "no normalization").

So predicting, serving and folding in a new user work the same for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cinematch_assets.conventions import MAX_RATING, MIN_RATING
from cinematch_assets.ml.als import FACTORS, dot, empty_factors, factor_tables, fit_als
from cinematch_assets.ml.fits import FitKey, fit_key, keep
from cinematch_assets.ml.metrics import regression_metrics
from cinematch_assets.ml.tuning import Split, TuningResult, grid_search

RatingVariant = Literal["bias_residual", "user_mean", "none"]
RATING_VARIANTS: tuple[str, ...] = ("bias_residual", "user_mean", "none")


@dataclass(frozen=True)
class RatingParams:
    """How a rating model was made: its normalization, the ALS settings (rank 0: biases
    alone, a baseline) and how its biases were learned."""

    variant: RatingVariant = "bias_residual"
    rank: int = 0
    reg_param: float = 0.0
    max_iter: int = 0
    nonnegative: bool = False
    bias_damping: float = 0.0
    bias_decay_weighted: bool = False


@dataclass(frozen=True)
class RatingModel:
    """`users` (userId, bias, features) and `items` (movieId, bias, features), with the
    global mean they add to."""

    global_mean: float
    users: DataFrame
    items: DataFrame
    params: RatingParams
    als: ALSModel | None = None

    @property
    def rank(self) -> int:
        """Length of the factors: 0 for the baselines (biases alone)."""
        return self.params.rank


def clip_stars(stars: Column) -> Column:
    return F.least(F.lit(MAX_RATING), F.greatest(F.lit(MIN_RATING), stars))


def fit_biases(train: DataFrame, *, damping: float, decay_weighted: bool = False) -> RatingModel:
    """The damped bias baseline: global mean, then movie biases, then user biases, each a
    mean deviation shrunk toward 0 by `damping` (a pseudo-count of ratings at the mean):

        b_movie = sum w (r - mean) / (damping + sum w)
        b_user  = sum w (r - mean - b_movie) / (damping + sum w)

    w is Gold's time-decay weight when `decay_weighted` (recent ratings count more), else 1.
    """
    w = F.col("weight") if decay_weighted else F.lit(1.0)
    global_mean = train.agg(F.sum(w * F.col("rating")) / F.sum(w)).first()[0]
    mean = F.lit(global_mean)
    items = train.groupBy("movieId").agg(
        (F.sum(w * (F.col("rating") - mean)) / (F.lit(damping) + F.sum(w))).alias("bias")
    )
    users = (
        train.join(items.withColumnRenamed("bias", "movie_bias"), "movieId")
        .groupBy("userId")
        .agg(
            (
                F.sum(w * (F.col("rating") - mean - F.col("movie_bias")))
                / (F.lit(damping) + F.sum(w))
            ).alias("bias")
        )
    )
    return RatingModel(
        global_mean=float(global_mean),
        users=users.withColumn(FACTORS, empty_factors()),
        items=items.withColumn(FACTORS, empty_factors()),
        params=RatingParams(bias_damping=damping, bias_decay_weighted=decay_weighted),
    )


def fit_rating_model(
    train: DataFrame,
    *,
    variant: RatingVariant,
    rank: int,
    reg_param: float,
    max_iter: int,
    seed: int,
    biases: RatingModel | None = None,
    nonnegative: bool | None = None,
) -> RatingModel:
    """ALS on what `variant` leaves to the factors. `bias_residual` needs the `biases` to
    build on (`fit_biases`); `user_mean` reads Gold's user_mean and rating_norm.
    `nonnegative` factors default to on for `user_mean` only (the article: "easier to
    interpret")."""
    if nonnegative is None:
        nonnegative = variant == "user_mean"
    params = RatingParams(variant, rank, reg_param, max_iter, nonnegative)
    if variant == "bias_residual":
        if biases is None:
            raise ValueError("the bias_residual variant needs the damped biases to build on")
        global_mean = biases.global_mean
        user_bias = biases.users.select("userId", "bias")
        item_bias = biases.items.select("movieId", "bias")
        target = (
            train.join(user_bias.withColumnRenamed("bias", "_ub"), "userId")
            .join(item_bias.withColumnRenamed("bias", "_ib"), "movieId")
            .withColumn(
                "target", F.col("rating") - F.lit(global_mean) - F.col("_ub") - F.col("_ib")
            )
        )
        params = replace(
            params,
            bias_damping=biases.params.bias_damping,
            bias_decay_weighted=biases.params.bias_decay_weighted,
        )
    elif variant == "user_mean":
        global_mean = 0.0
        user_bias = train.groupBy("userId").agg(F.first("user_mean").alias("bias"))
        item_bias = train.select("movieId").distinct().withColumn("bias", F.lit(0.0))
        target = train.withColumn("target", F.col("rating_norm"))
    elif variant == "none":
        global_mean = 0.0
        user_bias = train.select("userId").distinct().withColumn("bias", F.lit(0.0))
        item_bias = train.select("movieId").distinct().withColumn("bias", F.lit(0.0))
        target = train.withColumn("target", F.col("rating"))
    else:
        raise ValueError(f"rating model variant must be one of {RATING_VARIANTS}, not {variant!r}")
    model = fit_als(
        target,
        rating_col="target",
        rank=rank,
        reg_param=reg_param,
        max_iter=max_iter,
        seed=seed,
        nonnegative=nonnegative,
    )
    user_factors, item_factors = factor_tables(model)
    return RatingModel(
        global_mean=global_mean,
        users=user_bias.join(user_factors, "userId"),
        items=item_bias.join(item_factors, "movieId"),
        params=params,
        als=model,
    )


def rating_key(train: DataFrame, params: RatingParams, seed: int) -> FitKey:
    return fit_key("rating", train, asdict(params), seed)


def refit_rating_model(train: DataFrame, params: RatingParams, *, seed: int) -> RatingModel:
    """A rating model made as `params` says, fitted on other rows (`train`): its damped
    biases, then ALS with the same settings."""
    biases = fit_biases(
        train, damping=params.bias_damping, decay_weighted=params.bias_decay_weighted
    )
    return fit_rating_model(
        train, variant=params.variant, rank=params.rank, reg_param=params.reg_param,
        max_iter=params.max_iter, seed=seed, biases=biases, nonnegative=params.nonnegative,
    )  # fmt: skip


def _raw_prediction(
    model: RatingModel, rows: DataFrame, tag: str
) -> tuple[DataFrame, Column, Column]:
    """`rows` joined to the model's terms; (rows, unclipped stars, cold) where cold means
    the user or the movie is not in the model (their missing terms count as 0)."""
    users = model.users.select(
        "userId", F.col("bias").alias(f"_{tag}_ub"), F.col(FACTORS).alias(f"_{tag}_uf")
    )
    items = model.items.select(
        "movieId", F.col("bias").alias(f"_{tag}_ib"), F.col(FACTORS).alias(f"_{tag}_if")
    )
    joined = rows.join(users, "userId", "left").join(items, "movieId", "left")
    cold = F.col(f"_{tag}_uf").isNull() | F.col(f"_{tag}_if").isNull()
    stars = (
        F.lit(model.global_mean)
        + F.coalesce(F.col(f"_{tag}_ub"), F.lit(0.0))
        + F.coalesce(F.col(f"_{tag}_ib"), F.lit(0.0))
    )
    if model.rank:
        stars += F.coalesce(dot(F.col(f"_{tag}_uf"), F.col(f"_{tag}_if")), F.lit(0.0))
    return joined, stars, cold


def predict(
    model: RatingModel, rows: DataFrame, *, fallback: RatingModel | None = None
) -> DataFrame:
    """`rows` (userId, movieId, ...) with `prediction` (stars in [0.5, 5]) and `cold`: the
    user or the movie was not in the model, and `fallback` (the bias baseline) predicted."""
    columns = rows.columns
    joined, stars, cold = _raw_prediction(model, rows, "m")
    if fallback is not None:
        joined, fallback_stars, _ = _raw_prediction(fallback, joined, "f")
        stars = F.when(cold, fallback_stars).otherwise(stars)
    return joined.select(*columns, clip_stars(stars).alias("prediction"), cold.alias("cold"))


def rating_rmse(model: RatingModel, rows: DataFrame, *, fallback: RatingModel | None) -> float:
    return regression_metrics(predict(model, rows, fallback=fallback))["rmse"]


def cached(model: RatingModel) -> RatingModel:
    """The model with its tables cached (tuning reads them once per fit)."""
    return replace(model, users=model.users.cache(), items=model.items.cache())


def tune_biases(
    splits: Sequence[Split],
    grid: Sequence[dict[str, Any]],
    *,
    parallelism: int,
    log: Callable[[str], object],
) -> TuningResult:
    """Damping and decay weighting of the bias baseline, by RMSE on the validation parts."""

    def evaluate(params: dict[str, Any], split: Split) -> float:
        train, validation = split
        return rating_rmse(fit_biases(train, **params), validation, fallback=None)

    return grid_search(
        grid,
        splits,
        evaluate,
        metric="rmse",
        lower_is_better=True,
        parallelism=parallelism,
        log=log,
    )


def tune_rating_model(
    splits: Sequence[Split],
    grid: Sequence[dict[str, Any]],
    *,
    variant: RatingVariant,
    bias_params: dict[str, Any],
    seed: int,
    parallelism: int,
    log: Callable[[str], object],
) -> TuningResult:
    """ALS parameters (rank, reg_param, max_iter) by RMSE on the validation parts; rows
    the model cannot score get the bias baseline's prediction, as in the evaluation.
    Tuned on one split, the best fit is kept for the run (`fits.keep`)."""
    # Each split's biases once, cached, for every combination fitted on it.
    prepared = [
        (train, validation, cached(fit_biases(train, **bias_params)))
        for train, validation in splits
    ]

    fitted: dict[tuple[int, ...], RatingModel] = {}

    def evaluate(params: dict[str, Any], split: tuple[DataFrame, DataFrame, RatingModel]) -> float:
        train, validation, biases = split
        model = fit_rating_model(train, variant=variant, seed=seed, biases=biases, **params)
        if len(prepared) == 1:
            fitted[tuple(sorted(params.items()))] = model
        return rating_rmse(model, validation, fallback=biases)

    try:
        result = grid_search(
            grid,
            prepared,
            evaluate,
            metric="rmse",
            lower_is_better=True,
            parallelism=parallelism,
            log=log,
        )
        if fitted:  # one validation split: the champion scores its candidates on it
            best = fitted[tuple(sorted(result.best_params.items()))]
            keep(rating_key(prepared[0][0], best.params, seed), best)
        return result
    finally:
        for _, _, biases in prepared:
            biases.users.unpersist()
            biases.items.unpersist()

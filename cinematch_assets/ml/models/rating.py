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

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

import pandas as pd
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cinematch_assets.conventions import MAX_RATING, MIN_RATING
from cinematch_assets.ml.models.als import FACTORS, dot, empty_factors, factor_tables, fit_als
from cinematch_assets.ml.models.fits import FitKey, fit_key

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


@dataclass(frozen=True)
class BiasGrid:
    """The damped bias baseline for several settings (damping, decay_weighted) of one
    training set: each setting's global mean, and its user and movie biases as columns
    `b0`, `b1`, ... of two driver-side tables (O(users + movies))."""

    settings: list[tuple[float, bool]]
    global_means: list[float]
    users: pd.DataFrame  # userId, b0, b1, ...
    items: pd.DataFrame  # movieId, b0, b1, ...

    def model(self, spark: SparkSession, i: int) -> RatingModel:
        """Setting `i` as a rating model (rank 0) with Spark tables."""
        damping, decay_weighted = self.settings[i]

        def table(key: str, frame: pd.DataFrame) -> DataFrame:
            rows = frame[[key, f"b{i}"]].rename(columns={f"b{i}": "bias"})
            return spark.createDataFrame(rows, f"{key} int, bias double").withColumn(
                FACTORS, empty_factors()
            )

        return RatingModel(
            global_mean=self.global_means[i],
            users=table("userId", self.users),
            items=table("movieId", self.items),
            params=RatingParams(bias_damping=damping, bias_decay_weighted=decay_weighted),
        )


def fit_bias_grid(train: DataFrame, settings: Sequence[tuple[float, bool]]) -> BiasGrid:
    """Every setting's damped biases in two Spark jobs, however many settings: global mean,
    then movie biases, then user biases, each a mean deviation shrunk toward 0 by
    `damping` (a pseudo-count of ratings at the mean):

        b_movie = sum w (r - mean) / (damping + sum w)
        b_user  = sum w (r - mean - b_movie) / (damping + sum w)

    w is Gold's time-decay weight when `decay_weighted` (recent ratings count more), else 1.
    Spark sums per movie, then per user (the movie biases broadcast back to the rows); the
    rest is arithmetic on the driver."""
    settings = list(settings)
    decays = sorted({decay for _, decay in settings})  # "weight" is read only when one is
    weight = {False: F.lit(1.0), True: F.col("weight")}
    sums = [F.sum(weight[decay]).alias(f"w{int(decay)}") for decay in decays] + [
        F.sum(weight[decay] * F.col("rating")).alias(f"wr{int(decay)}") for decay in decays
    ]
    movies = train.groupBy("movieId").agg(*sums).toPandas()
    means = {
        decay: float(movies[f"wr{int(decay)}"].sum() / movies[f"w{int(decay)}"].sum())
        for decay in decays
    }
    items = movies[["movieId"]].copy()
    for i, (damping, decay) in enumerate(settings):
        w, wr = movies[f"w{int(decay)}"], movies[f"wr{int(decay)}"]
        items[f"b{i}"] = (wr - means[decay] * w) / (damping + w)
    spark = train.sparkSession
    movie_bias = spark.createDataFrame(items.astype({"movieId": "int32"}))
    per_user = [
        F.sum(weight[decay] * F.col(f"b{i}")).alias(f"wb{i}")
        for i, (_, decay) in enumerate(settings)
    ]
    users = (
        train.join(F.broadcast(movie_bias), "movieId")
        .groupBy("userId")
        .agg(*sums, *per_user)
        .toPandas()
    )
    user_bias = users[["userId"]].copy()
    for i, (damping, decay) in enumerate(settings):
        w, wr = users[f"w{int(decay)}"], users[f"wr{int(decay)}"]
        user_bias[f"b{i}"] = (wr - means[decay] * w - users[f"wb{i}"]) / (damping + w)
    return BiasGrid(settings, [means[decay] for _, decay in settings], user_bias, items)


def fit_biases(train: DataFrame, *, damping: float, decay_weighted: bool = False) -> RatingModel:
    """The damped bias baseline of one setting (`fit_bias_grid`)."""
    return fit_bias_grid(train, [(damping, decay_weighted)]).model(train.sparkSession, 0)


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


def bias_baseline(model: RatingModel, train: DataFrame) -> RatingModel:
    """The damped bias baseline with `model`'s bias settings: `model`'s own biases when it
    was fitted on them (`bias_residual`: the very numbers `fit_biases` gives on its
    training rows, two passes over them spared), else fitted on `train`."""
    params = model.params
    if params.variant != "bias_residual":
        return fit_biases(
            train, damping=params.bias_damping, decay_weighted=params.bias_decay_weighted
        )

    def biases(table: DataFrame, key: str) -> DataFrame:
        return table.select(key, "bias").withColumn(FACTORS, empty_factors())

    return RatingModel(
        global_mean=model.global_mean,
        users=biases(model.users, "userId"),
        items=biases(model.items, "movieId"),
        params=RatingParams(
            bias_damping=params.bias_damping, bias_decay_weighted=params.bias_decay_weighted
        ),
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


def cached(model: RatingModel) -> RatingModel:
    """The model with its tables cached (tuning reads them once per fit)."""
    return replace(model, users=model.users.cache(), items=model.items.cache())

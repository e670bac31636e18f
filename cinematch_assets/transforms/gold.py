"""Gold: model-ready ratings. Activity filter, a train/test split fixed in the data, and
features learned on the training part only (user means, time-decay reference times), so
no test rating leaks into anything the model sees."""

from __future__ import annotations

from typing import Literal

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cinematch_assets.transforms.reconcile import REASON

FilterMode = Literal["one_pass", "k_core"]
SplitStrategy = Literal["random", "temporal"]
DecayReference = Literal["user_latest", "dataset_end"]

TRAIN, TEST = "train", "test"
SECONDS_PER_DAY = 86_400.0
# Resolution of the hash-based random split: test_fraction is honoured to 1e-6.
SPLIT_BUCKETS = 1_000_000


def user_below(threshold: int) -> str:
    return f"user has fewer than {threshold} ratings"


def movie_below(threshold: int) -> str:
    return f"movie has fewer than {threshold} ratings"


def _active_ids(ratings: DataFrame, column: str, minimum: int) -> DataFrame:
    return (
        ratings.groupBy(column)
        .count()
        .filter(F.col("count") >= minimum)
        .select(column, F.lit(True).alias(f"_{column}_ok"))
    )


def annotate_activity(
    ratings: DataFrame,
    *,
    min_user_ratings: int,
    min_movie_ratings: int,
    mode: FilterMode = "one_pass",
    max_rounds: int = 50,
) -> DataFrame:
    """`ratings` with the reason each row is filtered out (null when kept).

    one_pass (the article's): users with >= min_user_ratings and movies with
    >= min_movie_ratings, both counted once on the input. Dropping sparse movies can leave
    a kept user with fewer ratings than the threshold; k_core repeats the counting on what
    is left until both thresholds hold for every remaining user and movie.
    """
    users = _active_ids(ratings, "userId", min_user_ratings)
    movies = _active_ids(ratings, "movieId", min_movie_ratings)
    if mode == "k_core":
        users, movies = _k_core_ids(ratings, min_user_ratings, min_movie_ratings, max_rounds)
    elif mode != "one_pass":
        raise ValueError(f"filter mode must be 'one_pass' or 'k_core', not {mode!r}")
    return (
        ratings.join(F.broadcast(users), on="userId", how="left")
        .join(F.broadcast(movies), on="movieId", how="left")
        .withColumn(
            REASON,
            F.when(F.col("_userId_ok").isNull(), F.lit(user_below(min_user_ratings))).when(
                F.col("_movieId_ok").isNull(), F.lit(movie_below(min_movie_ratings))
            ),
        )
        .drop("_userId_ok", "_movieId_ok")
        .select(*ratings.columns, REASON)
    )


def _k_core_ids(
    ratings: DataFrame, min_user: int, min_movie: int, max_rounds: int
) -> tuple[DataFrame, DataFrame]:
    """The user and movie ids of the (min_user, min_movie) core of the rating graph."""
    pairs = ratings.select("userId", "movieId")
    sizes: tuple[int, int] | None = None
    for _ in range(max_rounds):
        users = _active_ids(pairs, "userId", min_user).localCheckpoint()
        movies = _active_ids(pairs, "movieId", min_movie).localCheckpoint()
        if sizes == (users.count(), movies.count()):
            return users, movies
        sizes = (users.count(), movies.count())
        pairs = (
            pairs.join(users, "userId", "left_semi").join(movies, "movieId", "left_semi")
        ).localCheckpoint()
    raise RuntimeError(f"k-core filter did not converge in {max_rounds} rounds")


def random_split(test_fraction: float, seed: int) -> Column:
    """'test' for about `test_fraction` of rows, chosen by a seeded hash of the key.

    A hash (not rand()) makes the split depend only on (userId, movieId, seed), never on
    how the data is partitioned: the same input gives the same split on any cluster.
    """
    bucket = F.pmod(F.xxhash64("userId", "movieId", F.lit(seed)), F.lit(SPLIT_BUCKETS))
    return F.when(bucket < int(round(test_fraction * SPLIT_BUCKETS)), F.lit(TEST)).otherwise(
        F.lit(TRAIN)
    )


def temporal_split(test_fraction: float) -> Column:
    """'test' for each user's most recent floor(test_fraction * n) ratings."""
    per_user = Window.partitionBy("userId")
    newest_first = per_user.orderBy(F.desc("timestamp"), F.desc("movieId"))
    return F.when(
        F.row_number().over(newest_first) <= F.floor(F.count("*").over(per_user) * test_fraction),
        F.lit(TEST),
    ).otherwise(F.lit(TRAIN))


def assign_split(
    ratings: DataFrame,
    *,
    strategy: SplitStrategy = "random",
    test_fraction: float = 0.2,
    seed: int = 42,
) -> DataFrame:
    """`ratings` with a `split` column: 'train' or 'test'."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction}")
    if strategy == "random":
        split = random_split(test_fraction, seed)
    elif strategy == "temporal":
        split = temporal_split(test_fraction)
    else:
        raise ValueError(f"split strategy must be 'random' or 'temporal', not {strategy!r}")
    return ratings.withColumn("split", split)


def user_stats(train: DataFrame) -> DataFrame:
    """Per user, from training ratings only: mean rating (to map predictions back), count,
    and the latest rating time (the default time-decay reference)."""
    return train.groupBy("userId").agg(
        F.avg("rating").alias("user_mean"),
        F.count("*").alias("train_ratings"),
        F.max("timestamp").alias("last_train_timestamp"),
    )


def decay_weight(age_seconds: Column, half_life_days: float) -> Column:
    """exp-decay weight 0.5 ** (age / half-life): 1.0 now, 0.5 one half-life ago. Ages
    below zero (a rating after the reference) count as zero: weights never exceed 1."""
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be positive, not {half_life_days}")
    age_days = F.greatest(age_seconds, F.lit(0)) / SECONDS_PER_DAY
    return F.pow(F.lit(0.5), age_days / F.lit(half_life_days))


def _with_user_bias(ratings: DataFrame, stats: DataFrame, how: str) -> DataFrame:
    """Ratings with the training user_mean and rating_norm = rating - user_mean."""
    return ratings.join(stats, on="userId", how=how).select(
        "userId",
        "movieId",
        "rating",
        "timestamp",
        "rated_at",
        "user_mean",
        (F.col("rating") - F.col("user_mean")).alias("rating_norm"),
        "last_train_timestamp",
    )


def training_features(
    train: DataFrame,
    stats: DataFrame,
    *,
    half_life_days: float,
    reference: DecayReference = "user_latest",
) -> DataFrame:
    """Training rows with user_mean, rating_norm (= rating - user_mean) and the time-decay
    weight, measured from the user's latest training rating or from the end of the
    training data."""
    if reference == "user_latest":
        reference_time = F.col("last_train_timestamp")
    elif reference == "dataset_end":
        reference_time = F.lit(train.agg(F.max("timestamp")).first()[0])
    else:
        raise ValueError(f"decay reference must be 'user_latest' or 'dataset_end': {reference!r}")
    weight = decay_weight(reference_time - F.col("timestamp"), half_life_days)
    return (
        _with_user_bias(train, stats, "inner")
        .withColumn("weight", weight)
        .drop("last_train_timestamp")
    )


def holdout_features(test: DataFrame, stats: DataFrame) -> DataFrame:
    """Test rows with the training user_mean (null for a user with no training ratings,
    so the model falls back to a baseline) and rating_norm."""
    return _with_user_bias(test, stats, "left").drop("last_train_timestamp")

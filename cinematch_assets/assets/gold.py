"""Gold: the activity-filtered ratings with a fixed train/test split, and the model features
learned from the training part only."""

from dagster import AssetExecutionContext, AssetIn, AssetOut, Config, Output, asset, multi_asset
from pydantic import Field
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cinematch_assets import keys
from cinematch_assets.transforms.gold import (
    TEST,
    TRAIN,
    DecayReference,
    FilterMode,
    SplitStrategy,
    annotate_activity,
    assign_split,
    holdout_features,
    training_features,
    user_stats,
)
from cinematch_assets.transforms.reconcile import (
    kept_rows,
    reason_counts,
    reconciliation_metadata,
)

GOLD = {"group_name": "gold", "kinds": {"spark", "delta"}}


class FilterSplitConfig(Config):
    """The article's activity thresholds and an 80/20 split."""

    min_user_ratings: int = Field(default=15, description="Keep users with at least this many.")
    min_movie_ratings: int = Field(default=10, description="Keep movies with at least this many.")
    filter_mode: FilterMode = Field(
        default="one_pass",
        description="one_pass: both counts taken once on Silver (the article). k_core: "
        "repeat until every kept user and movie meets its threshold.",
    )
    split_strategy: SplitStrategy = Field(
        default="random",
        description="random: a seeded hash of (userId, movieId). temporal: each user's most "
        "recent ratings are the test set.",
    )
    test_fraction: float = Field(default=0.2, description="Share of ratings held out for test.")
    seed: int = Field(default=42, description="Seed of the random split.")


class FeatureConfig(Config):
    half_life_days: float = Field(
        default=365.0, description="Time-decay half-life: a rating this old weighs 0.5."
    )
    decay_reference: DecayReference = Field(
        default="user_latest",
        description="Age measured from each user's latest training rating (user_latest) or "
        "from the end of the training data (dataset_end).",
    )


@asset(
    key=keys.RATINGS_FILTERED,
    ins={"ratings": AssetIn(keys.RATINGS_CLEAN)},
    description="Silver ratings of active users and movies, each with its `split` "
    "('train'/'test'), fixed here so every later asset uses the same split.",
    **GOLD,
)
def ratings_filtered(context: AssetExecutionContext, config: FilterSplitConfig, ratings: DataFrame):
    # Kept for the counts below and the write: each would otherwise read Silver and count
    # every user's and movie's ratings again.
    annotated = annotate_activity(
        ratings,
        min_user_ratings=config.min_user_ratings,
        min_movie_ratings=config.min_movie_ratings,
        mode=config.filter_mode,
    ).persist(StorageLevel.MEMORY_AND_DISK)
    split = assign_split(
        kept_rows(annotated),
        strategy=config.split_strategy,
        test_fraction=config.test_fraction,
        seed=config.seed,
    )
    shape = split.agg(
        F.countDistinct("userId").alias("users"),
        F.countDistinct("movieId").alias("movies"),
        F.count_if(F.col("split") == TRAIN).alias("train_rows"),
        F.count_if(F.col("split") == TEST).alias("test_rows"),
    ).first()
    yield Output(
        split,
        metadata={
            **reconciliation_metadata(reason_counts(annotated)),
            **shape.asDict(),
            **{f"config/{k}": v for k, v in config.model_dump().items()},
        },
    )
    annotated.unpersist()  # written by now


@multi_asset(
    name="gold_features",
    ins={"ratings": AssetIn(keys.RATINGS_FILTERED)},
    outs={
        "train": AssetOut(
            key=keys.TRAIN,
            description="Training ratings with user_mean, rating_norm = rating - user_mean "
            "(user-bias normalization) and the time-decay weight.",
            **GOLD,
        ),
        "test": AssetOut(
            key=keys.TEST,
            description="Held-out ratings with the training user_mean (null for users unseen "
            "in training) and rating_norm. Never used for fitting or tuning.",
            **GOLD,
        ),
        "users": AssetOut(
            key=keys.USER_STATS,
            description="Per user, from training ratings only: user_mean (maps normalized "
            "predictions back to stars), train_ratings, last_train_timestamp.",
            **GOLD,
        ),
    },
)
def gold_features(context: AssetExecutionContext, config: FeatureConfig, ratings: DataFrame):
    train = ratings.filter(F.col("split") == TRAIN).drop("split")
    test = ratings.filter(F.col("split") == TEST).drop("split")
    stats = user_stats(train).cache()  # one row a user, read by all three outputs
    settings = {f"config/{k}": v for k, v in config.model_dump().items()}
    yield Output(
        training_features(
            train,
            stats,
            half_life_days=config.half_life_days,
            reference=config.decay_reference,
        ),
        output_name="train",
        metadata=settings,
    )
    yield Output(holdout_features(test, stats), output_name="test")
    yield Output(stats, output_name="users")
    stats.unpersist()

"""Serving: what the app reads. Lake tables for lineage and queries, and beside each the
compact file the app loads (no Spark, no JVM), written atomically under
$CINEMATCH_HOME/serving (layout in `resources.serving_files`)."""

import time
from datetime import UTC, datetime

import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AutomationCondition,
    Config,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field
from pyspark.sql import DataFrame

from cinematch_assets.atomic_files import atomic_path
from cinematch_assets.ml.ranking import RankingModel
from cinematch_assets.ml.rating import RatingModel
from cinematch_assets.ml.serving import aligned, recommend_for_serving, write_json_shards
from cinematch_assets.ml.topn import item_matrix
from cinematch_assets.resources import serving_files as files
from cinematch_assets.settings import cinematch_home
from cinematch_assets.transforms.serving import PROFILE_SIZE, movie_catalog, user_profiles

# Serving follows new models on its own once the automation sensor is switched on.
SERVING = {"group_name": "serving", "automation_condition": AutomationCondition.eager()}
RATINGS_CLEAN = AssetIn(["silver", "ratings_clean"])
RATING_MODEL = AssetIn(["ml", "als_rating_model"])
RANKING_MODEL = AssetIn(["ml", "als_ranking_model"])
RATING_ITEMS = AssetIn(["ml", "rating_item_factors"])
RANKING_ITEMS = AssetIn(["ml", "ranking_item_factors"])


class RecommendationsConfig(Config):
    n: int = Field(default=10, description="Movies per user.")


def _write_parquet(df: DataFrame, target) -> dict:
    """`df` (small enough for the driver) as one Parquet file, atomically."""
    table = df.toArrow()
    with atomic_path(target) as temp:
        pq.write_table(table, temp)
    return {"file": MetadataValue.path(str(target)), "file_bytes": target.stat().st_size}


@asset(
    key=["serving", "movie_catalog"],
    ins={
        "movies": AssetIn(["silver", "movies_clean"]),
        "links": AssetIn(["silver", "links_clean"]),
        "ratings": RATINGS_CLEAN,
        "tags": AssetIn(["silver", "tags_clean"]),
    },
    kinds={"spark", "delta", "parquet"},
    description="Every movie: display title, year, genres, tmdbId/imdbId, top tags, rating "
    "count, community average and Bayesian average (prior: the mean of all ratings, with "
    "the weight of the mean number of ratings per movie). Also as movie_catalog.parquet.",
    **SERVING,
)
def serving_movie_catalog(
    movies: DataFrame, links: DataFrame, ratings: DataFrame, tags: DataFrame
) -> Output:
    catalog, prior = movie_catalog(movies, links, ratings, tags)
    catalog = catalog.cache()
    metadata = _write_parquet(catalog.orderBy("movieId"), files.catalog_path(cinematch_home()))
    return Output(catalog, metadata={**metadata, **{k: round(v, 4) for k, v in prior.items()}})


@asset(
    key=["serving", "user_profiles"],
    ins={"ratings": RATINGS_CLEAN},
    kinds={"spark", "delta", "parquet"},
    description=f"Each user's {PROFILE_SIZE} highest-rated movies (latest first among equal "
    "stars): what the app shows as their taste. Also as user_profiles.parquet.",
    **SERVING,
)
def serving_user_profiles(ratings: DataFrame) -> Output:
    profiles = user_profiles(ratings).cache()
    metadata = _write_parquet(
        profiles.orderBy("userId", "rank"), files.profiles_path(cinematch_home())
    )
    return Output(profiles, metadata=metadata)


@asset(
    key=["serving", "recommendations"],
    ins={
        "ratings": RATINGS_CLEAN,
        "rating_params": RATING_MODEL,
        "rating_users": AssetIn(["ml", "rating_user_factors"]),
        "rating_items": RATING_ITEMS,
        "ranking_params": RANKING_MODEL,
        "ranking_users": AssetIn(["ml", "ranking_user_factors"]),
        "ranking_items": RANKING_ITEMS,
    },
    # Served only once the held-out evaluation (and its blocking check) has passed.
    deps=[AssetKey(["ml", "test_predictions"])],
    kinds={"spark", "delta"},
    description="For every user of the models: the ranking model's top-n among the movies "
    "they never rated (userId, rank, movieId, score), the rating model's stars "
    "(pred_rating, in [0.5, 5]) and the reason: the movie they rated highly whose factor "
    "is most similar.",
    **SERVING,
)
def serving_recommendations(
    context: AssetExecutionContext,
    config: RecommendationsConfig,
    ratings: DataFrame,
    rating_params: DataFrame,
    rating_users: DataFrame,
    rating_items: DataFrame,
    ranking_params: DataFrame,
    ranking_users: DataFrame,
    ranking_items: DataFrame,
) -> Output:
    rating_row = rating_params.first().asDict()
    started = time.perf_counter()
    recommendations = recommend_for_serving(
        RankingModel(ranking_users, ranking_items, ranking_params.first().asDict()),
        RatingModel(rating_row["global_mean"], rating_users, rating_items, rating_row),
        ratings.select("userId", "movieId", "rating"),
        config.n,
    ).cache()
    rows = recommendations.count()
    seconds = time.perf_counter() - started
    context.log.info(f"Top-{config.n} of every user: {rows:,} rows in {seconds:.1f} s")
    return Output(recommendations, metadata={"n": config.n, "scoring_seconds": round(seconds, 1)})


@asset(
    key=["serving", "recommendations_json"],
    ins={"recommendations": AssetIn(["serving", "recommendations"])},
    kinds={"spark", "json"},
    description="The serving JSON (user id -> ordered [{movieId, pred_rating, score, "
    "reason}]), sharded by userId modulo the shard count so a lookup parses one small "
    "file; a new version is published by swapping recommendations/manifest.json.",
    **SERVING,
)
def serving_recommendations_json(
    context: AssetExecutionContext, recommendations: DataFrame
) -> MaterializeResult:
    home = cinematch_home()
    users = recommendations.select("userId").distinct().count()
    shards = files.shard_count(users)
    started = time.perf_counter()
    # Held from the first shard to the manifest swap: an overlapping run's publish leaves
    # this version alone.
    with files.new_version(home) as (version, folder):
        written = write_json_shards(recommendations, folder, shards)
        manifest = files.publish_recommendations(
            home,
            version,
            {
                "shards": shards,
                "users": users,
                "n": int(recommendations.agg({"rank": "max"}).first()[0] or 0),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    seconds = time.perf_counter() - started
    context.log.info(f"{users:,} users in {shards} JSON shards in {seconds:.1f} s")
    return MaterializeResult(
        metadata={
            "manifest": MetadataValue.path(str(manifest)),
            "version": version,
            "users": users,
            "shards": shards,
            "bytes": int(sum(row["bytes"] for row in written)),
            "write_seconds": round(seconds, 1),
        }
    )


@asset(
    key=["serving", "model_factors"],
    ins={
        "rating_params": RATING_MODEL,
        "rating_items": RATING_ITEMS,
        "ranking_params": RANKING_MODEL,
        "ranking_items": RANKING_ITEMS,
    },
    deps=[AssetKey(["ml", "test_predictions"])],
    kinds={"spark", "numpy"},
    description="What folding a new user in needs, as model_factors.npz: both models' item "
    "factors on the same movie ids, the rating model's movie biases, global mean, "
    "regularization and bias settings, the ranking model's regularization and alpha.",
    **SERVING,
)
def serving_model_factors(
    rating_params: DataFrame,
    rating_items: DataFrame,
    ranking_params: DataFrame,
    ranking_items: DataFrame,
) -> MaterializeResult:
    rating = rating_params.first().asDict()
    ranking = ranking_params.first().asDict()
    ids, items, _ = item_matrix(ranking_items)
    rating_ids, rating_factors, rating_bias = item_matrix(rating_items, bias="bias")
    settings = files.write_model_factors(
        cinematch_home(),
        movie_ids=ids,
        ranking_items=items,
        rating_items=aligned(ids, rating_ids, rating_factors),
        rating_item_bias=aligned(ids, rating_ids, rating_bias),
        rating_global_mean=rating["global_mean"],
        rating_reg_param=rating["reg_param"],
        rating_variant=rating["variant"],
        rating_bias_damping=rating.get("bias_damping") or 0.0,
        rating_nonnegative=rating["nonnegative"],
        ranking_reg_param=ranking["reg_param"],
        ranking_alpha=ranking["alpha"],
    )
    target = files.factors_path(cinematch_home())
    return MaterializeResult(
        metadata={
            "file": MetadataValue.path(str(target)),
            "file_bytes": target.stat().st_size,
            "movies": len(ids),
            "ranking_rank": int(items.shape[1]),
            "rating_rank": int(rating_factors.shape[1]),
            "parameters": MetadataValue.json(settings),
        }
    )


serving_assets = [
    serving_movie_catalog,
    serving_user_profiles,
    serving_recommendations,
    serving_recommendations_json,
    serving_model_factors,
]

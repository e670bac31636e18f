"""Serving: what the app reads. Lake tables for lineage and queries, and beside each the
compact file the app loads (no Spark, no JVM), written atomically under
$CINEMATCH_HOME/serving (layout in `storage.serving_files`)."""

import time
from datetime import UTC, datetime

import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AutomationCondition,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cinematch_assets import keys
from cinematch_assets.assets.ml import MODEL_TABLES
from cinematch_assets.ml.lists.recommend import new_for_you_lists, served_lists
from cinematch_assets.ml.selection.evaluation import read_served, served_model_items
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.resources.io_manager import ALLOW_SCHEMA_EVOLUTION
from cinematch_assets.resources.lakehouse import Lakehouse
from cinematch_assets.serving import model_factors

# The fold-in the app and the API use, on the serving files (no Spark, no models' tables).
from cinematch_assets.serving.loading import ArtifactProblem
from cinematch_assets.serving.new_users import open_foldin
from cinematch_assets.storage import app_ratings
from cinematch_assets.storage import serving_files as files
from cinematch_assets.storage.atomic_files import atomic_path
from cinematch_assets.storage.delta_reader import read_delta, read_delta_since
from cinematch_assets.transforms.serving import (
    PROFILE_SIZE,
    movie_catalog,
    user_profiles,
    write_json_shards,
)

# Serving follows new models on its own once the automation sensor is switched on.
SERVING = {"group_name": "serving", "automation_condition": AutomationCondition.eager()}
RATINGS_CLEAN = AssetIn(keys.RATINGS_CLEAN)
# Served only once the held-out evaluation (and its blocking check) has passed.
EVALUATED_MODELS = [
    *MODEL_TABLES,
    AssetKey(keys.RANKING_CHAMPION),
    AssetKey(keys.CONTENT_MODEL),
    AssetKey(keys.NEW_MOVIE_FACTORS),
    AssetKey(keys.TRAIN),
    AssetKey(keys.TEST_PREDICTIONS),
    AssetKey(keys.MOVIES_CLEAN),  # the movies' genres, for the genre taste
]


def served_items(lakehouse: Lakehouse):
    """The models' movie side with the served order chosen on validation (EASE's weights
    only when it ranks), and the two models."""
    served = read_served(lakehouse.read, lakehouse.data_root.models)
    items = served_model_items(lakehouse.read, served, lakehouse.read(keys.TRAIN))
    return items, served.ranking.model, served.rating.model


class RecommendationsConfig(Config):
    n: int = Field(
        default=30,
        description="Movies per user: the app shows the best 10, and re-ranks these when "
        "a user asks for more discovery.",
    )


def _write_parquet(df: DataFrame, target) -> dict:
    """`df` (small enough for the driver) as one Parquet file, atomically."""
    table = df.toArrow()
    with atomic_path(target) as temp:
        pq.write_table(table, temp)
    return {"file": MetadataValue.path(str(target)), "file_bytes": target.stat().st_size}


@asset(
    key=keys.MOVIE_CATALOG,
    ins={
        "movies": AssetIn(keys.MOVIES_CLEAN),
        "links": AssetIn(keys.LINKS_CLEAN),
        "ratings": RATINGS_CLEAN,
        "tags": AssetIn(keys.TAGS_CLEAN),
    },
    kinds={"spark", "delta", "parquet"},
    description="Every movie: display title, year, genres, tmdbId/imdbId, top tags, rating "
    "count, community average and Bayesian average (prior: the mean of all ratings, with "
    "the weight of the mean number of ratings per movie). Also as movie_catalog.parquet.",
    **SERVING,
)
def serving_movie_catalog(
    data_root: DataRoot, movies: DataFrame, links: DataFrame, ratings: DataFrame, tags: DataFrame
) -> Output:
    catalog, prior = movie_catalog(movies, links, ratings, tags)
    catalog = catalog.cache()
    metadata = _write_parquet(catalog.orderBy("movieId"), files.catalog_path(data_root.path))
    return Output(catalog, metadata={**metadata, **{k: round(v, 4) for k, v in prior.items()}})


@asset(
    key=keys.USER_PROFILES,
    ins={"ratings": RATINGS_CLEAN},
    kinds={"spark", "delta", "parquet"},
    description=f"Each user's {PROFILE_SIZE} highest-rated movies (latest first among equal "
    "stars): what the app shows as their taste. Also as user_profiles.parquet.",
    **SERVING,
)
def serving_user_profiles(data_root: DataRoot, ratings: DataFrame) -> Output:
    profiles = user_profiles(ratings).cache()
    metadata = _write_parquet(
        profiles.orderBy("userId", "rank"), files.profiles_path(data_root.path)
    )
    return Output(profiles, metadata=metadata)


@asset(
    key=keys.RECOMMENDATIONS,
    ins={"ratings": RATINGS_CLEAN},
    deps=EVALUATED_MODELS,
    kinds={"spark", "delta"},
    description="For every user of the models: the served order's top-n among the movies "
    "they never rated (userId, rank, movieId, score), the rating model's stars "
    "(pred_rating, in [0.5, 5]) and the reason: the movie they rated highly that the "
    "ranking model finds closest. The evaluation scores exactly these lists on held-out "
    "ratings.",
    **SERVING,
)
def serving_recommendations(
    context: AssetExecutionContext,
    config: RecommendationsConfig,
    lakehouse: Lakehouse,
    ratings: DataFrame,
) -> Output:
    items, ranking, rating = served_items(lakehouse)
    context.log.info(f"Served order: {items.policy.name}")
    started = time.perf_counter()
    recommendations = served_lists(
        items,
        ranking.users,
        rating.users,
        ratings.select("userId", "movieId", "rating"),
        config.n,
    ).cache()
    rows = recommendations.count()
    seconds = time.perf_counter() - started
    context.log.info(f"Top-{config.n} of every user: {rows:,} rows in {seconds:.1f} s")
    return Output(
        recommendations,
        metadata={
            "n": config.n,
            "served_order": items.policy.name,
            "scoring_seconds": round(seconds, 1),
        },
    )


@asset(
    key=keys.NEW_FOR_YOU,
    ins={"ratings": RATINGS_CLEAN},
    deps=EVALUATED_MODELS,
    kinds={"spark", "delta"},
    description='Every user\'s "New for you" row, beside their top-n: up to its size of the '
    "movies the models do not know (no ratings, or too few for Gold), by their fit for the "
    "user (the content model's score on the user's own scale, plus a title like one they "
    "rated highly), each offered to its exploration budget's share of users, the latest "
    "releases first, none predicted below the star floor (userId, rank, movieId, score, "
    "pred_rating, reason, by_title: the reason is a film whose title it shares; fresh: a "
    "recent release, the others older films with too few ratings).",
    # `fresh` joined the table: older homes' tables change shape.
    metadata={ALLOW_SCHEMA_EVOLUTION: True},
    **SERVING,
)
def serving_new_for_you(
    context: AssetExecutionContext, lakehouse: Lakehouse, ratings: DataFrame
) -> Output:
    items, ranking, rating = served_items(lakehouse)
    started = time.perf_counter()
    history = ratings.select("userId", "movieId", "rating")
    rows = new_for_you_lists(items, ranking.users, rating.users, history).cache()
    summary = rows.agg(
        F.count("*").alias("rows"),
        F.countDistinct("userId").alias("users"),
        F.countDistinct("movieId").alias("movies"),
        F.avg(F.col("by_title").cast("double")).alias("by_title"),
        F.avg(F.col("fresh").cast("double")).alias("fresh"),
    ).first()
    seconds = time.perf_counter() - started
    context.log.info(f"New for you: {summary['rows']:,} rows in {seconds:.1f} s")
    users = ranking.users.count()
    return Output(
        rows,
        metadata={
            "users_with_a_row": summary["users"],
            "share_of_users_with_a_row": round(summary["users"] / max(users, 1), 4),
            "movies_shown": summary["movies"],
            "share_by_title": round(summary["by_title"] or 0.0, 4),
            "share_fresh": round(summary["fresh"] or 0.0, 4),
            "scoring_seconds": round(seconds, 1),
        },
    )


@asset(
    key=keys.RECOMMENDATIONS_JSON,
    ins={
        "recommendations": AssetIn(keys.RECOMMENDATIONS),
        "new_for_you": AssetIn(keys.NEW_FOR_YOU),
        "ratings": RATINGS_CLEAN,
    },
    kinds={"spark", "json"},
    description="The serving JSON (user id -> ordered [{movieId, pred_rating, score, "
    "reason}]: the top-n, then the New for you row's entries, marked row: new_for_you), "
    "sharded by userId modulo the shard count, beside each shard its users' ratings (what "
    "their lists leave out, and what a re-ranked list starts from) and an index of where "
    "each user's list and ratings lie, so a lookup reads one user; a new version is "
    "published by swapping recommendations/manifest.json.",
    **SERVING,
)
def serving_recommendations_json(
    context: AssetExecutionContext,
    data_root: DataRoot,
    recommendations: DataFrame,
    new_for_you: DataFrame,
    ratings: DataFrame,
) -> MaterializeResult:
    home = data_root.path
    users = recommendations.select("userId").distinct().count()
    # The app ratings the models were trained on: later ones are folded in (app_user_lists).
    bronze = context.instance.get_latest_materialization_event(AssetKey(keys.BRONZE_APP_RATINGS))
    app_version = bronze.asset_materialization.metadata.get("app_table_version") if bronze else None
    shards = files.shard_count(users)
    started = time.perf_counter()
    # Held from the first shard to the manifest swap: an overlapping run's publish leaves
    # this version alone.
    with files.new_version(home) as (version, folder):
        history = ratings.select("userId", "movieId", "rating")
        written = write_json_shards(recommendations, folder, shards, new_for_you, history)
        manifest = files.publish_recommendations(
            home,
            version,
            {
                "shards": shards,
                "users": users,
                "n": int(recommendations.agg({"rank": "max"}).first()[0] or 0),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                files.APP_RATINGS_VERSION: app_version.value if app_version else None,
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
    key=keys.MODEL_FACTORS,
    deps=EVALUATED_MODELS,
    kinds={"spark", "numpy"},
    description="What a new user's list is built from, as model_factors.npz: the models' "
    "movie side on the same movie ids (ranking factors, the rating model's movie biases "
    "and factors, EASE's weights when it ranks), their settings, the movies' popularity "
    "and the served order.",
    **SERVING,
)
def serving_model_factors(data_root: DataRoot, lakehouse: Lakehouse) -> MaterializeResult:
    items, _, _ = served_items(lakehouse)
    target = model_factors.write_model_factors(items, files.factors_path(data_root.path))
    return MaterializeResult(
        metadata={
            "file": MetadataValue.path(str(target)),
            "file_bytes": target.stat().st_size,
            "movies": len(items.movie_ids),
            "ranking_rank": int(items.ranking_items.shape[1]),
            "rating_rank": int(items.rating.item_factors.shape[1]),
            "parameters": MetadataValue.json(model_factors.settings(items)),
        }
    )


@asset(
    key=keys.APP_USER_LISTS,
    deps=[
        AssetKey(keys.APP_RATINGS),
        AssetKey(keys.RECOMMENDATIONS_JSON),
        AssetKey(keys.MODEL_FACTORS),
        AssetKey(keys.MOVIE_CATALOG),
        AssetKey(keys.USER_PROFILES),
    ],
    group_name="serving",
    kinds={"python", "json", "parquet"},
    description="The app's visitors served like known users between product runs: each "
    "visitor who saved ratings since the served lists were made, or has none, is folded "
    "into the served models (the app's own fold-in; nothing is refitted), and a new "
    "version of the served lists is published with their lists in place; their "
    "favourites go to app_user_profiles.parquet. The light run, requested by the "
    "app_ratings_sensor; the product run ends with it too.",
)
def serving_app_user_lists(
    context: AssetExecutionContext, data_root: DataRoot
) -> MaterializeResult:
    home = data_root.path
    started = time.perf_counter()
    manifest = files.read_manifest(home)
    if manifest is None:
        raise Failure("Nothing is served yet: run the product job (`make materialize`) first.")
    app_ratings.ensure_tables(home)
    table = app_ratings.ratings_path(home)
    covered = manifest.get(files.APP_RATINGS_VERSION)
    version, added = read_delta_since(table, covered, columns=app_ratings.LATEST_COLUMNS)
    every = app_ratings.servable(read_delta(table, version, columns=app_ratings.LATEST_COLUMNS))
    standing = app_ratings.latest_ratings(every)
    served = files.ListedUsers(home, manifest)
    changed = set(app_ratings.servable(added).column("userId").to_pylist())
    unserved = {user for user, movies in standing.items() if movies and user not in served}
    users = sorted(changed | unserved)
    try:
        foldin = open_foldin(home)
    except ArtifactProblem as problem:
        raise Failure(str(problem)) from problem
    n = max(int(manifest.get("n") or 0), 1)
    rated = {user: {m: s for m, (s, _) in standing.get(user, {}).items()} for user in users}
    lists = {user: _visitor_lists(foldin, rated[user], n) if rated[user] else None
             for user in users}  # fmt: skip
    profiles = app_ratings.top_rated(standing, PROFILE_SIZE)
    with atomic_path(files.app_profiles_path(home)) as temp:
        pq.write_table(profiles, temp)
    published = manifest
    if lists or covered != version:
        fields = {files.APP_RATINGS_VERSION: version}
        try:
            published = files.publish_changed_lists(
                home, lists, fields, base=manifest["version"], rated=rated
            )
        except files.PublishedMeanwhile as moved:
            raise Failure(f"{moved}: the next light run folds visitors in against it") from moved
    seconds = time.perf_counter() - started
    context.log.info(f"{len(users)} visitors folded in, version {published['version']}")
    return MaterializeResult(
        metadata={
            "version": published["version"],
            "app_table_version": version,
            "new_app_ratings": added.num_rows,
            "visitors_folded_in": len(lists),
            "visitors_without_ratings": sum(entries is None for entries in lists.values()),
            "visitors_served": len(standing),
            "seconds": round(seconds, 2),
        }
    )


def _visitor_lists(foldin, ratings: dict[int, float], n: int) -> list[dict]:
    """A visitor's served entries, as a known user's: the top-n, then "New for you"."""
    return foldin.recommend(ratings, n=n) + foldin.new_for_you(ratings)


serving_assets = [
    serving_movie_catalog,
    serving_user_profiles,
    serving_recommendations,
    serving_new_for_you,
    serving_recommendations_json,
    serving_model_factors,
    serving_app_user_lists,
]

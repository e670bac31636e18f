"""Asset checks: data quality as first-class, visible results rather than log lines.

Blocking checks stop downstream assets from materializing on bad data.
"""

from collections.abc import Sequence
from datetime import date
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    asset_check,
)
from pyspark.sql import Window
from pyspark.sql import functions as F

from cinematch_assets import keys
from cinematch_assets.conventions import SHOWN
from cinematch_assets.keys import Key
from cinematch_assets.ml.models import artifacts
from cinematch_assets.ml.models.artifacts import ModelTables
from cinematch_assets.ml.selection.champion import read_candidates
from cinematch_assets.resources.lakehouse import Lakehouse
from cinematch_assets.transforms.bronze import BRONZE_TABLES, QUARANTINED, CsvTable
from cinematch_assets.transforms.quality import (
    duplicate_key_count,
    missing_reference_count,
    null_counts,
    off_grid_count,
    partition_counts,
)
from cinematch_assets.transforms.titles import MIN_YEAR


def latest_metadata(
    context: AssetCheckExecutionContext | AssetExecutionContext, key: Key
) -> dict[str, Any]:
    """The metadata values of the asset's latest materialization (for a check, or for an
    asset that reports on others: `studies/report`)."""
    event = context.instance.get_latest_materialization_event(AssetKey(key))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


# ---------------------------------------------------------------------------- factories


def keys_not_null(key: Key, columns: Sequence[str]) -> AssetChecksDefinition:
    @asset_check(
        asset=AssetKey(key),
        name="keys_not_null",
        blocking=True,
        description=f"No null {', '.join(columns)}.",
    )
    def check(lakehouse: Lakehouse) -> AssetCheckResult:
        nulls = null_counts(lakehouse.read(key), columns)
        return AssetCheckResult(passed=not any(nulls.values()), metadata=nulls)

    return check


def key_unique(key: Key, columns: Sequence[str]) -> AssetChecksDefinition:
    @asset_check(
        asset=AssetKey(key),
        name="key_unique",
        blocking=True,
        description=f"({', '.join(columns)}) identifies one row.",
    )
    def check(lakehouse: Lakehouse) -> AssetCheckResult:
        duplicates = duplicate_key_count(lakehouse.read(key), columns)
        return AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_rows": duplicates})

    return check


def rows_reconcile(key: Key, *upstreams: Key) -> AssetChecksDefinition:
    """Upstream rows (of every source) = rows kept here + rows dropped (per reason, in the
    asset's metadata)."""
    sources = " + ".join(keys.label(upstream) for upstream in upstreams)

    @asset_check(
        asset=AssetKey(key),
        name="rows_reconcile",
        blocking=True,
        description=f"Rows of {sources} = rows kept here + rows dropped with a reason: "
        "nothing vanishes.",
    )
    def check(context: AssetCheckExecutionContext, lakehouse: Lakehouse) -> AssetCheckResult:
        recorded = latest_metadata(context, key)
        upstream_rows = sum(lakehouse.describe(upstream).num_rows for upstream in upstreams)
        kept = lakehouse.describe(key).num_rows
        dropped = recorded.get("dropped_by_reason") or {}
        unaccounted = upstream_rows - kept - sum(dropped.values())
        return AssetCheckResult(
            passed=unaccounted == 0 and recorded.get("input_rows") == upstream_rows,
            metadata={
                "upstream_rows": upstream_rows,
                "kept_rows": kept,
                "dropped_rows": sum(dropped.values()),
                "dropped_by_reason": dropped,
                "unaccounted": unaccounted,
            },
        )

    return check


# ---------------------------------------------------------------------------- bronze


def bronze_rows_reconcile(table: CsvTable) -> AssetChecksDefinition:
    key = keys.bronze(table.name)

    @asset_check(
        asset=AssetKey(key),
        name="rows_reconcile",
        blocking=True,
        description="Input lines = rows kept here + lines dropped with a reason (the header, "
        "blank lines, and the quarantined ones, which must be the quarantine table's rows), "
        "counted on the CSV and on the committed Delta tables: nothing vanishes.",
    )
    def check(context: AssetCheckExecutionContext, lakehouse: Lakehouse) -> AssetCheckResult:
        recorded = latest_metadata(context, key)
        dropped = recorded.get("dropped_by_reason") or {}
        kept = lakehouse.describe(key).num_rows
        quarantined = lakehouse.describe(keys.quarantine(table.name)).num_rows
        reported = sum(n for why, n in dropped.items() if why.startswith(QUARANTINED))
        unaccounted = recorded.get("input_rows", -1) - kept - sum(dropped.values())
        return AssetCheckResult(
            passed=unaccounted == 0 and reported == quarantined,
            metadata={
                "input_rows": recorded.get("input_rows", -1),
                "kept_rows": kept,
                "dropped_rows": sum(dropped.values()),
                "dropped_by_reason": dropped,
                "quarantine_rows": quarantined,
                "unaccounted": unaccounted,
            },
        )

    return check


@asset_check(
    asset=AssetKey(keys.BRONZE_RATINGS),
    name="rating_on_half_star_grid",
    description="Ratings lie in [0.5, 5.0] on the half-star grid. Bronze keeps data as-is, "
    "so this only warns; Silver sets off-grid ratings aside.",
)
def bronze_rating_on_grid(lakehouse: Lakehouse) -> AssetCheckResult:
    off_grid = off_grid_count(lakehouse.read(keys.BRONZE_RATINGS))
    return AssetCheckResult(
        passed=off_grid == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={"off_grid_ratings": off_grid},
    )


bronze_checks = [
    *(keys_not_null(keys.bronze(t.name), t.keys) for t in BRONZE_TABLES.values()),
    *(bronze_rows_reconcile(t) for t in BRONZE_TABLES.values()),
    bronze_rating_on_grid,
]


# ---------------------------------------------------------------------------- silver


@asset_check(
    asset=AssetKey(keys.RATINGS_CLEAN),
    name="rating_on_half_star_grid",
    blocking=True,
    description="Every rating is one of 0.5, 1.0, ..., 5.0.",
)
def silver_rating_on_grid(lakehouse: Lakehouse) -> AssetCheckResult:
    off_grid = off_grid_count(lakehouse.read(keys.RATINGS_CLEAN))
    return AssetCheckResult(passed=off_grid == 0, metadata={"off_grid_ratings": off_grid})


@asset_check(
    asset=AssetKey(keys.RATINGS_CLEAN),
    name="movies_exist",
    blocking=True,
    description="Every rating's movieId exists in movies_clean.",
)
def ratings_reference_movies(lakehouse: Lakehouse) -> AssetCheckResult:
    missing = missing_reference_count(
        lakehouse.read(keys.RATINGS_CLEAN), lakehouse.read(keys.MOVIES_CLEAN), "movieId"
    )
    return AssetCheckResult(passed=missing == 0, metadata={"ratings_of_unknown_movies": missing})


@asset_check(
    asset=AssetKey(keys.MOVIES_CLEAN),
    name="release_year_plausible",
    blocking=True,
    description=f"Release years are null or between {MIN_YEAR} and next year.",
)
def release_year_plausible(lakehouse: Lakehouse) -> AssetCheckResult:
    latest = date.today().year + 1
    years = (
        lakehouse.read(keys.MOVIES_CLEAN)
        .agg(
            F.count_if(~F.col("release_year").between(MIN_YEAR, latest)).alias("implausible"),
            F.count_if(F.col("release_year").isNull()).alias("without_year"),
            F.min("release_year").alias("earliest"),
            F.max("release_year").alias("latest"),
        )
        .first()
    )
    return AssetCheckResult(
        passed=years["implausible"] == 0,
        metadata={k: v for k, v in years.asDict().items() if v is not None},
    )


silver_checks = [
    keys_not_null(keys.RATINGS_CLEAN, ["userId", "movieId"]),
    key_unique(keys.RATINGS_CLEAN, ["userId", "movieId"]),
    silver_rating_on_grid,
    ratings_reference_movies,
    rows_reconcile(keys.RATINGS_CLEAN, keys.BRONZE_RATINGS, keys.BRONZE_APP_RATINGS),
    keys_not_null(keys.MOVIES_CLEAN, ["movieId"]),
    key_unique(keys.MOVIES_CLEAN, ["movieId"]),
    release_year_plausible,
    rows_reconcile(keys.TAGS_CLEAN, keys.bronze("tags")),
    key_unique(keys.LINKS_CLEAN, ["movieId"]),
]


# ---------------------------------------------------------------------------- gold


@asset_check(
    asset=AssetKey(keys.TEST),
    name="split_partitions_filtered_ratings",
    blocking=True,
    description="Train and test share no (userId, movieId) and together are exactly the "
    "filtered ratings.",
    additional_deps=[AssetKey(keys.TRAIN), AssetKey(keys.RATINGS_FILTERED)],
)
def split_partitions_filtered(lakehouse: Lakehouse) -> AssetCheckResult:
    counts = partition_counts(
        {"train": lakehouse.read(keys.TRAIN), "test": lakehouse.read(keys.TEST)},
        lakehouse.read(keys.RATINGS_FILTERED),
        ["userId", "movieId"],
    )
    metadata = {
        "train_rows": counts["train_rows"],
        "test_rows": counts["test_rows"],
        "filtered_rows": counts["whole_rows"],
        "in_train_and_test": counts["in_train_and_test"],
        "filtered_but_missing": counts["whole_but_missing"],
        "not_in_filtered": counts["not_in_whole"],
    }
    passed = (
        metadata["train_rows"] + metadata["test_rows"] == metadata["filtered_rows"]
        and metadata["in_train_and_test"] == 0
        and metadata["filtered_but_missing"] == 0
        and metadata["not_in_filtered"] == 0
    )
    return AssetCheckResult(passed=passed, metadata=metadata)


gold_checks = [
    rows_reconcile(keys.RATINGS_FILTERED, keys.RATINGS_CLEAN),
    keys_not_null(keys.TRAIN, ["userId", "movieId", "rating_norm", "weight"]),
    split_partitions_filtered,
]

# ---------------------------------------------------------------------------- ml


def beats_baseline_on_validation(tables: ModelTables) -> AssetChecksDefinition:
    """The tuned model scores better than its baseline on the same validation data (plain
    ALS often does not)."""

    @asset_check(
        asset=AssetKey(tables.model),
        name="beats_baseline_on_validation",
        blocking=True,
        description="The tuned model's validation score is better than its baseline's on "
        "the same validation data.",
    )
    def check(lakehouse: Lakehouse) -> AssetCheckResult:
        training = artifacts.read_training(lakehouse.read, tables)
        return AssetCheckResult(
            passed=training.beats_baseline,
            metadata={
                f"validation_{training.metric}": training.validation,
                f"{training.baseline}_validation_{training.metric}": training.baseline_validation,
                "tuning": training.tuning_plan,
            },
        )

    return check


@asset_check(
    asset=AssetKey(keys.TEST_PREDICTIONS),
    name="every_test_row_per_model",
    blocking=True,
    description="Every Gold test row has exactly one prediction in [0.5, 5] from every model.",
    additional_deps=[AssetKey(keys.TEST)],
)
def every_test_row_per_model(lakehouse: Lakehouse) -> AssetCheckResult:
    pair = ["userId", "movieId"]
    test = lakehouse.read(keys.TEST).select(*pair)
    predictions = lakehouse.read(keys.TEST_PREDICTIONS)
    test_rows = test.count()
    per_model = {
        row["model"]: row["count"] for row in predictions.groupBy("model").count().collect()
    }
    missing = {
        name: test.join(predictions.filter(F.col("model") == name), pair, "left_anti").count()
        for name in per_model
    }
    out_of_range = predictions.filter(
        F.col("prediction").isNull() | ~F.col("prediction").between(0.5, 5.0)
    ).count()
    passed = (
        bool(per_model)
        and all(count == test_rows for count in per_model.values())
        and not any(missing.values())
        and out_of_range == 0
    )
    return AssetCheckResult(
        passed=passed,
        metadata={
            "test_rows": test_rows,
            "rows_per_model": per_model,
            "test_rows_missing_per_model": missing,
            "predictions_out_of_range": out_of_range,
        },
    )


ml_checks = [
    beats_baseline_on_validation(artifacts.RATING),
    beats_baseline_on_validation(artifacts.RANKING),
    beats_baseline_on_validation(artifacts.EASE),
    every_test_row_per_model,
]


# ---------------------------------------------------------------------------- serving


@asset_check(
    asset=AssetKey(keys.RECOMMENDATIONS),
    name="every_user_gets_unrated_catalog_movies",
    blocking=True,
    description="Every user of the models has a list; no list holds a movie its user rated, "
    "a movie twice or one missing from the catalog; stars are in [0.5, 5]; no movie above "
    "the star floor comes after one below it, and at most 1% of the shown top 10 is below "
    "it. The JSON export waits for this.",
    additional_deps=[
        AssetKey(keys.RATINGS_CLEAN),
        AssetKey(keys.MOVIE_CATALOG),
        AssetKey(keys.RANKING_USER_FACTORS),
        AssetKey(keys.RANKING_CHAMPION),
    ],
)
def every_user_gets_unrated_catalog_movies(lakehouse: Lakehouse) -> AssetCheckResult:
    recs = lakehouse.read(keys.RECOMMENDATIONS)
    users = lakehouse.read(keys.RANKING_USER_FACTORS).select("userId")
    per_user = recs.groupBy("userId").agg(
        F.count("*").alias("n"), F.countDistinct("movieId").alias("movies")
    )
    problems = {
        "users_without_a_list": users.join(recs, "userId", "left_anti").count(),
        "rated_movies_recommended": recs.join(
            lakehouse.read(keys.RATINGS_CLEAN), ["userId", "movieId"], "left_semi"
        ).count(),
        "movies_not_in_catalog": recs.join(
            lakehouse.read(keys.MOVIE_CATALOG), "movieId", "left_anti"
        ).count(),
        "stars_out_of_range": recs.filter(
            F.col("pred_rating").isNull() | ~F.col("pred_rating").between(0.5, 5.0)
        ).count(),
        "repeated_movies": per_user.filter(F.col("n") != F.col("movies")).count(),
    }
    # The star floor: a movie predicted below it comes after every movie above it, so it
    # reaches the shown top 10 only for a user with fewer than 10 movies above the floor.
    _, champion = read_candidates(lakehouse.read)
    floor = champion.star_floor
    shown = recs.filter(F.col("rank") <= SHOWN)
    below = F.col("pred_rating") < F.lit(floor)
    after = Window.partitionBy("userId").orderBy("rank")
    problems["above_floor_after_below_floor"] = (
        recs.withColumn("_below_before", F.max(below.cast("int")).over(after))
        .filter(~below & (F.col("_below_before") == 1))
        .count()
        if floor
        else 0
    )
    shown_below = shown.filter(below).count() if floor else 0
    shown_rows = shown.count()
    sizes = per_user.agg(F.min("n").alias("min"), F.max("n").alias("max")).first()
    return AssetCheckResult(
        passed=not any(problems.values()) and shown_below <= 0.01 * shown_rows,
        metadata={
            **problems,
            "star_floor": floor,
            "shown_below_floor": shown_below,
            "shown_below_floor_share": round(shown_below / max(shown_rows, 1), 5),
            "shortest_list": sizes["min"] or 0,
            "longest_list": sizes["max"] or 0,
        },
    )


serving_checks = [every_user_gets_unrated_catalog_movies]

all_checks = [*bronze_checks, *silver_checks, *gold_checks, *ml_checks, *serving_checks]

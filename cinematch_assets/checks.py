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
    AssetKey,
    asset_check,
)
from pyspark.sql import functions as F

from cinematch_assets.assets.bronze import quarantine_name
from cinematch_assets.resources.lakehouse import Lakehouse
from cinematch_assets.transforms.bronze import BRONZE_TABLES, CsvTable
from cinematch_assets.transforms.quality import (
    duplicate_key_count,
    missing_reference_count,
    null_counts,
    off_grid_count,
)
from cinematch_assets.transforms.titles import MIN_YEAR

RATINGS_CLEAN = ["silver", "ratings_clean"]
MOVIES_CLEAN = ["silver", "movies_clean"]
RATINGS_FILTERED = ["gold", "ratings_filtered"]
TRAIN = ["gold", "train_features_ml"]
TEST = ["gold", "test_features_ml"]
RATING_MODEL = ["ml", "als_rating_model"]
RANKING_MODEL = ["ml", "als_ranking_model"]
TEST_PREDICTIONS = ["ml", "test_predictions"]
RECOMMENDATIONS = ["serving", "recommendations"]
CATALOG = ["serving", "movie_catalog"]


def latest_metadata(context: AssetCheckExecutionContext, key: Sequence[str]) -> dict[str, Any]:
    """The metadata values of the asset's latest materialization."""
    event = context.instance.get_latest_materialization_event(AssetKey(key))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


# ---------------------------------------------------------------------------- factories


def keys_not_null(key: list[str], columns: Sequence[str]) -> AssetChecksDefinition:
    @asset_check(
        asset=key,
        name="keys_not_null",
        blocking=True,
        description=f"No null {', '.join(columns)}.",
    )
    def check(lakehouse: Lakehouse) -> AssetCheckResult:
        nulls = null_counts(lakehouse.read(key), columns)
        return AssetCheckResult(passed=not any(nulls.values()), metadata=nulls)

    return check


def key_unique(key: list[str], columns: Sequence[str]) -> AssetChecksDefinition:
    @asset_check(
        asset=key,
        name="key_unique",
        blocking=True,
        description=f"({', '.join(columns)}) identifies one row.",
    )
    def check(lakehouse: Lakehouse) -> AssetCheckResult:
        duplicates = duplicate_key_count(lakehouse.read(key), columns)
        return AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_rows": duplicates})

    return check


def rows_reconcile(key: list[str], upstream: list[str]) -> AssetChecksDefinition:
    """Upstream rows = rows kept here + rows dropped (per reason, in the asset's metadata)."""

    @asset_check(
        asset=key,
        name="rows_reconcile",
        blocking=True,
        description=f"Rows of {'/'.join(upstream)} = rows kept here + rows dropped with a "
        "reason: nothing vanishes.",
    )
    def check(context: AssetCheckExecutionContext, lakehouse: Lakehouse) -> AssetCheckResult:
        recorded = latest_metadata(context, key)
        upstream_rows = lakehouse.describe(upstream).num_rows
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


def bronze_lines_reconcile(table: CsvTable) -> AssetChecksDefinition:
    key = ["bronze", table.name]

    @asset_check(
        asset=key,
        name="lines_reconcile",
        blocking=True,
        description="Input lines = header + blank lines + loaded rows + quarantined rows, "
        "counted on the CSV and on the committed Delta tables: nothing vanishes.",
    )
    def check(context: AssetCheckExecutionContext, lakehouse: Lakehouse) -> AssetCheckResult:
        counted = latest_metadata(context, key)
        outcomes = counted.get("line_outcomes") or {}
        loaded = lakehouse.describe(key).num_rows
        quarantined = lakehouse.describe(["bronze", quarantine_name(table)]).num_rows
        accounted = outcomes.get("header", 0) + outcomes.get("blank", 0) + loaded + quarantined
        input_lines = counted.get("input_lines", -1)
        return AssetCheckResult(
            passed=accounted == input_lines,
            metadata={
                "input_lines": input_lines,
                "loaded_rows": loaded,
                "quarantined_rows": quarantined,
                "header_and_blank_lines": accounted - loaded - quarantined,
                "unaccounted": input_lines - accounted,
            },
        )

    return check


@asset_check(
    asset=["bronze", "ratings"],
    name="rating_on_half_star_grid",
    description="Ratings lie in [0.5, 5.0] on the half-star grid. Bronze keeps data as-is, "
    "so this only warns; Silver sets off-grid ratings aside.",
)
def bronze_rating_on_grid(lakehouse: Lakehouse) -> AssetCheckResult:
    off_grid = off_grid_count(lakehouse.read(["bronze", "ratings"]))
    return AssetCheckResult(
        passed=off_grid == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={"off_grid_ratings": off_grid},
    )


bronze_checks = [
    *(keys_not_null(["bronze", t.name], t.keys) for t in BRONZE_TABLES.values()),
    *(bronze_lines_reconcile(t) for t in BRONZE_TABLES.values()),
    bronze_rating_on_grid,
]


# ---------------------------------------------------------------------------- silver


@asset_check(
    asset=RATINGS_CLEAN,
    name="rating_on_half_star_grid",
    blocking=True,
    description="Every rating is one of 0.5, 1.0, ..., 5.0.",
)
def silver_rating_on_grid(lakehouse: Lakehouse) -> AssetCheckResult:
    off_grid = off_grid_count(lakehouse.read(RATINGS_CLEAN))
    return AssetCheckResult(passed=off_grid == 0, metadata={"off_grid_ratings": off_grid})


@asset_check(
    asset=RATINGS_CLEAN,
    name="movies_exist",
    blocking=True,
    description="Every rating's movieId exists in movies_clean.",
)
def ratings_reference_movies(lakehouse: Lakehouse) -> AssetCheckResult:
    missing = missing_reference_count(
        lakehouse.read(RATINGS_CLEAN), lakehouse.read(MOVIES_CLEAN), "movieId"
    )
    return AssetCheckResult(passed=missing == 0, metadata={"ratings_of_unknown_movies": missing})


@asset_check(
    asset=MOVIES_CLEAN,
    name="release_year_plausible",
    blocking=True,
    description=f"Release years are null or between {MIN_YEAR} and next year.",
)
def release_year_plausible(lakehouse: Lakehouse) -> AssetCheckResult:
    latest = date.today().year + 1
    years = (
        lakehouse.read(MOVIES_CLEAN)
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
    keys_not_null(RATINGS_CLEAN, ["userId", "movieId"]),
    key_unique(RATINGS_CLEAN, ["userId", "movieId"]),
    silver_rating_on_grid,
    ratings_reference_movies,
    rows_reconcile(RATINGS_CLEAN, ["bronze", "ratings"]),
    keys_not_null(MOVIES_CLEAN, ["movieId"]),
    key_unique(MOVIES_CLEAN, ["movieId"]),
    release_year_plausible,
    rows_reconcile(["silver", "tags_clean"], ["bronze", "tags"]),
    key_unique(["silver", "links_clean"], ["movieId"]),
]


# ---------------------------------------------------------------------------- gold


@asset_check(
    asset=TEST,
    name="split_partitions_filtered_ratings",
    blocking=True,
    description="Train and test share no (userId, movieId) and together are exactly the "
    "filtered ratings.",
    additional_deps=[TRAIN, RATINGS_FILTERED],
)
def split_partitions_filtered(lakehouse: Lakehouse) -> AssetCheckResult:
    keys = ["userId", "movieId"]
    train = lakehouse.read(TRAIN).select(*keys)
    test = lakehouse.read(TEST).select(*keys)
    filtered = lakehouse.read(RATINGS_FILTERED).select(*keys)
    both = train.unionByName(test)
    metadata = {
        "train_rows": train.count(),
        "test_rows": test.count(),
        "filtered_rows": filtered.count(),
        "in_train_and_test": train.join(test, keys, "left_semi").count(),
        "filtered_but_missing": filtered.join(both, keys, "left_anti").count(),
        "not_in_filtered": both.join(filtered, keys, "left_anti").count(),
    }
    passed = (
        metadata["train_rows"] + metadata["test_rows"] == metadata["filtered_rows"]
        and metadata["in_train_and_test"] == 0
        and metadata["filtered_but_missing"] == 0
        and metadata["not_in_filtered"] == 0
    )
    return AssetCheckResult(passed=passed, metadata=metadata)


gold_checks = [
    rows_reconcile(RATINGS_FILTERED, RATINGS_CLEAN),
    keys_not_null(TRAIN, ["userId", "movieId", "rating_norm", "weight"]),
    split_partitions_filtered,
]

# ---------------------------------------------------------------------------- ml


@asset_check(
    asset=RATING_MODEL,
    name="beats_bias_baseline_on_validation",
    blocking=True,
    description="The tuned rating model's validation RMSE is below the damped bias "
    "baseline's on the same validation data (plain ALS often is not).",
)
def rating_model_beats_bias_baseline(lakehouse: Lakehouse) -> AssetCheckResult:
    row = lakehouse.read(RATING_MODEL).first()
    return AssetCheckResult(
        passed=row["validation_rmse"] < row["baseline_validation_rmse"],
        metadata={
            "validation_rmse": row["validation_rmse"],
            "bias_baseline_validation_rmse": row["baseline_validation_rmse"],
            "tuning": row["tuning_plan"],
        },
    )


@asset_check(
    asset=RANKING_MODEL,
    name="beats_most_popular_on_validation",
    blocking=True,
    description="The tuned ranking model's validation NDCG is above the most-popular "
    "lists' on the same validation users.",
)
def ranking_model_beats_most_popular(lakehouse: Lakehouse) -> AssetCheckResult:
    row = lakehouse.read(RANKING_MODEL).first()
    return AssetCheckResult(
        passed=row["validation_ndcg"] > row["most_popular_validation_ndcg"],
        metadata={
            f"validation_ndcg@{row['k']}": row["validation_ndcg"],
            f"most_popular_validation_ndcg@{row['k']}": row["most_popular_validation_ndcg"],
            "tuning": row["tuning_plan"],
        },
    )


@asset_check(
    asset=TEST_PREDICTIONS,
    name="every_test_row_per_model",
    blocking=True,
    description="Every Gold test row has exactly one prediction in [0.5, 5] from every model.",
    additional_deps=[TEST],
)
def every_test_row_per_model(lakehouse: Lakehouse) -> AssetCheckResult:
    keys = ["userId", "movieId"]
    test = lakehouse.read(TEST).select(*keys)
    predictions = lakehouse.read(TEST_PREDICTIONS)
    test_rows = test.count()
    per_model = {
        row["model"]: row["count"] for row in predictions.groupBy("model").count().collect()
    }
    missing = {
        name: test.join(predictions.filter(F.col("model") == name), keys, "left_anti").count()
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
    rating_model_beats_bias_baseline,
    ranking_model_beats_most_popular,
    every_test_row_per_model,
]


# ---------------------------------------------------------------------------- serving


@asset_check(
    asset=RECOMMENDATIONS,
    name="every_user_gets_unrated_catalog_movies",
    blocking=True,
    description="Every user of the models has a list; no list holds a movie its user rated, "
    "a movie twice or one missing from the catalog; stars are in [0.5, 5]. The JSON export "
    "waits for this.",
    additional_deps=[RATINGS_CLEAN, CATALOG, ["ml", "ranking_user_factors"]],
)
def every_user_gets_unrated_catalog_movies(lakehouse: Lakehouse) -> AssetCheckResult:
    recs = lakehouse.read(RECOMMENDATIONS)
    users = lakehouse.read(["ml", "ranking_user_factors"]).select("userId")
    per_user = recs.groupBy("userId").agg(
        F.count("*").alias("n"), F.countDistinct("movieId").alias("movies")
    )
    problems = {
        "users_without_a_list": users.join(recs, "userId", "left_anti").count(),
        "rated_movies_recommended": recs.join(
            lakehouse.read(RATINGS_CLEAN), ["userId", "movieId"], "left_semi"
        ).count(),
        "movies_not_in_catalog": recs.join(lakehouse.read(CATALOG), "movieId", "left_anti").count(),
        "stars_out_of_range": recs.filter(
            F.col("pred_rating").isNull() | ~F.col("pred_rating").between(0.5, 5.0)
        ).count(),
        "repeated_movies": per_user.filter(F.col("n") != F.col("movies")).count(),
    }
    sizes = per_user.agg(F.min("n").alias("min"), F.max("n").alias("max")).first()
    return AssetCheckResult(
        passed=not any(problems.values()),
        metadata={
            **problems,
            "shortest_list": sizes["min"] or 0,
            "longest_list": sizes["max"] or 0,
        },
    )


serving_checks = [every_user_gets_unrated_catalog_movies]

all_checks = [*bronze_checks, *silver_checks, *gold_checks, *ml_checks, *serving_checks]

"""The CineMatch code location: every asset, check, job and resource in one Definitions."""

from __future__ import annotations

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    ScheduleDefinition,
    define_asset_job,
    in_process_executor,
)

from cinematch_assets import keys, settings
from cinematch_assets.assets.bronze import bronze_assets
from cinematch_assets.assets.eda import eda_report
from cinematch_assets.assets.gold import gold_features, ratings_filtered
from cinematch_assets.assets.maintenance import build_lake_retention
from cinematch_assets.assets.ml import (
    als_ranking_model,
    als_rating_model,
    content_model,
    ease_ranking_model,
    model_evaluation,
    movie_content,
    ranking_champion,
)
from cinematch_assets.assets.raw import movielens_archive
from cinematch_assets.assets.serving import serving_assets
from cinematch_assets.assets.silver import links_clean, movies_clean, ratings_clean, tags_clean
from cinematch_assets.assets.studies import study_assets
from cinematch_assets.checks import all_checks
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.resources.io_manager import DeltaLakeIOManager, PickleIOManager
from cinematch_assets.resources.lakehouse import Lakehouse
from cinematch_assets.resources.spark import SparkResource
from cinematch_assets.sensors import app_ratings_sensor

product_assets = [
    movielens_archive,
    *bronze_assets,
    movies_clean,
    ratings_clean,
    tags_clean,
    links_clean,
    eda_report,
    ratings_filtered,
    gold_features,
    als_rating_model,
    als_ranking_model,
    ease_ranking_model,
    ranking_champion,
    movie_content,
    content_model,
    model_evaluation,
    *serving_assets,
]


def last_keys(assets) -> list[AssetKey]:
    """The keys no other asset of `assets` reads or waits for."""
    upstream = {key for asset in assets for key in asset.dependency_keys}
    return sorted({key for asset in assets for key in asset.keys} - upstream)


all_assets = [
    *product_assets,
    build_lake_retention(after=last_keys(product_assets)),
    *study_assets,
]

STUDIES = AssetSelection.groups("studies")
product_job = define_asset_job(
    "cinematch_product",
    selection=AssetSelection.all() - STUDIES,
    description="The product: raw to serving, the models tuned and fitted once each, and "
    "the held-out evaluation of what is served; in one run and one JVM.",
)
studies_job = define_asset_job(
    "cinematch_studies",
    selection=STUDIES,
    description="The studies on the product's latest models: ablation, the article's "
    "variant, every candidate order on test, the discovery curve, the next period, the "
    "cold-movie protocol.",
)
app_ratings_job = define_asset_job(
    "cinematch_app_ratings",
    selection=AssetSelection.assets(keys.APP_USER_LISTS),
    description="The light run: the app's visitors who saved ratings since the served "
    "lists were made, folded into the served models and published; no Spark, no refit.",
)

# Weekly, Monday 03:00 UTC, and off until someone switches it on in the UI.
weekly_refresh = ScheduleDefinition(
    name="weekly_refresh",
    job=product_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="The product, raw to serving (MovieLens publishes a few times a year).",
)


def build_resources(data_root: DataRoot | None = None, spark: SparkResource | None = None) -> dict:
    """Every resource, all rooted at one data root (default: $CINEMATCH_HOME as it is when
    called)."""
    data_root = data_root or DataRoot()
    spark = spark or SparkResource(data_root=data_root)
    lakehouse = Lakehouse(spark=spark, data_root=data_root)
    return {
        "data_root": data_root,
        "spark": spark,
        "lakehouse": lakehouse,
        "io_manager": DeltaLakeIOManager(lakehouse=lakehouse),
        # The raw asset's output is a small descriptor of the files on disk, not a table.
        "raw_io_manager": PickleIOManager(data_root=data_root),
    }


def build_definitions(resources: dict | None = None) -> Definitions:
    return Definitions(
        assets=all_assets,
        asset_checks=all_checks,
        jobs=[product_job, studies_job, app_ratings_job],
        schedules=[weekly_refresh],
        sensors=[app_ratings_sensor(app_ratings_job, settings.fold_in_interval_seconds())],
        resources=resources or build_resources(),
        # One process and one JVM for the whole run: a JVM per step costs seconds and GBs.
        executor=in_process_executor,
    )


defs = build_definitions()

"""The CineMatch code location: every asset, check, job and resource in one Definitions."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    FilesystemIOManager,
    define_asset_job,
    in_process_executor,
)

from cinematch_assets.assets.bronze import bronze_assets
from cinematch_assets.assets.raw import movielens_archive
from cinematch_assets.checks import bronze_checks
from cinematch_assets.resources.io_manager import DeltaLakeIOManager
from cinematch_assets.resources.spark import SparkResource
from cinematch_assets.settings import cinematch_home, lake_root

all_assets = [movielens_archive, *bronze_assets]
all_checks = [*bronze_checks]

pipeline_job = define_asset_job(
    "cinematch_pipeline",
    selection=AssetSelection.all(include_sources=False),
    description="Materialize the whole lakehouse, raw to serving, in one run and one JVM.",
)


def build_resources(spark: SparkResource | None = None) -> dict:
    """Resources rooted at $CINEMATCH_HOME as it is when called."""
    spark = spark or SparkResource()
    return {
        "spark": spark,
        "io_manager": DeltaLakeIOManager(spark=spark, root=str(lake_root())),
        # The raw asset's output is a small descriptor of the files on disk, not a table.
        "raw_io_manager": FilesystemIOManager(base_dir=str(cinematch_home() / "dagster_io")),
    }


defs = Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[pipeline_job],
    resources=build_resources(),
    # One process and one JVM for the whole run: a JVM per step costs seconds and GBs.
    executor=in_process_executor,
)

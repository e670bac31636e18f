"""The lakehouse as a Dagster IO manager: assets return Spark DataFrames, the manager
commits them as Delta tables under `<lake>/<layer>/<table>` (the asset key's path) and
hands them to downstream assets as DataFrames."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster import (
    ConfigurableIOManager,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
)
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession

from cinematch_assets.resources.delta_tables import (
    TableWrite,
    describe_table,
    read_table,
    write_table,
)
from cinematch_assets.resources.spark import SparkResource
from cinematch_assets.settings import lake_root

# Asset (output) metadata that lets an asset replace its table's schema.
ALLOW_SCHEMA_EVOLUTION = "cinematch/allow_schema_evolution"
PREVIEW_ROWS = 5


def column_schema(df: DataFrame) -> TableSchema:
    return TableSchema(
        columns=[TableColumn(name=f.name, type=f.dataType.simpleString()) for f in df.schema]
    )


def markdown_preview(df: DataFrame, rows: int = PREVIEW_ROWS) -> str:
    sample = df.limit(rows).toPandas()
    if sample.empty:
        return "_(empty table)_"
    return sample.to_markdown(index=False)


def table_metadata(spark: SparkSession, written: TableWrite, engine: str) -> dict[str, Any]:
    """What every table materialization reports in Dagster."""
    table = read_table(spark, written.path, version=written.version, engine=engine)
    return {
        "dagster/row_count": written.num_rows,
        "dagster/column_schema": column_schema(table),
        "path": MetadataValue.path(str(written.path)),
        "delta/version": written.version,
        "delta/files": written.num_files,
        "delta/size_bytes": written.size_bytes,
        "delta/mode": written.mode,
        "delta/schema_changed": written.schema_changed,
        "preview": MetadataValue.md(markdown_preview(table)),
    }


class DeltaLakeIOManager(ConfigurableIOManager):
    """Stores Spark DataFrames as Delta tables; see `delta_tables` for the commit protocol."""

    spark: SparkResource
    root: str = Field(
        default_factory=lambda: str(lake_root()),
        description="Lake root (default $CINEMATCH_HOME/lake).",
    )
    engine: str = Field(
        default_factory=lambda: os.environ.get("CINEMATCH_DELTA_ENGINE", "delta-rs"),
        description="'delta-rs' (default: Spark writes Parquet, delta-rs commits) or 'spark' "
        "(Spark's format('delta'); needs the Delta JARs) (env CINEMATCH_DELTA_ENGINE).",
    )

    def table_path(self, asset_key_path: Sequence[str]) -> Path:
        return Path(self.root, *asset_key_path)

    def read(self, asset_key_path: Sequence[str], version: int | None = None) -> DataFrame:
        """A table by asset key path, for checks and tools outside the asset graph's inputs."""
        return read_table(
            self.spark.get_session(),
            self.table_path(asset_key_path),
            version=version,
            engine=self.engine,  # type: ignore[arg-type]
        )

    def describe(self, asset_key_path: Sequence[str]) -> TableWrite:
        """Version and row count of a table's latest snapshot, from the Delta log alone."""
        return describe_table(self.table_path(asset_key_path))

    def handle_output(self, context: OutputContext, obj: DataFrame) -> None:
        allow = bool((context.definition_metadata or {}).get(ALLOW_SCHEMA_EVOLUTION, False))
        written = write_table(
            obj,
            self.table_path(context.asset_key.path),
            allow_schema_evolution=allow,
            engine=self.engine,  # type: ignore[arg-type]
            commit_metadata={
                "dagster_run_id": context.run_id,
                "dagster_asset": context.asset_key.to_user_string(),
            },
        )
        context.add_output_metadata(table_metadata(obj.sparkSession, written, self.engine))

    def load_input(self, context: InputContext) -> DataFrame:
        return self.read(context.asset_key.path)

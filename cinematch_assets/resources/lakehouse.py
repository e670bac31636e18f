"""The lakehouse resource: Delta tables addressed by asset key, `<lake>/<layer>/<table>`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field
from pyspark.sql import DataFrame

from cinematch_assets import settings
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.resources.spark import SparkResource
from cinematch_assets.storage.delta_tables import (
    TableWrite,
    describe_table,
    read_table,
    write_table,
)


class Lakehouse(ConfigurableResource):
    """Reads and writes the lake's Delta tables; see `delta_tables` for the commit protocol.

    The IO manager uses it for asset inputs and outputs; asset checks use it directly.
    """

    spark: SparkResource
    data_root: DataRoot
    engine: str = Field(
        default_factory=settings.delta_engine,
        description="'delta-rs' (default: Spark writes Parquet, delta-rs commits) or 'spark' "
        "(Spark's format('delta'); needs the Delta JARs) (env CINEMATCH_DELTA_ENGINE).",
    )

    @property
    def root(self) -> Path:
        """The lake: `<data root>/lake`."""
        return self.data_root.lake

    def table_path(self, key_path: Sequence[str]) -> Path:
        return self.root.joinpath(*key_path)

    def read(self, key_path: Sequence[str], version: int | None = None) -> DataFrame:
        return read_table(
            self.spark.spark_session,
            self.table_path(key_path),
            version=version,
            engine=self.engine,  # type: ignore[arg-type]
        )

    def write(
        self,
        df: DataFrame,
        key_path: Sequence[str],
        *,
        allow_schema_evolution: bool = False,
        commit_metadata: Mapping[str, Any] | None = None,
    ) -> TableWrite:
        return write_table(
            df,
            self.table_path(key_path),
            allow_schema_evolution=allow_schema_evolution,
            engine=self.engine,  # type: ignore[arg-type]
            commit_metadata=commit_metadata,
        )

    def describe(self, key_path: Sequence[str]) -> TableWrite:
        """Version and row count of a table's latest snapshot, from the Delta log alone."""
        return describe_table(self.table_path(key_path))

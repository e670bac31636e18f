"""IO managers. The lakehouse: assets return Spark DataFrames, the manager commits them as
Delta tables under `<lake>/<layer>/<table>` (the asset key's path) and hands them to
downstream assets as DataFrames. Small Python values (the raw asset's descriptor of the
files on disk) are pickled under the data root."""

from __future__ import annotations

import pickle
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
from pyspark.sql import DataFrame

from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.resources.lakehouse import Lakehouse
from cinematch_assets.storage.atomic_files import write_atomic
from cinematch_assets.storage.delta_tables import TableWrite

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


def table_metadata(table: DataFrame, written: TableWrite) -> dict[str, Any]:
    """What every table materialization reports in Dagster (`table` is the committed
    version, read back)."""
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
    """Stores Spark DataFrames as Delta tables of the lakehouse."""

    lakehouse: Lakehouse

    def handle_output(self, context: OutputContext, obj: DataFrame) -> None:
        key_path = context.asset_key.path
        written = self.lakehouse.write(
            obj,
            key_path,
            allow_schema_evolution=bool(
                (context.definition_metadata or {}).get(ALLOW_SCHEMA_EVOLUTION, False)
            ),
            commit_metadata={
                "dagster_run_id": context.run_id,
                "dagster_asset": context.asset_key.to_user_string(),
            },
        )
        committed = self.lakehouse.read(key_path, version=written.version)
        context.add_output_metadata(table_metadata(committed, written))

    def load_input(self, context: InputContext) -> DataFrame:
        return self.lakehouse.read(context.asset_key.path)


class PickleIOManager(ConfigurableIOManager):
    """Small Python values, pickled to `<data root>/dagster_io/<asset key path>`."""

    data_root: DataRoot

    def _path(self, context: InputContext | OutputContext) -> Path:
        return self.data_root.dagster_io.joinpath(*context.asset_key.path)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        write_atomic(self._path(context), pickle.dumps(obj))

    def load_input(self, context: InputContext) -> Any:
        return pickle.loads(self._path(context).read_bytes())

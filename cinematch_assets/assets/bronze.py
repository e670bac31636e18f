"""Bronze: one Delta table per MovieLens CSV, plus its quarantine of malformed lines."""

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    AssetsDefinition,
    MetadataValue,
    Output,
    multi_asset,
)

from cinematch_assets import keys
from cinematch_assets.resources.spark import SparkResource
from cinematch_assets.sources.movielens import MovieLensRelease
from cinematch_assets.transforms.bronze import BRONZE_TABLES, CsvTable, empty_bronze, parse_csv
from cinematch_assets.transforms.reconcile import reconciliation_metadata


def build_bronze_asset(table: CsvTable) -> AssetsDefinition:
    @multi_asset(
        name=f"bronze_{table.name}",
        group_name="bronze",
        ins={"archive": AssetIn(key=keys.MOVIELENS_ARCHIVE)},
        outs={
            "table": AssetOut(
                key=keys.bronze(table.name),
                description=f"{table.file_name} as-is with explicit types "
                f"({table.header}) plus ingest_time, source_file and batch_id (the run id).",
                kinds={"spark", "delta"},
            ),
            "quarantine": AssetOut(
                key=keys.quarantine(table.name),
                description=f"Lines of {table.file_name} that could not be loaded: the raw line, "
                "the reason, source file and batch.",
                kinds={"spark", "delta"},
            ),
        },
    )
    def bronze(context: AssetExecutionContext, spark: SparkResource, archive: MovieLensRelease):
        session = spark.spark_session
        source = archive.path / table.file_name
        present = table.file_name in archive.files
        if present:
            parsed = parse_csv(session, source, table, batch_id=context.run.run_id)
        else:
            context.log.info(f"{archive.variant} ships no {table.file_name}: empty table")
            parsed = empty_bronze(session, table)
        # Input lines = kept + dropped per reason (header, blank, each quarantine reason).
        lines = {
            "source": MetadataValue.path(str(source)),
            "source_present": present,
            **reconciliation_metadata(parsed.counts),
            "quarantined_rows": parsed.quarantined,
        }
        if parsed.quarantined:
            context.log.warning(f"{table.file_name}: {parsed.quarantined} lines quarantined")
        yield Output(parsed.rows, output_name="table", metadata=lines)
        yield Output(parsed.quarantine, output_name="quarantine", metadata=lines)
        parsed.release()  # both outputs are written by now

    return bronze


bronze_assets = [build_bronze_asset(table) for table in BRONZE_TABLES.values()]

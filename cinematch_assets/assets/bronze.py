"""Bronze: one Delta table per MovieLens CSV, plus its quarantine of malformed lines; and
the ratings saved in the app, the second source, with their quarantine."""

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)
from pyspark.sql import DataFrame

from cinematch_assets import keys
from cinematch_assets.resources.lakehouse import Lakehouse
from cinematch_assets.resources.spark import SparkResource
from cinematch_assets.sources.movielens import MovieLensRelease
from cinematch_assets.storage import app_ratings as app_ratings_table
from cinematch_assets.transforms.bronze import (
    BRONZE_TABLES,
    CsvTable,
    empty_bronze,
    parse_csv,
    split_app_ratings,
)
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


@asset(
    key=keys.APP_RATINGS,
    group_name="app",
    kinds={"delta"},
    description="Ratings visitors save in the app (userId from 1,000,000,000, movieId, "
    "rating: null for a removal, rated_at, session, serving_version), appended by the app "
    "with delta-rs, one commit per save. Materializing creates it empty when missing and "
    "records its version, its rows and the rows new since the last materialization.",
)
def app_ratings(context: AssetExecutionContext, lakehouse: Lakehouse) -> MaterializeResult:
    app_ratings_table.ensure_tables(lakehouse.data_root.path)
    table = lakehouse.describe(keys.APP_RATINGS)
    # The table is a log: the rows added since the last materialization are the news.
    last = context.instance.get_latest_materialization_event(AssetKey(keys.APP_RATINGS))
    before = last.asset_materialization.metadata.get("rows") if last else None
    return MaterializeResult(
        metadata={
            "delta_version": table.version,
            "rows": table.num_rows,
            "new_rows": table.num_rows - (before.value if before else 0),
        }
    )


@multi_asset(
    name="bronze_app_ratings",
    group_name="bronze",
    deps=[AssetKey(keys.APP_RATINGS)],
    outs={
        "table": AssetOut(
            key=keys.BRONZE_APP_RATINGS,
            description="The app's ratings as of this run, with ingest_time, source_file "
            "(the app table's Delta version) and batch_id (the run id).",
            kinds={"spark", "delta"},
        ),
        "quarantine": AssetOut(
            key=keys.quarantine("app_ratings"),
            description="App ratings that break the table's contract (no user, movie or "
            "time; a user outside the app's id range; an id past 32 bits), with the reason.",
            kinds={"spark", "delta"},
        ),
    },
)
def bronze_app_ratings(context: AssetExecutionContext, lakehouse: Lakehouse):
    # A run that selects Bronze without `app/ratings` on a new data root reads it empty.
    app_ratings_table.ensure_tables(lakehouse.data_root.path)
    # The version read is pinned, so rows saved during the run wait for the next one.
    version = lakehouse.describe(keys.APP_RATINGS).version
    events: DataFrame = lakehouse.read(keys.APP_RATINGS, version=version)
    parsed = split_app_ratings(
        events, source=f"app/ratings@v{version}", batch_id=context.run.run_id
    )
    counts = {"app_table_version": version, **reconciliation_metadata(parsed.counts)}
    if parsed.quarantined:
        context.log.warning(f"app ratings: {parsed.quarantined} rows quarantined")
    yield Output(parsed.rows, output_name="table", metadata=counts)
    yield Output(parsed.quarantine, output_name="quarantine", metadata=counts)
    parsed.release()


bronze_assets = [
    *(build_bronze_asset(table) for table in BRONZE_TABLES.values()),
    app_ratings,
    bronze_app_ratings,
]

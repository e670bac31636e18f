"""Maintenance: the step that ends the product run and keeps the data root's size bounded
however often runs come (`storage.retention`)."""

from collections.abc import Sequence

from dagster import AssetKey, AssetsDefinition, Config, MaterializeResult, asset
from pydantic import Field

from cinematch_assets import keys, settings
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.storage.retention import apply_retention


class RetentionConfig(Config):
    retention_hours: int = Field(
        default_factory=settings.lake_retention_hours,
        ge=0,
        description="Replaced table versions' files older than this go (time travel ends "
        "there); below a run's length only when runs never overlap.",
    )


def build_lake_retention(after: Sequence[AssetKey]) -> AssetsDefinition:
    """The retention step, run after every asset of `after` (the product's last ones)."""

    @asset(
        key=keys.LAKE_RETENTION,
        deps=list(after),
        group_name="maintenance",
        kinds={"delta"},
        description="Keeps the lake's size bounded: the app ratings' small files merged, "
        "then every table vacuumed of the files no version younger than the retention "
        "needs. (Served lists keep two versions and model matrices three files, by "
        "themselves.)",
    )
    def lake_retention(config: RetentionConfig, data_root: DataRoot) -> MaterializeResult:
        kept = apply_retention(data_root.path, data_root.lake, config.retention_hours)
        return MaterializeResult(
            metadata={
                "retention_hours": config.retention_hours,
                "tables": kept.tables,
                "files_removed": kept.files_removed,
                "app_files_compacted": kept.app_files_compacted,
                "lake_bytes_before": kept.bytes_before,
                "lake_bytes_after": kept.bytes_after,
            }
        )

    return lake_retention

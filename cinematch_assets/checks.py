"""Asset checks: data quality as first-class, visible results rather than log lines.

Blocking checks stop downstream assets from materializing on bad data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    asset_check,
)

from cinematch_assets.assets.bronze import quarantine_name
from cinematch_assets.resources.io_manager import DeltaLakeIOManager
from cinematch_assets.transforms.bronze import BRONZE_TABLES, CsvTable
from cinematch_assets.transforms.quality import null_counts, off_grid_count


def latest_metadata(context: AssetCheckExecutionContext, key: Sequence[str]) -> dict[str, Any]:
    """The metadata values of the asset's latest materialization."""
    event = context.instance.get_latest_materialization_event(AssetKey(key))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def build_bronze_checks(table: CsvTable) -> list[AssetChecksDefinition]:
    key = ["bronze", table.name]

    @asset_check(
        asset=key,
        name="keys_not_null",
        blocking=True,
        description=f"No null {', '.join(table.keys)} (lines missing a key are quarantined).",
    )
    def keys_not_null(io_manager: DeltaLakeIOManager) -> AssetCheckResult:
        nulls = null_counts(io_manager.read(key), table.keys)
        return AssetCheckResult(passed=not any(nulls.values()), metadata=nulls)

    @asset_check(
        asset=key,
        name="lines_reconcile",
        blocking=True,
        description="Input lines = header + blank lines + loaded rows + quarantined rows, "
        "counted on the CSV and on the committed Delta tables: nothing vanishes.",
    )
    def lines_reconcile(
        context: AssetCheckExecutionContext, io_manager: DeltaLakeIOManager
    ) -> AssetCheckResult:
        counted = latest_metadata(context, key)
        outcomes = counted.get("line_outcomes") or {}
        loaded = io_manager.describe(key).num_rows
        quarantined = io_manager.describe(["bronze", quarantine_name(table)]).num_rows
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

    return [keys_not_null, lines_reconcile]


@asset_check(
    asset=["bronze", "ratings"],
    name="rating_on_half_star_grid",
    description="Ratings lie in [0.5, 5.0] on the half-star grid. Bronze keeps data as-is, "
    "so this only warns; Silver sets off-grid ratings aside.",
)
def bronze_rating_on_grid(io_manager: DeltaLakeIOManager) -> AssetCheckResult:
    off_grid = off_grid_count(io_manager.read(["bronze", "ratings"]))
    return AssetCheckResult(
        passed=off_grid == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={"off_grid_ratings": off_grid},
    )


bronze_checks = [
    check for table in BRONZE_TABLES.values() for check in build_bronze_checks(table)
] + [bronze_rating_on_grid]

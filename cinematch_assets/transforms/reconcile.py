"""Rows kept and rows dropped per reason: how every layer leaves rows out without losing them.

A transform that leaves rows out does not filter them away. It marks every input row
with the reason it is dropped (`REASON`, null when kept), so that one pass yields both
the rows to keep (`kept_rows`) and the accounting (`reason_counts`): input rows = kept
rows + dropped rows per reason. Assets put that accounting into their metadata
(`reconciliation_metadata`), and the `rows_reconcile` checks verify it against the
committed tables.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

REASON = "drop_reason"
KEPT = "kept"


def first_reason(*conditions: tuple[Column, str]) -> Column:
    """The reason of the first condition that holds, else null (kept). A null condition
    counts as false."""
    result = F.lit(None).cast("string")
    for condition, reason in reversed(conditions):
        result = F.when(F.coalesce(condition, F.lit(False)), F.lit(reason)).otherwise(result)
    return result


def kept_rows(annotated: DataFrame) -> DataFrame:
    """The rows without a drop reason, without the reason column."""
    return annotated.filter(F.col(REASON).isNull()).drop(REASON)


def reason_counts(annotated: DataFrame) -> dict[str, int]:
    """Rows kept and rows dropped per reason, in one pass."""
    counts = annotated.groupBy(F.coalesce(F.col(REASON), F.lit(KEPT)).alias("r")).count()
    return {KEPT: 0} | {row["r"]: row["count"] for row in counts.collect()}


def reason_counts_by(annotated: DataFrame, column: str) -> dict[str, dict[str, int]]:
    """`reason_counts` for each value of `column` (a source), in one pass."""
    reason = F.coalesce(F.col(REASON), F.lit(KEPT)).alias("r")
    counts: dict[str, dict[str, int]] = {}
    for row in annotated.groupBy(F.col(column).alias("by"), reason).count().collect():
        counts.setdefault(row["by"], {KEPT: 0})[row["r"]] = row["count"]
    return counts


def total_counts(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """Per-reason counts summed over the groups of `reason_counts_by`."""
    total = {KEPT: 0}
    for group in counts.values():
        for reason, n in group.items():
            total[reason] = total.get(reason, 0) + n
    return total


def reconciliation_metadata(counts: dict[str, int]) -> dict[str, Any]:
    """input rows = kept rows + dropped rows, with the reasons: the materialization
    metadata that the `rows_reconcile` checks read back."""
    dropped = {reason: n for reason, n in counts.items() if reason != KEPT}
    return {
        "input_rows": sum(counts.values()),
        "kept_rows": counts[KEPT],
        "dropped_rows": sum(dropped.values()),
        # A dict becomes JSON metadata in Dagster.
        "dropped_by_reason": dropped,
    }

"""The README's benchmark table is generated from the benchmark's JSON reports."""

from __future__ import annotations

import pytest

from benchmarks.table import END, START, main, markdown_table, with_table

REPORT = {
    "date": "2026-12-03T14:00:00+00:00",
    "dataset": {"variant": "synthetic-1m"},
    "rows": {"bronze/ratings": 1_000_000},
    "machine": {"spark_driver_memory": "6g"},
    "jobs": {
        "cinematch_product": {
            "success": True,
            "wall_seconds": 612.4,
            "fits": {"als": 18, "ease": 4},
            "peak_rss_mb_all_processes": 10_854,
            "spark_jobs": 2_318,
            "step_seconds": {"als_rating_model": 180.2, "ml__ranking_champion": 80.0},
        },
        "cinematch_studies": {
            "success": False,
            "wall_seconds": 30.0,
            "fits": {"als": 0},
            "peak_rss_mb_all_processes": 8_192,
            "step_seconds": {},
        },
    },
}


def test_one_row_per_job_with_its_numbers():
    table = markdown_table([REPORT]).splitlines()
    assert len(table) == 4
    assert table[2] == (
        "| synthetic-1m | 1,000,000 | product | 612 s | 18 ALS + 4 EASE | 2,318 "
        "| als_rating_model 180 s, ml/ranking_champion 80 s | 10.6 GB | 6g | ok |"
    )
    # A report from before Spark jobs were counted has none.
    assert table[3].startswith("| synthetic-1m | 1,000,000 | studies | 30 s | none | — |")
    assert table[3].endswith("| 8.0 GB | 6g | **failed** |")


def test_the_table_replaces_what_is_between_the_markers():
    readme = f"# x\n\n{START}\nold\n{END}\n\nafter\n"
    assert with_table(readme, "new\n") == f"# x\n\n{START}\nnew\n{END}\n\nafter\n"
    with pytest.raises(ValueError, match="benchmarks:start"):
        with_table("# no markers\n", "new\n")


def test_the_readme_table_is_made_from_the_kept_reports():
    assert main(["--check"]) == 0, "run: python -m benchmarks.table"

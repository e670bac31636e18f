"""Shared fixtures. Spark takes seconds to start, so the whole suite shares one session."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance

from cinematch_assets.definitions import build_definitions, build_resources
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.resources.spark import SparkResource

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = REPO_ROOT.parent / "shared" / "data" / "movielens" / "ml-latest-small-2016.zip"


# The suite's Spark settings, whatever CINEMATCH_SPARK_* the environment holds.
TEST_SPARK = {
    "master": "local[2]",
    "remote": "",
    "driver_memory": "2g",
    "shuffle_partitions": 4,
    "ui_enabled": False,
    "conf": {},
    "delta_jars": False,
}


@pytest.fixture(scope="session")
def spark():
    session = SparkResource(**TEST_SPARK).spark_session
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shared_archive() -> Path:
    """The real MovieLens archive shipped next to the repo, or a skip when it is absent."""
    if not SHARED_ARCHIVE.is_file():
        pytest.skip(f"real-data test: {SHARED_ARCHIVE} not found (it ships only beside the repo)")
    return SHARED_ARCHIVE


RAW_OP = "raw__movielens_archive"


def run_pipeline(
    spark,
    home: Path,
    raw_config: dict,
    selection: list[list[str]] | None = None,
    ops: dict | None = None,
):
    """Materialize every asset (or `selection`) into `home` with the definitions' own job
    (`ops`: run config of other assets); return (result, instance, lakehouse)."""
    # Rooted at `home` through the data root resource alone (CINEMATCH_HOME stays as it
    # is): every path of the run must follow it.
    resources = build_resources(DataRoot(home=str(home)), SparkResource(**TEST_SPARK))
    job = build_definitions(resources).resolve_job_def("cinematch_pipeline")
    instance = DagsterInstance.ephemeral()
    result = job.execute_in_process(
        run_config={"ops": {RAW_OP: {"config": raw_config}, **(ops or {})}},
        instance=instance,
        asset_selection=[AssetKey(key) for key in selection] if selection else None,
    )
    return result, instance, resources["lakehouse"]


# One combination each: the test is about what the models learn, not about tuning.
SMALL_GRIDS = {
    "als_rating_model": {
        "config": {
            "ranks": [20],
            "reg_params": [0.15],
            "bias_dampings": [10.0],
            "bias_decay_weighting": [False],
        }
    },
    "als_ranking_model": {"config": {"ranks": [20], "alphas": [2.0]}},
    "ease_ranking_model": {"config": {"regs": [300.0]}},
    "ml__ranking_champion": {
        "config": {"stars_weights": [0.0, 1.0], "popularity_penalties": [0.0, 0.1]}
    },
}


@pytest.fixture(scope="session")
def synthetic_models_run(spark, tmp_path_factory):
    """The whole graph on synthetic-small, whose ratings and choices have planted structure."""
    home = tmp_path_factory.mktemp("models")
    return (*run_pipeline(spark, home, {"variant": "synthetic-small"}, ops=SMALL_GRIDS), home)

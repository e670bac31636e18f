"""Shared fixtures. Spark takes seconds to start, so the whole suite shares one session."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    from cinematch_assets.resources.spark import SparkResource

    session = SparkResource(**TEST_SPARK).spark_session
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shared_archive() -> Path:
    """The real MovieLens archive shipped next to the repo, or a skip when it is absent."""
    if not SHARED_ARCHIVE.is_file():
        pytest.skip(f"real-data test: {SHARED_ARCHIVE} not found (it ships only beside the repo)")
    return SHARED_ARCHIVE

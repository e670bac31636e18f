"""Shared fixtures. Spark takes seconds to start, so the whole suite shares one session."""

from __future__ import annotations

import json
import socket
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance

from cinematch_assets.definitions import build_definitions, build_resources
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.resources.spark import SparkResource
from cinematch_assets.sources.synthetic import SyntheticSpec, generate_movielens
from cinematch_assets.storage import app_ratings
from cinematch_assets.storage import serving_files as files

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
PRODUCT_JOB, STUDIES_JOB = "cinematch_product", "cinematch_studies"


def run_pipeline(
    spark,
    home: Path,
    raw_config: dict,
    selection: list[list[str]] | None = None,
    ops: dict | None = None,
    *,
    studies: bool = False,
):
    """Materialize the product job (or `selection` of it) into `home` with the definitions'
    own job, then, with `studies`, the studies job on the same instance, which must
    succeed (`ops`: run config of other assets); return (the product job's result,
    instance, lakehouse)."""
    # Rooted at `home` through the data root resource alone (CINEMATCH_HOME stays as it
    # is): every path of the run must follow it.
    resources = build_resources(DataRoot(home=str(home)), SparkResource(**TEST_SPARK))
    definitions = build_definitions(resources)
    instance = DagsterInstance.ephemeral()
    ops = ops or {}
    product = {name: config for name, config in ops.items() if not name.startswith("studies__")}
    result = definitions.resolve_job_def(PRODUCT_JOB).execute_in_process(
        run_config={"ops": {RAW_OP: {"config": raw_config}, **product}},
        instance=instance,
        asset_selection=[AssetKey(key) for key in selection] if selection else None,
    )
    if studies and result.success:
        studied = definitions.resolve_job_def(STUDIES_JOB).execute_in_process(
            run_config={"ops": {k: v for k, v in ops.items() if k not in product}},
            instance=instance,
        )
        assert studied.success
    return result, instance, resources["lakehouse"]


EVALUATED_USERS = 300
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
    # The time-decay Gram: the weighting the default grid adds, on the whole path.
    "ease_ranking_model": {"config": {"regs": [300.0], "decay_weighting": [True]}},
    # Fewer than synthetic-small's test users: the lists are scored on a sample of them.
    "model_evaluation": {"config": {"sample_users": EVALUATED_USERS}},
    "ml__ranking_champion": {
        "config": {
            "stars_weights": [0.0, 1.0],
            "popularity_penalties": [0.0, 0.1],
            "taste_weights": [0.0, 0.2],
            "als_weights": [0.0, 0.5],
        }
    },
    "studies__next_period": {"config": {"rp3_betas": [0.5], "sequence_regs": [300.0]}},
}


# A movie added to the release with genres and no rating, as a real catalog grows: a
# family musical (no synthetic-small movie has exactly these genres).
NEW_MOVIE_ID = 1_000_000
NEW_MOVIE_GENRES = ("Animation", "Children", "Musical")


@pytest.fixture(scope="session")
def synthetic_release(tmp_path_factory) -> Path:
    """synthetic-small with NEW_MOVIE appended to movies.csv."""
    folder = tmp_path_factory.mktemp("release") / "synthetic-small"
    generate_movielens(SyntheticSpec.from_variant("synthetic-small"), folder)
    with (folder / "movies.csv").open("a", encoding="utf-8") as movies:
        movies.write(f"{NEW_MOVIE_ID},Sing Along Sky (2016),{'|'.join(NEW_MOVIE_GENRES)}\n")
    return folder


def save_app_ratings(home: Path, release: Path) -> tuple[int, dict[int, float]]:
    """A visitor of the app saves 5 stars for the 30 most rated animated films, then
    removes one: (their user id, the ratings that stand)."""
    movies = pd.read_csv(release / "movies.csv")
    counts = pd.read_csv(release / "ratings.csv")["movieId"].value_counts()
    animated = movies.loc[movies["genres"].str.contains("Animation"), "movieId"]
    liked = counts.reindex(animated).dropna().sort_values(ascending=False).index[:30]
    user, key = app_ratings.create_account(home)
    ratings = {int(m): 5.0 for m in liked}
    save = partial(app_ratings.save_ratings, home, user, key, movies=set(movies["movieId"]),
                   session="test", serving_version=None)  # fmt: skip
    save(ratings)
    removed = next(iter(ratings))
    save({removed: None})
    del ratings[removed]
    return user, ratings


@pytest.fixture(scope="session")
def synthetic_models_run(spark, synthetic_release, tmp_path_factory):
    """The whole graph on synthetic-small (ratings and choices with planted structure),
    plus one movie nobody rated yet, and an app visitor's saved ratings (the first app
    account: user `APP_USERS_FROM`)."""
    home = tmp_path_factory.mktemp("models")
    raw = {"local_path": str(synthetic_release)}
    save_app_ratings(home, synthetic_release)
    return (*run_pipeline(spark, home, raw, ops=SMALL_GRIDS, studies=True), home)


def served_json(home: Path) -> dict[str, list[dict]]:
    """Every user's served list, from the JSON shards of the published version."""
    manifest = json.loads(files.manifest_path(home).read_text())
    lists = {}
    for shard in range(manifest["shards"]):
        part = files.recommendations_dir(home) / manifest["version"] / files.shard_name(shard)
        lists |= json.loads(part.read_text())
    return lists


def served_ratings(home: Path) -> dict[int, dict[int, float]]:
    """Every served user's ratings kept beside their list, from the published version."""
    manifest = json.loads(files.manifest_path(home).read_text())
    folder = files.recommendations_dir(home) / manifest["version"]
    ratings: dict[int, dict[int, float]] = {}
    for shard in range(manifest["shards"]):
        lists, rated = files.read_shard(folder / files.shard_name(shard))
        ratings |= {int(user): {} for user in lists}
        for user, movie, stars in zip(rated.users, rated.movies, rated.stars, strict=True):
            ratings[int(user)][int(movie)] = float(stars)
    return ratings


def free_port() -> int:
    """A TCP port nobody listens on now, on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

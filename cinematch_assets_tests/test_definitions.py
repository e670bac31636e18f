"""Operations: the weekly schedule, the automation that makes the models and serving
follow new upstream data and the sensor that serves the app's visitors, evaluated by
Dagster itself (no Spark: materialization events and runs recorded in an ephemeral
instance); and Dagster's `dg` CLI on the same definitions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster._core.test_utils import create_run_for_test

from cinematch_assets import keys
from cinematch_assets.definitions import all_assets, defs
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.storage import app_ratings
from cinematch_assets.storage import serving_files as files

from .conftest import REPO_ROOT

DOWNSTREAM_GROUPS = {"ml", "serving"}


def keys_in(groups: set[str]) -> set[dg.AssetKey]:
    return {
        key for asset in all_assets for key in asset.keys if asset.group_names_by_key[key] in groups
    }


def record(instance: dg.DagsterInstance, keys) -> None:
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))


def test_weekly_schedule_of_the_whole_job_is_stopped_by_default():
    schedule = next(s for s in defs.schedules if s.name == "weekly_refresh")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.job_name == "cinematch_product"


def test_the_light_run_is_the_visitors_lists_alone_and_its_sensor_is_off_by_default():
    light = defs.resolve_job_def("cinematch_app_ratings").asset_layer.asset_graph
    assert set(light.executable_asset_keys) == {dg.AssetKey(list(keys.APP_USER_LISTS))}
    sensor = defs.resolve_sensor_def("app_ratings_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.minimum_interval_seconds == 60 and sensor.job_name == "cinematch_app_ratings"


def test_the_product_job_leaves_out_the_studies_and_nothing_it_serves_needs_them():
    product = defs.resolve_job_def("cinematch_product").asset_layer.asset_graph
    studies = defs.resolve_job_def("cinematch_studies").asset_layer.asset_graph
    studied = keys_in({"studies"})
    assert studied and set(studies.executable_asset_keys) == studied
    assert set(product.executable_asset_keys) == keys_in_all() - studied
    graph = defs.resolve_asset_graph()
    for key in studied:  # no asset outside the studies reads one
        assert graph.get(key).child_keys <= studied, key
    # The studies never wait on new data by themselves: `make studies` runs them.
    assert all(graph.get(key).automation_condition is None for key in studied)


def keys_in_all() -> set[dg.AssetKey]:
    return {key for asset in all_assets for key in asset.keys}


def test_models_and_serving_follow_new_upstream_data():
    instance = dg.DagsterInstance.ephemeral()
    everything = {key for asset in all_assets for key in asset.keys}
    record(instance, everything)
    quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert quiet.total_requested == 0  # all up to date: nothing runs

    record(instance, [dg.AssetKey(["gold", "train_features_ml"])])
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=quiet.cursor)
    requested = {key for key in everything if tick.get_num_requested(key)}
    # New training data: the models, their evaluation and what serving builds on them, in
    # one request; nothing below and nothing that does not read the models (the content
    # vectors describe movies, from Silver).
    content = {dg.AssetKey(list(keys.MOVIE_CONTENT)), dg.AssetKey(list(keys.CONTENT_FEATURES))}
    assert keys_in({"ml"}) - content <= requested <= keys_in(DOWNSTREAM_GROUPS) - content
    assert dg.AssetKey(["serving", "recommendations_json"]) in requested
    assert dg.AssetKey(["serving", "movie_catalog"]) not in requested

    record(instance, requested)
    done = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert done.total_requested == 0

    record(instance, [dg.AssetKey(["silver", "movies_clean"])])
    catalog = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=done.cursor)
    assert catalog.get_num_requested(dg.AssetKey(["serving", "movie_catalog"])) == 1


def test_dagsters_dg_cli_checks_and_lists_the_same_definitions():
    """`dg check defs` and `dg list defs` work on the project as it is laid out
    (pyproject's [tool.dg] points them at cinematch_assets.definitions)."""
    dg = Path(sys.executable).parent / "dg"
    check = subprocess.run([dg, "check", "defs"], cwd=REPO_ROOT, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "All definitions loaded successfully" in check.stdout + check.stderr
    listed = subprocess.run([dg, "list", "defs", "--json"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300, check=True)  # fmt: skip
    found = json.loads(listed.stdout)
    assert {a["asset_key"] for a in found["assets"]} == {
        key.to_user_string() for asset in all_assets for key in asset.keys
    }
    assert {j["name"] for j in found["jobs"]} == {
        "cinematch_product", "cinematch_studies", "cinematch_app_ratings"
    }  # fmt: skip
    assert {s["name"] for s in found["schedules"]} == {"weekly_refresh"}


def test_the_app_ratings_sensor_waits_for_news_and_for_a_light_run_in_flight(tmp_path):
    """Nothing served, no app table, lists that take in the table's version, a light run
    queued or running: each is a skip that says why; else one run per pair of versions."""
    instance = dg.DagsterInstance.ephemeral()
    sensor = defs.resolve_sensor_def("app_ratings_sensor")
    root = DataRoot(home=str(tmp_path))

    def tick():
        return sensor(dg.build_sensor_context(instance=instance, resources={"data_root": root}))

    assert "Nothing is served yet" in tick().skip_message
    with files.new_version(tmp_path) as (version, folder):
        files.write_json_shard(folder, 0, {"1": []})
        manifest = {"shards": 1, "users": 1, "n": 1, files.APP_RATINGS_VERSION: 0}
        files.publish_recommendations(tmp_path, version, manifest)
    assert "No ratings were saved" in tick().skip_message
    app_ratings.ensure_tables(tmp_path)  # version 0: what the lists take in
    assert "take in the app's ratings (v0)" in tick().skip_message
    user, key = app_ratings.create_account(tmp_path)
    app_ratings.save_ratings(tmp_path, user, key, {1: 4.0}, {1}, session="s",
                             serving_version=version)  # fmt: skip
    running = create_run_for_test(
        instance, job_name="cinematch_app_ratings", status=dg.DagsterRunStatus.STARTED
    )
    assert f"in flight ({running.run_id})" in tick().skip_message
    instance.report_run_canceled(running)
    requested = tick().run_requests
    assert [r.run_key for r in requested] == [f"{version}@v1"]

"""`make bench` (feedback loop): the time from a rating saved in the app to the visitor's
served list, with the sensor on, as Dagster's daemon runs it.

A copy of a data root's serving files and app tables goes to a scratch folder (the data
root is only read), with a Dagster home of its own. `dagster-daemon run` serves the code
location there with `app_ratings_sensor` switched on, its interval from `--interval`
(CINEMATCH_FOLD_IN_INTERVAL). Then, one after the other, `--saves` new visitors each save
20 ratings of well-known movies through the app's storage code, and the clock runs from
the save's commit to the moment the published manifest's lists hold the visitor's list.
That takes in the wait for the sensor's next tick (at most the interval), the run's
launch (a new process) and the light run itself, whose own time is reported beside it.

    python -m benchmarks.feedback_loop --home data
    python -m benchmarks.feedback_loop --home /path/to/home --saves 5 --interval 30
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from dagster import AssetKey, DagsterInstance, RunsFilter

from benchmarks import scratch_dagster_home
from cinematch_assets import keys
from cinematch_assets.sensors import IN_FLIGHT
from cinematch_assets.storage import app_ratings
from cinematch_assets.storage import serving_files as files

LOCATION = ["-m", "cinematch_assets.definitions"]
RATINGS_PER_SAVE = 20


def copy_home(source: Path, target: Path) -> None:
    """What the light run reads: the serving files and the app's tables."""
    shutil.copytree(files.serving_root(source), files.serving_root(target))
    app = app_ratings.ratings_path(source).parent
    if app.exists():
        shutil.copytree(app, app_ratings.ratings_path(target).parent)


def start_daemon(home: Path, dagster_home: Path, interval: int, log) -> subprocess.Popen:
    """The daemon on `home`, with the sensor switched on first."""
    scratch_dagster_home(dagster_home)
    env = {
        **os.environ,
        "CINEMATCH_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "CINEMATCH_FOLD_IN_INTERVAL": str(interval),
    }
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [bin_dir / "dagster", "sensor", "start", "app_ratings_sensor", *LOCATION],
        env=env, check=True, stdout=log, stderr=log,
    )  # fmt: skip
    return subprocess.Popen(
        [bin_dir / "dagster-daemon", "run", *LOCATION],
        env=env, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip


def served(home: Path, user: int) -> bool:
    """True once the published version holds `user`'s list."""
    manifest = files.read_manifest(home)
    return manifest is not None and user in files.ListedUsers(home, manifest)


def well_known(home: Path, count: int, rng: random.Random) -> list[int]:
    """`count` movies among the 500 most rated."""
    catalog = pq.read_table(files.catalog_path(home), columns=["movieId", "rating_count"])
    best = catalog.sort_by([("rating_count", "descending")]).column("movieId").to_pylist()
    return rng.sample(best[:500], count)


def wait_for_runs(dagster_home: Path, timeout: float) -> None:
    """Until no light run is in flight (one may still be finishing when its list is out):
    stopping the daemon would stop it too."""
    instance = DagsterInstance.from_config(str(dagster_home))
    deadline = time.monotonic() + timeout
    in_flight = RunsFilter(job_name="cinematch_app_ratings", statuses=IN_FLIGHT)
    while instance.get_run_records(in_flight, limit=1) and time.monotonic() < deadline:
        time.sleep(0.5)


def light_runs(dagster_home: Path) -> list[dict]:
    """Each light run's wall time and the light asset's own time, oldest first."""
    instance = DagsterInstance.from_config(str(dagster_home))
    records = instance.get_run_records(RunsFilter(job_name="cinematch_app_ratings"))
    events = instance.fetch_materializations(AssetKey(list(keys.APP_USER_LISTS)), limit=1000)
    asset_seconds = {
        e.run_id: e.asset_materialization.metadata["seconds"].value for e in events.records
    }
    return [
        {
            "status": r.dagster_run.status.value,
            "run_seconds": round((r.end_time or time.time()) - (r.start_time or 0), 1),
            "asset_seconds": asset_seconds.get(r.dagster_run.run_id),
            "error": failure(instance, r.dagster_run.run_id) if r.dagster_run.is_failure else None,
        }
        for r in sorted(records, key=lambda r: r.create_timestamp)
    ]


def failure(instance: DagsterInstance, run_id: str) -> str:
    """What a failed run's events say went wrong."""
    messages = [
        event.dagster_event.message or ""
        for event in instance.all_logs(run_id)
        if event.dagster_event is not None and event.dagster_event.is_failure
    ]
    return " | ".join(m for m in messages if m)[:2000]


def measure(source: Path, saves: int, interval: int, timeout: float) -> dict:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="cinematch-bench-loop-") as scratch:
        home, dagster_home = Path(scratch) / "home", Path(scratch) / "dagster"
        copy_home(source, home)
        movies = set(pq.read_table(files.catalog_path(home), columns=["movieId"])[0].to_pylist())
        with (Path(scratch) / "daemon.log").open("w") as log:
            daemon = start_daemon(home, dagster_home, interval, log)
            try:
                seconds = []
                for _ in range(saves):
                    user, key = app_ratings.create_account(home)
                    rated = {m: float(rng.choice([3.5, 4, 4.5, 5])) for m in well_known(
                        home, RATINGS_PER_SAVE, rng)}  # fmt: skip
                    app_ratings.save_ratings(
                        home, user, key, rated, movies, session="bench", serving_version=None
                    )
                    saved_at = time.monotonic()
                    while not served(home, user):
                        if time.monotonic() - saved_at > timeout:
                            raise TimeoutError(f"visitor {user} not served in {timeout:.0f} s")
                        time.sleep(0.25)
                    seconds.append(round(time.monotonic() - saved_at, 1))
                    print(f"visitor {user}: served {seconds[-1]} s after the save", file=sys.stderr)
                wait_for_runs(dagster_home, timeout)
            finally:
                os.killpg(daemon.pid, signal.SIGTERM)
                daemon.wait(timeout=60)
        runs = light_runs(dagster_home)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": str(source),
        "users": files.read_manifest(source)["users"],
        "interval_seconds": interval,
        "save_to_served_seconds": seconds,
        "save_to_served_max": max(seconds),
        "save_to_served_median": float(np.median(seconds)),
        "light_runs": runs,
        "machine": {"cpus": os.cpu_count()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a data root with serving files")
    parser.add_argument("--saves", type=int, default=3, help="visitors saving, one after another")
    parser.add_argument("--interval", type=int, default=60, help="the sensor's interval, seconds")
    parser.add_argument("--timeout", type=float, default=600, help="per save, seconds")
    parser.add_argument("--out", type=Path, help="the report (default: under the data root)")
    args = parser.parse_args(argv)
    if files.read_manifest(args.home) is None:
        print(f"No served lists under {args.home}: run `make materialize` first.", file=sys.stderr)
        return 1
    report = measure(args.home, args.saves, args.interval, args.timeout)
    out = args.out or args.home / "benchmarks" / f"feedback-loop-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

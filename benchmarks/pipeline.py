"""`make bench`: materialize the whole graph on one dataset, the product job then the
studies job, and measure it.

Reports per job the wall time, the time and the Spark jobs of each step (from the Spark
UI's REST API: on a small dataset each Spark job costs a fixed share of scheduling and
planning, whatever its size), the models fitted, the CPU seconds and the peak memory of
every process together (sampled), and for the run the rows per layer and the peaks of the
Python driver and the Spark JVM, as JSON under $CINEMATCH_HOME/benchmarks/.

    python -m benchmarks.pipeline --variant synthetic-1m
    python -m benchmarks.pipeline --local ../shared/data/movielens/ml-latest-small-2016.zip
    python -m benchmarks.pipeline --variant synthetic-1m --groups raw bronze silver gold
    python -m benchmarks.pipeline --variant synthetic-1m --jobs cinematch_product
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

from cinematch_assets import keys, settings
from cinematch_assets.definitions import all_assets, build_definitions, build_resources
from cinematch_assets.ml.models.fits import fits_so_far
from cinematch_assets.resources.data_root import DataRoot

ROW_TABLES = [keys.BRONZE_RATINGS, keys.RATINGS_CLEAN, keys.RATINGS_FILTERED, keys.TRAIN, keys.TEST]


def _status_mb(pid: int, field: str) -> float | None:
    """A memory field of a live process's /proc status (Linux: VmHWM, the peak resident
    size; VmRSS, the resident size now), in MB; None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _stat_fields(pid: int | str) -> list[str] | None:
    """A live process's /proc stat after its name (Linux; state, parent, ..., utime at
    [11], stime at [12]); None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _descendants(pid: int) -> list[int]:
    """Live descendant process ids (Linux /proc), e.g. the Spark JVM under this Python."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        if (fields := _stat_fields(stat.parent.name)) is not None:
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


class TreeMemory(threading.Thread):
    """Samples the resident memory of this process and all its descendants (the Spark JVM,
    Spark's Python workers) together, twice a second: the peak of the sum, which the
    per-process peaks only bound."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._done.wait(0.5):
            total = sum(_status_mb(pid, "VmRSS") or 0.0 for pid in [me, *_descendants(me)])
            self.peak_mb = max(self.peak_mb, total)

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak_mb


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of live processes so far (Linux /proc: their threads,
    the finished ones included)."""
    ticks = os.sysconf("SC_CLK_TCK")
    live = [fields for pid in pids if (fields := _stat_fields(pid)) is not None]
    return sum(int(fields[11]) + int(fields[12]) for fields in live) / ticks


def _spark_job_times(spark) -> list[float] | None:
    """When each Spark job the session's UI retains was submitted (epoch seconds), from
    its REST API; None without a UI."""
    url = spark.sparkContext.uiWebUrl
    if not url:
        return None
    app = spark.sparkContext.applicationId
    with urllib.request.urlopen(f"{url}/api/v1/applications/{app}/jobs", timeout=60) as reply:
        jobs = json.load(reply)
    return [
        datetime.strptime(job["submissionTime"], "%Y-%m-%dT%H:%M:%S.%f%Z")
        .replace(tzinfo=UTC)
        .timestamp()
        for job in jobs
        if "submissionTime" in job
    ]


def _jobs_per_step(windows: dict[str, tuple[float, float]], times: list[float]) -> dict:
    return {step: sum(start <= t <= end for t in times) for step, (start, end) in windows.items()}


PRODUCT_JOB, STUDIES_JOB = JOBS = ("cinematch_product", "cinematch_studies")


def run_benchmark(
    raw_config: dict, home: Path, groups: list[str] | None = None, jobs: Sequence[str] = JOBS
) -> dict:
    """Run `jobs` one after the other into `home` (every asset of each, or those of
    `groups`) and measure each: wall time, step times, fits, peak memory."""
    # Count every Spark job of a session this process starts (the UI keeps the last 1,000
    # by default); a Spark Connect server keeps its own settings and has no UI here.
    count_jobs = not settings.spark_remote() and settings.spark_ui()
    if count_jobs:
        retain = "spark.ui.retainedJobs=1000000 spark.ui.retainedStages=1000000"
        conf = os.environ.get("CINEMATCH_SPARK_CONF", "")
        os.environ["CINEMATCH_SPARK_CONF"] = f"{conf} {retain}"
    resources = build_resources(DataRoot(home=str(home)))
    definitions = build_definitions(resources)
    instance = DagsterInstance.ephemeral()
    measured = {}
    for name in jobs:
        job = definitions.resolve_job_def(name)
        studies = name == STUDIES_JOB
        selection = [
            key
            for asset in all_assets
            for key in asset.keys
            if (asset.group_names_by_key[key] == "studies") == studies
            and (not groups or asset.group_names_by_key[key] in groups)
        ]
        if not selection:
            continue
        ops = {"raw__movielens_archive": {"config": raw_config}} if name == PRODUCT_JOB else {}
        fits_before = fits_so_far()
        cpu_before = _cpu_seconds([os.getpid(), *_descendants(os.getpid())])
        memory = TreeMemory()
        memory.start()
        started = time.perf_counter()
        result = job.execute_in_process(
            asset_selection=selection if groups else None,
            run_config={"ops": ops, "loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            instance=instance,
            raise_on_error=False,
        )
        wall = time.perf_counter() - started
        cpu = _cpu_seconds([os.getpid(), *_descendants(os.getpid())]) - cpu_before
        steps = {
            event.step_key: round(event.event_specific_data.duration_ms / 1000, 2)
            for event in result.all_events
            if event.event_type == DagsterEventType.STEP_SUCCESS
        }
        windows: dict[str, list[float]] = {}
        for entry in instance.all_logs(result.run_id):
            event = entry.dagster_event
            if event is not None and event.event_type in (
                DagsterEventType.STEP_START,
                DagsterEventType.STEP_SUCCESS,
            ):
                windows.setdefault(event.step_key, []).append(entry.timestamp)
        spark_times = _spark_job_times(resources["spark"].spark_session) if count_jobs else None
        spark_jobs = (
            None
            if spark_times is None
            else _jobs_per_step({s: (min(w), max(w)) for s, w in windows.items()}, spark_times)
        )
        fits = fits_so_far()
        measured[name] = {
            "success": result.success,
            "wall_seconds": round(wall, 1),
            "fits": {kind: n - fits_before.get(kind, 0) for kind, n in fits.items()},
            "peak_rss_mb_all_processes": round(memory.stop()),  # driver + JVM + workers
            "cpu_seconds_all_processes": round(cpu),
            "step_seconds": dict(sorted(steps.items(), key=lambda kv: -kv[1])),
            **(
                {
                    "spark_jobs": sum(spark_jobs.values()),
                    "step_spark_jobs": dict(sorted(spark_jobs.items(), key=lambda kv: -kv[1])),
                }
                if spark_jobs is not None
                else {}
            ),
        }
        if not result.success:
            break
    jvm_peaks = [_status_mb(pid, "VmHWM") or 0.0 for pid in _descendants(os.getpid())]
    lakehouse = resources["lakehouse"]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": raw_config,
        "groups": groups or "all",
        "success": all(job["success"] for job in measured.values()) and len(measured) > 0,
        "wall_seconds": round(sum(job["wall_seconds"] for job in measured.values()), 1),
        "jobs": measured,
        "rows": {keys.label(k): lakehouse.describe(k).num_rows for k in ROW_TABLES},
        "peak_rss_mb": {
            "python_driver": round(_status_mb(os.getpid(), "VmHWM") or 0.0),
            "spark_jvm": round(max(jvm_peaks, default=0.0)),
            "all_processes": max(
                (job["peak_rss_mb_all_processes"] for job in measured.values()), default=0
            ),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "spark_driver_memory": resources["spark"].driver_memory,
        },
    }


def seconds_per_iteration(train, params: dict, iterations: tuple[int, int]) -> float:
    """Seconds per iteration of `fit_als(train, **params)`: two fits that differ only in
    maxIter, so start-up and factor output cancel."""
    from cinematch_assets.ml.models.als import fit_als

    seconds = []
    for max_iter in iterations:
        started = time.perf_counter()
        fit_als(train, max_iter=max_iter, seed=42, **params).itemFactors.count()
        seconds.append(time.perf_counter() - started)
    return (seconds[1] - seconds[0]) / (iterations[1] - iterations[0])


def als_seconds_per_iteration(lakehouse, iterations: tuple[int, int] = (2, 12)) -> dict:
    """Seconds per ALS iteration of both models' chosen settings on the Gold training
    table (`seconds_per_iteration`)."""
    from cinematch_assets.ml.models import artifacts

    train = lakehouse.read(keys.TRAIN).cache()
    train.count()
    rating = artifacts.read_rating_model(lakehouse.read).model.params
    ranking = artifacts.read_ranking_model(lakehouse.read).model.params
    settings_ = {
        "rating": {"rating_col": "rating", "rank": rating.rank, "reg_param": rating.reg_param},
        "ranking": {
            "rating_col": "weight",
            "implicit": True,
            "alpha": ranking.alpha,
            "rank": ranking.rank,
            "reg_param": ranking.reg_param,
        },
    }
    result = {}
    for name, params in settings_.items():
        per_iteration = seconds_per_iteration(train, params, iterations)
        result[name] = {"rank": params["rank"], "seconds_per_iteration": round(per_iteration, 3)}
    train.unpersist()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--variant", help="e.g. synthetic-1m, ml-latest-small")
    source.add_argument("--local", help="a local MovieLens zip or folder")
    parser.add_argument("--home", help="data root for this run (default: a temp dir)")
    parser.add_argument("--groups", nargs="+", help="only these asset groups (default: all)")
    parser.add_argument(
        "--jobs", nargs="+", choices=JOBS, default=list(JOBS), help="the jobs to run, in order"
    )
    parser.add_argument(
        "--als-iterations",
        action="store_true",
        help="then time an ALS iteration of each model on the Gold training table",
    )
    args = parser.parse_args(argv)
    raw_config = (
        {"local_path": str(Path(args.local).resolve())} if args.local else {"variant": args.variant}
    )
    out_dir = DataRoot().benchmarks
    with tempfile.TemporaryDirectory(prefix="cinematch-bench-") as scratch:
        home = Path(args.home or scratch).resolve()
        report = run_benchmark(raw_config, home, args.groups, args.jobs)
        if args.als_iterations and report["success"]:
            lakehouse = build_resources(DataRoot(home=str(home)))["lakehouse"]
            report["als"] = als_seconds_per_iteration(lakehouse)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = (args.variant or Path(args.local).stem) + f"-{int(time.time())}.json"
    (out_dir / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {out_dir / name}", file=sys.stderr)
    return 0 if report["success"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

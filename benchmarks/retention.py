"""The data root's size over consecutive product runs: what retention keeps bounded.

Runs the product job `--runs` times in a row on one fresh data root (as `make
materialize` does, each in its own process) with the lake's retention at
`--retention-hours`, and records after each run the size of the data root and of its
lake, serving files and models.

    python -m benchmarks.retention --variant synthetic-tiny --runs 10
    python -m benchmarks.retention --local ../shared/data/movielens/ml-latest-small-2016.zip
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import scratch_dagster_home
from cinematch_assets.storage.retention import folder_bytes

PARTS = ("lake", "serving", "models", "reports", "raw")


def sizes(home: Path) -> dict[str, int]:
    return {"total": folder_bytes(home)} | {
        part: folder_bytes(home / part) for part in PARTS if (home / part).exists()
    }


def measure(source: dict[str, str], runs: int, retention_hours: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="cinematch-bench-retention-") as scratch:
        home = Path(scratch) / "home"
        dagster_home = scratch_dagster_home(Path(scratch) / "dagster")
        env = {
            **os.environ, **source,
            "CINEMATCH_HOME": str(home),
            "DAGSTER_HOME": str(dagster_home),
            "CINEMATCH_LAKE_RETENTION_HOURS": str(retention_hours),
        }  # fmt: skip
        dagster = Path(sys.executable).parent / "dagster"
        after = []
        for run in range(1, runs + 1):
            started = time.monotonic()
            subprocess.run(
                [dagster, "job", "execute", "-m", "cinematch_assets.definitions",
                 "-j", "cinematch_product"],
                env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            after.append({"run": run, "seconds": round(time.monotonic() - started, 1),
                          **sizes(home)})  # fmt: skip
            print(json.dumps(after[-1]), file=sys.stderr)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "retention_hours": retention_hours,
        "after_each_run": after,
        "machine": {"cpus": os.cpu_count()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--variant", help="a MovieLens or synthetic variant")
    where.add_argument("--local", type=Path, help="a local MovieLens zip or folder")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--retention-hours", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="the report (JSON)")
    args = parser.parse_args(argv)
    source = (
        {"CINEMATCH_MOVIELENS": str(args.local.resolve())}
        if args.local
        else {"CINEMATCH_VARIANT": args.variant}
    )
    report = measure(source, args.runs, args.retention_hours)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Spark's ALS with Java or native BLAS and LAPACK: seconds per iteration of both models'
fits on a Gold training table, one fresh JVM per setting (the choice is made once, when
the JVM first asks netlib for an implementation).

- `java`: Java for both (`dev.ludovic.netlib.{blas,lapack}.allowNative=false`), what a
  machine without a system BLAS gets;
- `native`: the system's `libblas.so.3` and `liblapack.so.3` (Debian:
  `apt install libopenblas0-serial`);
- `native-lapack`: Java BLAS (ALS's many small `dspr` rank-one updates stay on the JVM's
  vector instructions, no JNI call each) and native LAPACK (its `dppsv` solves).

    python -m benchmarks.pipeline --variant synthetic-10m --home /tmp/s10 \
        --groups raw bronze silver gold --jobs cinematch_product
    python -m benchmarks.blas --home /tmp/s10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.pipeline import seconds_per_iteration
from cinematch_assets import keys, settings
from cinematch_assets.resources.data_root import DataRoot

SETTINGS = {
    "java": {"blas": False, "lapack": False},
    "native": {"blas": True, "lapack": True},
    "native-lapack": {"blas": False, "lapack": True},
}
MODELS = {
    "rating (explicit, rank 50)": {"rating_col": "rating", "rank": 50, "reg_param": 0.15},
    "ranking (implicit, rank 20)": {
        "rating_col": "weight",
        "implicit": True,
        "alpha": 2.0,
        "rank": 20,
        "reg_param": 0.1,
    },  # fmt: skip
}


def java_options(allow: dict[str, bool]) -> str:
    return " ".join(
        f"-Ddev.ludovic.netlib.{lib}.allowNative={str(on).lower()}" for lib, on in allow.items()
    )


def measure(home: Path, name: str, iterations: tuple[int, int]) -> dict:
    """In this process, a session with the JVM options of setting `name`: the netlib
    classes it got and each model's seconds per iteration (two fits differing only in
    maxIter, so start-up and output cancel)."""
    from cinematch_assets.definitions import build_resources
    from cinematch_assets.resources.spark import SparkResource

    options = java_options(SETTINGS[name])
    spark = SparkResource(
        conf={"spark.driver.extraJavaOptions": options, "spark.executor.extraJavaOptions": options}
    )
    lakehouse = build_resources(DataRoot(home=str(home)), spark)["lakehouse"]
    train = lakehouse.read(keys.TRAIN).cache()
    rows = train.count()
    jvm = spark.spark_session.sparkContext._jvm
    found = {"setting": name, "train_rows": rows, "models": {}}
    for model, params in MODELS.items():
        found["models"][model] = round(seconds_per_iteration(train, params, iterations), 2)
    found["blas"] = jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getName()
    found["lapack"] = jvm.dev.ludovic.netlib.lapack.LAPACK.getInstance().getClass().getName()
    return found


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a data root with Gold tables")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--iterations", type=int, nargs=2, default=(2, 6))
    parser.add_argument("--one", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # a child: one setting, in its own JVM
        print(json.dumps(measure(args.home, args.one, tuple(args.iterations))))
        return {}
    report = {"home": str(args.home), "iterations": list(args.iterations), "settings": []}
    for name in args.settings:
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.blas", "--home", str(args.home), "--one", name,
             "--iterations", *map(str, args.iterations)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        found = json.loads(child.stdout.strip().splitlines()[-1])
        report["settings"].append(found)
        print(json.dumps(found), flush=True)
    out = settings.cinematch_home() / "benchmarks" / f"blas-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

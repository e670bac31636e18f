"""The README's benchmark table, generated from the JSON reports `make bench` writes:
the reports kept in `benchmarks/results/` become one row per (dataset, job), between the
README's `<!-- benchmarks:start -->` and `<!-- benchmarks:end -->` markers.

    python -m benchmarks.table            # rewrite README.md's table
    python -m benchmarks.table --check    # fail when it is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
SLOWEST = 4


def _dataset(report: dict) -> str:
    dataset = report["dataset"]
    return dataset.get("variant") or Path(dataset.get("local_path", "?")).name


def _steps(seconds: dict[str, float]) -> str:
    slowest = sorted(seconds.items(), key=lambda kv: -kv[1])[:SLOWEST]
    return ", ".join(f"{name.replace('__', '/')} {value:,.0f} s" for name, value in slowest)


def _fits(fits: dict[str, int]) -> str:
    return " + ".join(f"{n} {kind.upper()}" for kind, n in sorted(fits.items()) if n) or "none"


def _count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"  # reports from before jobs were counted: none


def markdown_table(reports: list[dict]) -> str:
    """One row per job of each report, oldest report first."""
    lines = [
        "| dataset | ratings | job | wall time | fits | Spark jobs | slowest steps | peak "
        "memory, all processes | driver memory | result |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for report in sorted(reports, key=lambda r: (_dataset(r), r["date"])):
        ratings = report.get("rows", {}).get("bronze/ratings")
        for job, measured in report["jobs"].items():
            lines.append(
                f"| {_dataset(report)} | {ratings:,} | {job.removeprefix('cinematch_')} "
                f"| {measured['wall_seconds']:,.0f} s | {_fits(measured['fits'])} "
                f"| {_count(measured.get('spark_jobs'))} "
                f"| {_steps(measured['step_seconds'])} "
                f"| {measured['peak_rss_mb_all_processes'] / 1024:.1f} GB "
                f"| {report['machine']['spark_driver_memory']} "
                f"| {'ok' if measured['success'] else '**failed**'} |"
            )
    return "\n".join(lines) + "\n"


def read_reports(folder: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def with_table(readme: str, table: str) -> str:
    if START not in readme or END not in readme:
        raise ValueError(f"README.md has no {START} ... {END} section")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is stale")
    args = parser.parse_args(argv)
    readme = args.readme.read_text(encoding="utf-8")
    updated = with_table(readme, markdown_table(read_reports(args.results)))
    if args.check:
        if updated != readme:
            print(f"{args.readme}: the benchmark table is out of date", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

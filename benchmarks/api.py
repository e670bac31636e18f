"""`make bench` (API): throughput and latency of the HTTP API under concurrent clients, on
a data root's serving files, over loopback.

The API runs as `make api` runs it (uvicorn, one worker per core) in its own process.
Three calls are measured at 1, 8 and 32 concurrent clients (keep-alive connections on the
same machine): a known user's list, a new user's list from 20 ratings (the fold-in) and
a title search. The load comes from `wrk` when it is installed (`apt install wrk`): a C
client whose own CPU stays small beside the server's on shared cores, for `--seconds`
per measurement. Without it, Python threads send `--requests` calls each (their GIL and
CPU then weigh on the latencies, and the report says which client measured). Then the
known-user load runs again, from Python clients that check every answer, while the
serving files are published twice (copies of the current version under new names):
every request must succeed and name a version that was published.

    python -m benchmarks.api --home data                 # the last `make materialize`
    python -m benchmarks.api --home /path/to/home --seconds 20

The serving files are copied to a scratch folder first: the data root is only read.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pyarrow.parquet as pq

from cinematch_assets.storage import serving_files as files

Call = tuple[str, str, dict | None]  # method, path, JSON body
CLIENTS = (1, 8, 32)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(home: Path, workers: int) -> tuple[subprocess.Popen, str]:
    """`uvicorn app.api:app` on loopback with `workers` processes, once it is ready."""
    port = _free_port()
    env = {**os.environ, "CINEMATCH_HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.api:app", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers), "--log-level", "warning",
         "--no-access-log"],
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=30).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise RuntimeError("the API exited before it was ready")
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError("the API was not ready in 120 s")


def served_users(home: Path) -> list[int]:
    """Every user with a served list (read from the shards' indexes)."""
    manifest = json.loads(files.manifest_path(home).read_text())
    folder = files.recommendations_dir(home) / manifest["version"]
    indexes = [files.read_shard_index(path) for path in folder.glob("*.index.npy")]
    return sorted(int(user) for index in indexes for user in index[:, 0])


def calls(home: Path, seed: int = 7) -> dict[str, Callable[[random.Random], Call]]:
    """What each measured call asks, drawn at random: users with a served list, movies
    with ratings (20 distinct per fold-in, stars on the half-star grid), and three
    letters of a title."""
    users = served_users(home)
    catalog = pq.read_table(
        files.catalog_path(home), columns=["movieId", "display_title", "rating_count"]
    ).to_pandas()
    rated = catalog.loc[catalog["rating_count"] >= 10, "movieId"].to_numpy()
    titles = [t for t in catalog["display_title"] if len(t) >= 3]

    def known(rng: random.Random) -> Call:
        return "GET", f"/users/{int(rng.choice(users))}/recommendations", None

    def fold_in(rng: random.Random) -> Call:
        movies = rng.sample(list(rated), 20)
        ratings = [{"movieId": int(m), "rating": rng.randint(1, 10) / 2} for m in movies]
        return "POST", "/recommendations", {"ratings": ratings, "k": 10}

    def search(rng: random.Random) -> Call:
        title = rng.choice(titles)
        start = rng.randrange(len(title) - 2)
        return "GET", "/movies?q=" + quote(title[start : start + 3]), None

    return {"known user": known, "fold-in of 20 ratings": fold_in, "search": search}


def load(
    url: str, make: Callable[[random.Random], Call], clients: int, requests: int, seconds: float
) -> dict:
    """`clients` threads share `requests` calls (stopping at `seconds`): latency
    percentiles in ms, throughput, failures, and the versions the answers named."""
    latencies: list[float] = []
    failures: list[str] = []
    versions: set[str] = set()
    lock = threading.Lock()
    remaining = iter(range(requests))
    deadline = time.monotonic() + seconds

    def client(n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=url, timeout=30) as http:
            while time.monotonic() < deadline:
                with lock:
                    if next(remaining, None) is None:
                        return
                method, path, body = make(rng)
                started = time.perf_counter()
                try:
                    answer = http.request(method, path, json=body)
                    ok = answer.status_code == 200
                    version = answer.json().get("version") if ok else None
                    problem = None if ok else f"{answer.status_code} {answer.text[:200]}"
                except httpx.HTTPError as error:
                    version, problem = None, repr(error)
                spent = time.perf_counter() - started
                with lock:
                    latencies.append(spent)
                    if problem:
                        failures.append(f"{method} {path}: {problem}")
                    if version:
                        versions.add(version)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / wall, 1),
        **{f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)},
        "failures": len(failures),
        "first_failures": failures[:5],
        "versions": sorted(versions),
    }


# wrk's script: the calls drawn beforehand (CALLS), sent in turn by every connection; at
# the end the latency percentiles and every kind of failure (non-2xx answers are `status`).
WRK_SCRIPT = """
calls = {CALLS}
local next_call = 0
request = function()
  next_call = next_call % #calls + 1
  local c = calls[next_call]
  return wrk.format(c[1], c[2], c[3] and {["Content-Type"] = "application/json"} or nil, c[3])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n{"requests": %d, "us": %d, "p50": %d, "p95": %d, "p99": %d, "failures": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def _lua_call(method: str, path: str, body: dict | None) -> str:
    """One call as a Lua table of long strings: {method, path[, JSON body]}."""
    parts = [method, path] + ([json.dumps(body)] if body is not None else [])
    if any("]]" in part for part in parts):
        raise ValueError(f"not a Lua long string: {parts}")
    return "{" + ", ".join(f"[[{part}]]" for part in parts) + "}"


def wrk_load(url: str, make: Callable[[random.Random], Call], clients: int, seconds: float) -> dict:
    """`clients` keep-alive connections of wrk (a C load generator: the clients' own cost
    stays small beside the server's on shared cores) for `seconds`: latency percentiles
    in ms, throughput and failures (a connection error, a timeout, a status not 2xx)."""
    rng = random.Random(clients)
    calls = ",".join(_lua_call(*make(rng)) for _ in range(1_000))
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT.replace("CALLS", calls))
        script.flush()
        ran = subprocess.run(
            ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
             "-s", script.name, url],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    got = json.loads(ran.stdout.strip().splitlines()[-1])
    return {
        "clients": clients,
        "requests": got["requests"],
        "requests_per_second": round(got["requests"] / (got["us"] / 1e6), 1),
        **{f"p{q}_ms": round(got[f"p{q}"] / 1000, 1) for q in (50, 95, 99)},
        "failures": got["failures"],
    }


def republish(home: Path, names: list[str], every: float, done: threading.Event) -> list[str]:
    """Publish copies of the current version under `names`, `every` seconds apart."""
    published = [files.published_version(home)]
    for name in names:
        if done.wait(every):
            break
        manifest = json.loads(files.manifest_path(home).read_text())
        current = files.recommendations_dir(home) / manifest["version"]
        shutil.copytree(current, files.recommendations_dir(home) / name)
        files.publish_recommendations(home, name, manifest)
        published.append(name)
    return published


def run(source: Path, requests: int, seconds: float, workers: int) -> dict:
    """Every measurement, on a copy of `source`'s serving files (the publishes during the
    load go to the copy)."""
    with tempfile.TemporaryDirectory(prefix="cinematch-bench-api-") as scratch:
        home = Path(scratch)
        shutil.copytree(files.serving_root(source), files.serving_root(home))
        return measure(home, requests, seconds, workers) | {"home": str(source)}


def measure(home: Path, requests: int, seconds: float, workers: int) -> dict:
    server, url = start_api(home, workers)
    try:
        made = calls(home)
        report: dict = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "users": json.loads(files.manifest_path(home).read_text())["users"],
            "movies": pq.read_metadata(files.catalog_path(home)).num_rows,
            "workers": workers,
            "machine": {"cpus": os.cpu_count()},
            "client": "wrk" if shutil.which("wrk") else "python threads",
            "calls": {
                name: [
                    wrk_load(url, make, clients, seconds)
                    if shutil.which("wrk")
                    else load(url, make, clients, requests, seconds)
                    for clients in CLIENTS
                ]
                for name, make in made.items()
            },
        }
        done = threading.Event()
        names = [f"bench-{int(time.time())}-{i}" for i in (1, 2)]
        with ThreadPoolExecutor(1) as pool:
            publishing = pool.submit(republish, home, names, min(seconds, 60) / 3, done)
            during = load(url, made["known user"], 8, 10**9, min(seconds, 60))
            done.set()
            published = publishing.result()
        during["published"] = published
        during["only_published_versions"] = set(during["versions"]) <= set(published)
        report["known user while publishing twice"] = during
        return report
    finally:
        server.terminate()
        server.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a data root with serving files")
    parser.add_argument(
        "--requests", type=int, default=1000, help="per call and client count (Python client)"
    )
    parser.add_argument("--seconds", type=float, default=15, help="per measurement (at most)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, help="the report (default: under the data root)")
    args = parser.parse_args(argv)
    report = run(args.home.resolve(), args.requests, args.seconds, args.workers)
    out = args.out or args.home / "benchmarks" / f"api-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {out}", file=sys.stderr)
    failed = any(m["failures"] for ms in report["calls"].values() for m in ms)
    during = report["known user while publishing twice"]
    return 1 if failed or during["failures"] or not during["only_published_versions"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`make cluster-up` / `make cluster-down`: a real Spark standalone cluster on this machine,
started from the installed PySpark distribution: one master and `--workers` workers, all
on 127.0.0.1, each worker with `--cores` cores and `--memory` memory. Logs, pid files and
the workers' scratch space live under $CINEMATCH_HOME/cluster.

    python -m cinematch_assets.ops.cluster up        # master spark://127.0.0.1:7077, UI :8080
    python -m cinematch_assets.ops.cluster env       # the settings that point CineMatch at it
    python -m cinematch_assets.ops.cluster down
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cinematch_assets.ops.java import ensure_java
from cinematch_assets.settings import cinematch_home

HOST = "127.0.0.1"
MASTER_PORT = 7077
MASTER_UI_PORT = 8080
START_SECONDS = 90


def master_url(port: int = MASTER_PORT) -> str:
    return f"spark://{HOST}:{port}"


def cluster_dir() -> Path:
    return cinematch_home() / "cluster"


def spark_class() -> Path:
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home()) / "bin" / "spark-class"


def session_env(
    port: int = MASTER_PORT, executor_memory: str = "2g", cores: int = 1
) -> dict[str, str]:
    """What makes CineMatch's Spark session a client of this cluster: the master, a
    driver reachable on loopback, executors that fit the workers, and the Python the
    executors run (this venv's, which has numpy and pandas)."""
    conf = {
        "spark.driver.host": HOST,
        "spark.driver.bindAddress": HOST,
        "spark.executor.memory": executor_memory,
        "spark.executor.cores": str(cores),
    }
    return {
        "CINEMATCH_SPARK_MASTER": master_url(port),
        "CINEMATCH_SPARK_CONF": " ".join(f"{k}={v}" for k, v in conf.items()),
        "PYSPARK_PYTHON": sys.executable,
    }


def _daemon(name: str, args: list[str], env: dict[str, str]) -> int:
    log = (cluster_dir() / f"{name}.log").open("ab")
    process = subprocess.Popen(
        [str(spark_class()), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # outlives `make cluster-up`; stopped by `down`
    )
    (cluster_dir() / f"{name}.pid").write_text(str(process.pid))
    return process.pid


def _wait(condition, what: str, seconds: float = START_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up in {seconds:.0f} s: see {cluster_dir()}")
        time.sleep(0.5)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) == 0


def alive_workers(ui_port: int = MASTER_UI_PORT) -> int:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{ui_port}/json/", timeout=2) as response:
            return int(json.load(response).get("aliveworkers", 0))
    except (OSError, ValueError):
        return 0


def up(
    workers: int = 2,
    cores: int = 1,
    memory: str = "3g",
    port: int = MASTER_PORT,
    ui_port: int = MASTER_UI_PORT,
) -> str:
    """Start the master and the workers (if the master port is free) and wait until every
    worker has registered. Returns the master URL."""
    if _port_open(port):
        raise RuntimeError(f"something already listens on {HOST}:{port}: `down` first?")
    cluster_dir().mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "JAVA_HOME": str(ensure_java()),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOG_DIR": str(cluster_dir()),
    }
    _daemon(
        "master",
        ["org.apache.spark.deploy.master.Master", "--host", HOST, "--port", str(port),
         "--webui-port", str(ui_port)],
        env,
    )  # fmt: skip
    _wait(lambda: _port_open(port), "the master")
    for i in range(workers):
        work_dir = cluster_dir() / f"worker-{i + 1}"
        work_dir.mkdir(exist_ok=True)
        _daemon(
            f"worker-{i + 1}",
            ["org.apache.spark.deploy.worker.Worker", master_url(port), "--host", HOST,
             "--cores", str(cores), "--memory", memory, "--webui-port", "0",  # any free port
             "--work-dir", str(work_dir)],
            env,
        )  # fmt: skip
    _wait(lambda: alive_workers(ui_port) >= workers, f"{workers} workers")
    return master_url(port)


def down() -> list[str]:
    """Stop every process `up` started (workers first). Returns their names."""
    stopped = []
    pids = sorted(cluster_dir().glob("*.pid"), key=lambda p: p.stem == "master")
    for pid_file in pids:
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(40):
                if _gone(pid):
                    break
                time.sleep(0.25)
            else:
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        pid_file.unlink()
        stopped.append(pid_file.stem)
    return stopped


def _gone(pid: int) -> bool:
    # Reap it if this process started it (a test), so that it is not left a zombie.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "env"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cores", type=int, default=1, help="per worker")
    parser.add_argument("--memory", default="3g", help="per worker")
    parser.add_argument("--executor-memory", default="2g")
    args = parser.parse_args(argv)
    env = session_env(executor_memory=args.executor_memory, cores=args.cores)
    if args.action == "up":
        url = up(args.workers, args.cores, args.memory)
        print(f"Spark master {url} (UI http://{HOST}:{MASTER_UI_PORT}) with {args.workers} "
              f"workers of {args.cores} core(s) and {args.memory}. Point CineMatch at it:",
              file=sys.stderr)  # fmt: skip
    elif args.action == "down":
        print(f"stopped: {', '.join(down()) or 'nothing was running'}", file=sys.stderr)
        return 0
    for key, value in env.items():
        print(f"export {key}='{value}'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

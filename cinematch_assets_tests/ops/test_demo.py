"""`make demo`'s servers stop cleanly: after Ctrl-C or a SIGTERM to the process group,
Dagster's webserver, daemon and code servers and the app are all gone within 10 s."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cinematch_assets_tests.conftest import REPO_ROOT, free_port

STARTUP_SECONDS = 180
STOP_SECONDS = 10


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (Linux /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":  # a zombie has exited already
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        children = {p for p, pp in parents.items() if pp == parent}
        found |= children
        frontier += children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_servers_stop_with_every_child(signum, tmp_path):
    dagster_port, app_port = free_port(), free_port()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "CINEMATCH_HOME": str(tmp_path / "data")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "cinematch_assets.ops.demo",
         "--dagster-port", str(dagster_port), "--app-port", str(app_port)],
        cwd=REPO_ROOT, env=env, start_new_session=True,  # a terminal's foreground group
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not (
            answers(f"http://127.0.0.1:{dagster_port}/server_info")
            and answers(f"http://127.0.0.1:{app_port}/_stcore/health")
        ):
            assert demo.poll() is None, "the demo exited while starting"
            assert time.monotonic() < deadline, "the servers did not come up"
            time.sleep(1)
        started = descendants(demo.pid)
        assert len(started) >= 5  # dagster dev, webserver, daemon, code server(s), streamlit
        os.killpg(demo.pid, signum)
        stopped_by = time.monotonic() + STOP_SECONDS
        while (left := {p for p in started | {demo.pid} if alive(p)}) and (
            time.monotonic() < stopped_by
        ):
            demo.poll()
            time.sleep(0.2)
        assert not left, f"still running {STOP_SECONDS} s after {signum.name}: {sorted(left)}"
    finally:
        for pid in descendants(demo.pid) | {demo.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        demo.wait()

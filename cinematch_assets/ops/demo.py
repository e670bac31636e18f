"""`make demo`'s servers: Dagster's UI and the CineMatch app side by side, stopped together.

Each server runs in a process group of its own. Ctrl-C, SIGTERM or SIGHUP to this process
(or to its group), or either server exiting, stops both: SIGINT to each group, then SIGKILL
to whatever is left after a grace period. `dagster dev` alone does not reliably stop its
webserver, daemon and code servers on a signal; a group kill takes every one of them.

    python -m cinematch_assets.ops.demo --dagster-port 3000 --app-port 8501
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = REPO_ROOT / "app" / "streamlit_app.py"
LOOPBACK = "127.0.0.1"
# What the servers get to stop on their own before they are killed.
GRACE_SECONDS = 5.0


def server_commands(dagster_port: int, app_port: int) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "Dagster UI": [python, "-m", "dagster", "dev", "-h", LOOPBACK, "-p", str(dagster_port),
                       "-w", str(REPO_ROOT / "workspace.yaml")],
        "CineMatch app": [python, "-m", "streamlit", "run", str(APP),
                          "--server.address", LOOPBACK, "--server.port", str(app_port)],
    }  # fmt: skip


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(servers: list[subprocess.Popen], grace: float = GRACE_SECONDS) -> None:
    """SIGINT to every server's group, then SIGKILL to what is still there after `grace`."""
    for server in servers:
        if _group_alive(server.pid):
            os.killpg(server.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_group_alive(s.pid) for s in servers):
        for server in servers:
            server.poll()  # reap an exited server, or its group never looks empty
        time.sleep(0.1)
    for server in servers:
        if _group_alive(server.pid):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


class _Stop(Exception):
    """A signal asked the servers to stop."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def run(commands: dict[str, list[str]]) -> int:
    """Start every command in its own process group; return when one exits or a signal
    comes, once all of them are gone."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_stop)
    servers: list[subprocess.Popen] = []
    try:
        for name, command in commands.items():
            print(f"starting {name}: {' '.join(command[1:4])} ...", flush=True)
            servers.append(subprocess.Popen(command, cwd=REPO_ROOT, start_new_session=True))
        while all(server.poll() is None for server in servers):
            time.sleep(0.2)
        exited = next(
            name for name, s in zip(commands, servers, strict=False) if s.poll() is not None
        )
        print(f"{exited} exited: stopping the others", flush=True)
    except _Stop as why:
        print(f"{why}: stopping the servers", flush=True)
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        stop(servers)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--app-port", type=int, default=8501)
    args = parser.parse_args(argv)
    return run(server_commands(args.dagster_port, args.app_port))


if __name__ == "__main__":
    raise SystemExit(main())

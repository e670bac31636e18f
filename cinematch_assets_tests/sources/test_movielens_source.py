"""Tests for MovieLens acquisition against a local HTTP server (no real network)."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import random
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cinematch_assets.sources import movielens
from cinematch_assets.sources.movielens import (
    ENV_VAR,
    MARKER_NAME,
    MOVIELENS_VARIANTS,
    MovieLensError,
    MovieLensRelease,
    check_movielens_source,
    fetch_movielens,
    parse_md5_file,
    use_local_movielens,
)
from cinematch_assets_tests.conftest import SHARED_ARCHIVE

VARIANT = "ml-latest-small"
ZIP_PATH = f"/{VARIANT}.zip"
MD5_PATH = f"/{VARIANT}.zip.md5"
REAL_ZIP = SHARED_ARCHIVE
REAL_MD5 = "567abb45b9319401d7114ac18812565e"

RATINGS = (
    "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n2,1,3.5,1445714835\n"
)
MOVIES = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
    '3,"Grumpier Old Men, The (1995)",Comedy|Romance\n'
)
LINKS = "movieId,imdbId,tmdbId\n1,0114709,862\n3,0113228,15602\n"
TAGS = "userId,movieId,tag,timestamp\n2,1,pixar,1445714994\n"


# --------------------------------------------------------------------------- archives


def make_zip(
    members: dict[str, str] | None = None,
    *,
    top: str = VARIANT,
    extra_ratings: int = 0,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """A tiny MovieLens-shaped archive (top folder + the four CSVs), as bytes."""
    ratings = RATINGS + "".join(f"9,{i},3.0,1445714835\n" for i in range(extra_ratings))
    if members is None:
        members = {
            "ratings.csv": ratings,
            "movies.csv": MOVIES,
            "links.csv": LINKS,
            "tags.csv": TAGS,
            "README.txt": "test archive\n",
        }
        members = {f"{top}/{name}": text for name, text in members.items()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buf.getvalue()


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


GOOD_ZIP = make_zip()
NEWER_ZIP = make_zip(extra_ratings=5)


# --------------------------------------------------------------------------- local server


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_length: int | None = None  # None: len(body); -1: no Content-Length header
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class FakeServer:
    """A stdlib HTTP server on 127.0.0.1 serving configurable replies, counting requests."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.requests: list[str] = []
        self.ranges: list[str | None] = []  # the Range header of each request
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        # A client that timed out leaves a broken pipe behind: not worth a traceback.
        self._httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/"
        # A short poll interval makes shutdown() (once per test) return quickly.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        self._running = True

    def serve(self, path: str, *replies: Reply) -> None:
        """Replies are used in turn; the last one repeats."""
        self.routes[path] = list(replies)

    def publish(self, data: bytes, *, md5_text: str | None = None) -> None:
        """Serve ``data`` as the variant zip with an md5sum-style checksum file."""
        self.serve(MD5_PATH, Reply(body=(md5_text or f"{md5_of(data)}  {VARIANT}.zip\n").encode()))
        self.serve(ZIP_PATH, Reply(body=data))

    def count(self, path: str) -> int:
        return self.requests.count(path)

    def next_reply(self, path: str) -> Reply:
        with self._lock:
            self.requests.append(path)
            queue = self.routes.get(path)
            if not queue:
                return Reply(status=404, body=b"not found")
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._httpd.shutdown()
            self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.fake.ranges.append(self.headers.get("Range"))  # type: ignore[attr-defined]
        reply = self.server.fake.next_reply(self.path)  # type: ignore[attr-defined]
        time.sleep(reply.delay)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        length = len(reply.body) if reply.content_length is None else reply.content_length
        if length >= 0:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        # HTTP/1.0: the connection closes after this, so a short body is a truncated transfer.
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.stop()


@pytest.fixture
def dead_url() -> str:
    """A URL on a port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def logs() -> list[str]:
    return []


def fetch(base_url: str, dest_root: Path, logs: list[str], **kwargs: object) -> MovieLensRelease:
    options: dict = {"timeout": 5.0, "retries": 2, "backoff": 0.0, **kwargs}
    return fetch_movielens(VARIANT, dest_root, base_url=base_url, log=logs.append, **options)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def entries(dest_root: Path) -> list[str]:
    """What is in dest_root: only final folders may remain, never temp files/dirs."""
    return sorted(p.name for p in dest_root.iterdir()) if dest_root.exists() else []


def seed_copy(tmp_path: Path, dest_root: Path, data: bytes = GOOD_ZIP) -> MovieLensRelease:
    """An earlier good copy in dest_root, installed from a local zip (no server)."""
    local = tmp_path / "seed" / f"{VARIANT}.zip"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    return use_local_movielens(local, dest_root, log=lambda _msg: None)


# --------------------------------------------------------------------------- download: success


@pytest.mark.parametrize("md5_style", ["md5sum", "md5sum-binary", "bsd"])
def test_fetch_good_archive(server, tmp_path, logs, md5_style):
    digest = md5_of(GOOD_ZIP)
    md5_text = {
        "md5sum": f"{digest}  {VARIANT}.zip\n",
        "md5sum-binary": f"{digest} *{VARIANT}.zip\n",
        "bsd": f"MD5 ({VARIANT}.zip) = {digest}\n",
    }[md5_style]
    server.publish(GOOD_ZIP, md5_text=md5_text)
    dest_root = tmp_path / "raw"

    release = fetch(server.url, dest_root, logs)

    assert release.variant == VARIANT
    assert release.path == dest_root.resolve() / VARIANT
    assert release.source == server.url + f"{VARIANT}.zip"
    assert release.md5 == digest
    assert release.files == {
        "links.csv": len(LINKS),
        "movies.csv": len(MOVIES),
        "ratings.csv": len(RATINGS),
        "tags.csv": len(TAGS),
    }
    assert release.ratings_csv.read_text() == RATINGS
    assert release.movies_csv.read_text() == MOVIES
    assert (release.path / "README.txt").is_file()
    assert (release.path / MARKER_NAME).is_file()
    assert server.requests == [MD5_PATH, ZIP_PATH]  # checksum first
    assert any("100%" in line for line in logs), logs
    assert any("verified" in line for line in logs), logs
    assert entries(dest_root) == [VARIANT]


def test_second_fetch_reuses_copy_without_network(server, tmp_path, logs):
    server.publish(GOOD_ZIP)
    dest_root = tmp_path / "raw"
    first = fetch(server.url, dest_root, logs)
    assert len(server.requests) == 2

    again = fetch(server.url, dest_root, logs)
    assert again == first
    assert len(server.requests) == 2  # no request at all

    server.stop()
    offline = fetch(server.url, dest_root, logs)
    assert offline == first


def test_modified_copy_is_downloaded_again(server, tmp_path, logs):
    server.publish(GOOD_ZIP)
    dest_root = tmp_path / "raw"
    first = fetch(server.url, dest_root, logs)
    first.ratings_csv.write_text("userId,movieId,rating,timestamp\n")  # damaged copy

    again = fetch(server.url, dest_root, logs)

    assert server.count(ZIP_PATH) == 2
    assert again.ratings_csv.read_text() == RATINGS
    assert entries(dest_root) == [VARIANT]


def test_force_replaces_earlier_copy(server, tmp_path, logs):
    dest_root = tmp_path / "raw"
    seed_copy(tmp_path, dest_root, GOOD_ZIP)
    server.publish(NEWER_ZIP)

    release = fetch(server.url, dest_root, logs, force=True)

    assert release.md5 == md5_of(NEWER_ZIP)
    assert release.files["ratings.csv"] > len(RATINGS)
    assert entries(dest_root) == [VARIANT]


def test_transient_503_then_success(server, tmp_path, logs):
    server.publish(GOOD_ZIP)
    server.serve(ZIP_PATH, Reply(status=503, body=b"busy"), Reply(body=GOOD_ZIP))

    release = fetch(server.url, tmp_path, logs)

    assert release.md5 == md5_of(GOOD_ZIP)
    assert server.count(ZIP_PATH) == 2
    assert any("retry 1/2" in line for line in logs), logs


def test_progress_without_content_length(server, tmp_path, logs, monkeypatch):
    monkeypatch.setattr(movielens, "PROGRESS_EVERY_BYTES", 1000)
    monkeypatch.setattr(movielens, "CHUNK_BYTES", 500)
    data = make_zip(extra_ratings=300, compression=zipfile.ZIP_STORED)
    server.publish(data)
    server.serve(ZIP_PATH, Reply(body=data, content_length=-1))

    release = fetch(server.url, tmp_path, logs)

    assert release.md5 == md5_of(data)
    progress = [line for line in logs if "MB downloaded" in line]
    assert len(progress) >= len(data) // 1000 - 1, logs


def test_release_is_picklable_and_hashable(server, tmp_path, logs):
    server.publish(GOOD_ZIP)
    release = fetch(server.url, tmp_path, logs)
    assert pickle.loads(pickle.dumps(release)) == release
    assert hash(release) == hash(pickle.loads(pickle.dumps(release)))


# --------------------------------------------------------------------------- download: failures


def test_checksum_mismatch(server, tmp_path, logs):
    wrong = "0" * 32
    server.publish(GOOD_ZIP, md5_text=f"{wrong}  {VARIANT}.zip\n")
    dest_root = tmp_path / "raw"

    with pytest.raises(MovieLensError) as err:
        fetch(server.url, dest_root, logs)

    assert wrong in str(err.value)
    assert md5_of(GOOD_ZIP) in str(err.value)
    assert entries(dest_root) == []  # nothing extracted, no temp left


def test_truncated_transfer_is_retried_then_fails(server, tmp_path, logs):
    server.publish(GOOD_ZIP)
    server.serve(ZIP_PATH, Reply(body=GOOD_ZIP[:200], content_length=len(GOOD_ZIP)))

    with pytest.raises(MovieLensError) as err:
        fetch(server.url, tmp_path, logs, retries=2)

    assert server.count(ZIP_PATH) == 3  # first attempt + 2 retries
    message = str(err.value)
    assert "failed after 3 attempt" in message
    assert f"200 of {len(GOOD_ZIP):,} bytes" in message
    assert entries(tmp_path) == []


def test_cut_transfer_resumes_where_it_stopped(server, tmp_path, logs):
    """A connection lost mid-download: the retry asks only for the missing bytes."""
    server.publish(GOOD_ZIP)
    size, cut = len(GOOD_ZIP), len(GOOD_ZIP) // 3
    server.serve(
        ZIP_PATH,
        Reply(body=GOOD_ZIP[:cut], content_length=size),
        Reply(
            status=206,
            body=GOOD_ZIP[cut:],
            headers={"Content-Range": f"bytes {cut}-{size - 1}/{size}"},
        ),
    )

    release = fetch(server.url, tmp_path, logs)

    assert server.count(ZIP_PATH) == 2
    assert server.ranges[-2:] == [None, f"bytes={cut}-"]
    assert release.md5 == md5_of(GOOD_ZIP)
    assert entries(tmp_path) == [VARIANT]


@pytest.mark.parametrize(
    "answer",
    [
        Reply(body=GOOD_ZIP),  # Range ignored: the whole file again
        Reply(status=206, body=GOOD_ZIP[10:], headers={"Content-Range": "bytes 10-99/100"}),
    ],
    ids=["range-ignored", "wrong-offset"],
)
def test_resume_not_honoured_starts_over(server, tmp_path, logs, answer):
    server.publish(GOOD_ZIP)
    cut = len(GOOD_ZIP) // 3
    server.serve(
        ZIP_PATH,
        Reply(body=GOOD_ZIP[:cut], content_length=len(GOOD_ZIP)),
        answer,
        Reply(body=GOOD_ZIP),
    )

    release = fetch(server.url, tmp_path, logs, retries=3)

    assert release.md5 == md5_of(GOOD_ZIP)  # never a spliced file


@pytest.mark.slow
def test_large_archive_reports_progress_and_resumes(server, tmp_path, logs):
    """An archive the size of ML-33M's (330 MB; here 315 MiB, stored), cut at 43%:
    progress every tenth, the rest fetched with a Range request, verified, extracted."""
    rng = random.Random(7)
    lines = [f"{rng.randrange(1, 330_000)},{rng.randrange(1, 86_000)},3.5,1445714835\n"
             for _ in range(200_000)]  # fmt: skip
    ratings = RATINGS + "".join(lines) * 60
    big = make_zip(
        {f"{VARIANT}/{name}": text for name, text in
         {"ratings.csv": ratings, "movies.csv": MOVIES, "links.csv": LINKS}.items()},
        compression=zipfile.ZIP_STORED,
    )  # fmt: skip
    assert len(big) > 300 * 2**20
    size, cut = len(big), len(big) * 43 // 100
    server.serve(MD5_PATH, Reply(body=f"{md5_of(big)}  {VARIANT}.zip\n".encode()))
    server.serve(
        ZIP_PATH,
        Reply(body=big[:cut], content_length=size),
        Reply(status=206, body=big[cut:],
              headers={"Content-Range": f"bytes {cut}-{size - 1}/{size}"}),
    )  # fmt: skip

    release = fetch(server.url, tmp_path, logs, timeout=30.0)

    assert server.ranges[-1] == f"bytes={cut}-"
    progress = [line for line in logs if line.startswith(f"{VARIANT}.zip: ")]
    assert [line.split("%")[0].split()[-1] for line in progress] == [
        str(p) for p in range(10, 101, 10)
    ]
    assert release.md5 == md5_of(big)
    assert (release.path / "ratings.csv").stat().st_size == len(ratings)


def test_truncated_archive_with_matching_md5_is_corrupt(server, tmp_path, logs):
    server.publish(GOOD_ZIP[: len(GOOD_ZIP) // 2])

    with pytest.raises(MovieLensError, match="corrupt archive"):
        fetch(server.url, tmp_path, logs)

    assert entries(tmp_path) == []


def test_crc_error_is_corrupt(server, tmp_path, logs):
    data = bytearray(make_zip(compression=zipfile.ZIP_STORED))
    at = bytes(data).index(b"Toy Story")
    data[at] = ord("X")  # same size, wrong CRC
    server.publish(bytes(data))

    with pytest.raises(MovieLensError, match="corrupt archive.*CRC"):
        fetch(server.url, tmp_path, logs)

    assert entries(tmp_path) == []


def test_http_404_fails_at_once(server, tmp_path, logs):
    with pytest.raises(MovieLensError) as err:
        fetch_movielens(
            "ml-99m", tmp_path, base_url=server.url, log=logs.append, retries=3, backoff=0.0
        )

    assert server.requests == ["/ml-99m.zip.md5"]  # no retry, no zip request
    assert "404" in str(err.value)
    assert "unknown MovieLens variant" in str(err.value)
    assert entries(tmp_path) == []


def test_server_unreachable_names_offline_alternative(dead_url, tmp_path, logs):
    with pytest.raises(MovieLensError) as err:
        fetch(dead_url, tmp_path, logs, retries=1)

    message = str(err.value)
    assert "failed after 2 attempt" in message
    assert f"{ENV_VAR}=/path/to/{VARIANT}.zip" in message
    assert "extracted folder" in message
    assert entries(tmp_path) == []


def test_timeout_is_retried_then_names_offline_alternative(server, tmp_path, logs):
    server.serve(MD5_PATH, Reply(body=b"x", delay=1.0))

    started = time.monotonic()
    with pytest.raises(MovieLensError, match=ENV_VAR):
        fetch(server.url, tmp_path, logs, timeout=0.2, retries=1)

    assert server.count(MD5_PATH) == 2
    assert time.monotonic() - started < 1.9  # without the timeout: 2 x 1 s


def test_persistent_5xx_gives_up(server, tmp_path, logs):
    server.publish(GOOD_ZIP)
    server.serve(ZIP_PATH, Reply(status=500, body=b"oops"))

    with pytest.raises(MovieLensError, match="HTTP 500"):
        fetch(server.url, tmp_path, logs, retries=2)

    assert server.count(ZIP_PATH) == 3


@pytest.mark.parametrize(
    "text",
    ["", "<html>Service unavailable</html>", "567abb45b9319401d7114ac1881256  short.zip"],
)
def test_bad_checksum_file(server, tmp_path, logs, text):
    server.publish(GOOD_ZIP, md5_text=text or "\n")

    with pytest.raises(MovieLensError, match="checksum file"):
        fetch(server.url, tmp_path, logs)

    assert server.count(ZIP_PATH) == 0
    assert entries(tmp_path) == []


@pytest.mark.parametrize(
    "evil", ["../evil.csv", f"{VARIANT}/../../evil.csv", "/tmp/cinematch-evil.csv", "C:/evil.csv"]
)
def test_zip_slip_member_rejected(server, tmp_path, logs, evil):
    members = {f"{VARIANT}/ratings.csv": RATINGS, f"{VARIANT}/movies.csv": MOVIES, evil: "x\n"}
    server.publish(make_zip(members))
    dest_root = tmp_path / "deep" / "raw"

    with pytest.raises(MovieLensError, match="unsafe member"):
        fetch(server.url, dest_root, logs)

    assert entries(dest_root) == []
    assert not (tmp_path / "deep" / "evil.csv").exists()
    assert not Path("/tmp/cinematch-evil.csv").exists()


def test_archive_without_ratings(server, tmp_path, logs):
    server.publish(make_zip({f"{VARIANT}/movies.csv": MOVIES}))

    with pytest.raises(MovieLensError, match="ratings.csv and movies.csv"):
        fetch(server.url, tmp_path, logs)

    assert entries(tmp_path) == []


def test_invalid_variant_name_is_refused_offline(server, tmp_path, logs):
    with pytest.raises(MovieLensError, match="Invalid MovieLens variant"):
        fetch_movielens("../etc", tmp_path, base_url=server.url, log=logs.append)
    assert server.requests == []


# Every failure mode, with an earlier good copy present (forced refresh): the copy stays
# byte-for-byte intact, is still returned afterwards, and no temp file/dir remains.

FAILURES = {
    "md5-mismatch": lambda s, url: s.publish(GOOD_ZIP, md5_text=f"{'f' * 32}  {VARIANT}.zip"),
    "short-transfer": lambda s, url: (
        s.publish(NEWER_ZIP),
        s.serve(ZIP_PATH, Reply(body=NEWER_ZIP[:100], content_length=len(NEWER_ZIP))),
    ),
    "corrupt-zip": lambda s, url: s.publish(NEWER_ZIP[:-30]),
    "http-404": lambda s, url: None,
    "http-503": lambda s, url: s.serve(MD5_PATH, Reply(status=503)),
    "zip-slip": lambda s, url: s.publish(
        make_zip(
            {
                "../x.csv": "x",
                **{f"{VARIANT}/ratings.csv": RATINGS, f"{VARIANT}/movies.csv": MOVIES},
            }
        )
    ),
    "no-ratings": lambda s, url: s.publish(make_zip({f"{VARIANT}/movies.csv": MOVIES})),
    "server-down": lambda s, url: None,
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_failure_keeps_earlier_copy(server, dead_url, tmp_path, logs, failure):
    dest_root = tmp_path / "raw"
    earlier = seed_copy(tmp_path, dest_root)
    before = snapshot(earlier.path)
    FAILURES[failure](server, server.url)
    base_url = dead_url if failure == "server-down" else server.url

    with pytest.raises(MovieLensError):
        fetch(base_url, dest_root, logs, force=True, retries=1)

    assert entries(dest_root) == [VARIANT]
    assert snapshot(earlier.path) == before
    server.stop()
    assert fetch(dead_url, dest_root, logs) == earlier  # still usable, offline


# --------------------------------------------------------------------------- local sources


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_local_zip_extracted_and_reused(tmp_path, logs):
    local = write(tmp_path / "downloads" / "ml-latest-small-2018.zip", GOOD_ZIP)
    dest_root = tmp_path / "raw"

    release = use_local_movielens(local, dest_root, log=logs.append)

    assert release.variant == VARIANT  # inferred from the zip name
    assert release.path == dest_root.resolve() / VARIANT
    assert release.md5 == md5_of(GOOD_ZIP)
    assert release.source == str(local.resolve())
    assert set(release.files) == {"links.csv", "movies.csv", "ratings.csv", "tags.csv"}
    marker_stat = (release.path / MARKER_NAME).stat()

    again = use_local_movielens(local, dest_root, log=logs.append)

    assert again == release
    assert (release.path / MARKER_NAME).stat().st_mtime_ns == marker_stat.st_mtime_ns
    assert any("already extracted" in line for line in logs), logs
    assert entries(dest_root) == [VARIANT]


def test_local_zip_with_other_content_replaces_copy(tmp_path, logs):
    dest_root = tmp_path / "raw"
    seed_copy(tmp_path, dest_root, GOOD_ZIP)
    newer = write(tmp_path / "newer" / f"{VARIANT}.zip", NEWER_ZIP)

    release = use_local_movielens(newer, dest_root, log=logs.append)

    assert release.md5 == md5_of(NEWER_ZIP)
    assert release.ratings_csv.stat().st_size == release.files["ratings.csv"] > len(RATINGS)
    assert entries(dest_root) == [VARIANT]


def test_local_zip_variant_from_top_folder_or_argument(tmp_path, logs):
    local = write(tmp_path / "movielens.zip", make_zip(top="ml-25m"))
    assert use_local_movielens(local, tmp_path / "a", log=logs.append).variant == "ml-25m"

    explicit = use_local_movielens(local, tmp_path / "b", variant="ml-32m", log=logs.append)
    assert explicit.variant == "ml-32m"
    assert explicit.path == (tmp_path / "b").resolve() / "ml-32m"


def test_local_flat_zip_without_top_folder(tmp_path, logs):
    flat = make_zip({"ratings.csv": RATINGS, "movies.csv": MOVIES})
    release = use_local_movielens(
        write(tmp_path / "ml-20m.zip", flat), tmp_path / "raw", log=logs.append
    )
    assert release.variant == "ml-20m"
    assert release.ratings_csv.read_text() == RATINGS


def test_local_folder_used_in_place(tmp_path, logs):
    extracted = tmp_path / "unpacked"
    with zipfile.ZipFile(io.BytesIO(GOOD_ZIP)) as zf:
        zf.extractall(extracted)
    folder = extracted / VARIANT
    dest_root = tmp_path / "raw"

    direct = use_local_movielens(folder, dest_root, log=logs.append)
    via_parent = use_local_movielens(extracted, dest_root, log=logs.append)

    for release in (direct, via_parent):
        assert release.variant == VARIANT
        assert release.path == folder.resolve()
        assert release.md5 is None
        assert release.files["ratings.csv"] == len(RATINGS)
    assert via_parent.source == str(extracted.resolve())
    assert entries(dest_root) == []  # nothing copied


def test_local_parent_with_two_releases_is_ambiguous(tmp_path, logs):
    for name in ("ml-latest-small", "ml-25m"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "ratings.csv").write_text(RATINGS)
        (tmp_path / name / "movies.csv").write_text(MOVIES)
    with pytest.raises(MovieLensError, match="several MovieLens folders"):
        use_local_movielens(tmp_path, tmp_path / "raw", log=logs.append)


def test_local_missing_path(tmp_path, logs):
    with pytest.raises(MovieLensError, match="does not exist") as err:
        use_local_movielens(tmp_path / "nope.zip", tmp_path / "raw", log=logs.append)
    assert ENV_VAR in str(err.value)


def test_local_not_a_zip(tmp_path, logs):
    text = write(tmp_path / f"{VARIANT}.zip", b"userId,movieId,rating,timestamp\n")
    with pytest.raises(MovieLensError, match="not a zip archive"):
        use_local_movielens(text, tmp_path / "raw", log=logs.append)
    assert entries(tmp_path / "raw") == []


def test_local_corrupt_zip_keeps_earlier_copy(tmp_path, logs):
    dest_root = tmp_path / "raw"
    earlier = seed_copy(tmp_path, dest_root)
    before = snapshot(earlier.path)
    broken = write(tmp_path / "broken" / f"{VARIANT}.zip", NEWER_ZIP[: len(NEWER_ZIP) // 2])

    with pytest.raises(MovieLensError, match="corrupt archive"):
        use_local_movielens(broken, dest_root, log=logs.append)

    assert entries(dest_root) == [VARIANT]
    assert snapshot(earlier.path) == before


def test_local_folder_without_ratings(tmp_path, logs):
    folder = tmp_path / VARIANT
    folder.mkdir()
    (folder / "movies.csv").write_text(MOVIES)
    with pytest.raises(MovieLensError, match="ratings.csv and movies.csv"):
        use_local_movielens(folder, tmp_path / "raw", log=logs.append)


# --------------------------------------------------------------------------- small units


def test_parse_md5_file_formats():
    digest = "567abb45b9319401d7114ac18812565e"
    name = "ml-latest-small.zip"
    assert parse_md5_file(f"{digest}  {name}\n", name) == digest
    assert parse_md5_file(f"{digest.upper()} *{name}", name) == digest
    assert parse_md5_file(f"MD5 ({name}) = {digest}\n", name) == digest
    assert parse_md5_file(f"\ufeffMD5 (/data/{name}) = {digest}\r\n", name) == digest
    several = f"{'1' * 32}  ml-25m.zip\n{digest}  {name}\n"
    assert parse_md5_file(several, name) == digest
    with pytest.raises(MovieLensError, match="none names"):
        parse_md5_file(f"{'1' * 32}  a.zip\n{'2' * 32}  b.zip\n", name)
    with pytest.raises(MovieLensError, match="neither"):
        parse_md5_file(digest, name)  # a bare hash is not one of the two formats


def test_variants_documented():
    assert list(MOVIELENS_VARIANTS)[0] == movielens.DEFAULT_VARIANT == VARIANT
    assert {"ml-latest-small", "ml-latest", "ml-32m", "ml-25m", "ml-20m"} <= set(MOVIELENS_VARIANTS)
    assert all(MOVIELENS_VARIANTS.values())
    assert "genome" in MOVIELENS_VARIANTS["ml-latest"]


# --------------------------------------------------------------------------- the real archive

needs_real_zip = pytest.mark.skipif(
    not REAL_ZIP.is_file(), reason=f"real MovieLens sample not found at {REAL_ZIP}"
)
REAL_SIZES = {"links.csv": 207997, "movies.csv": 515700, "ratings.csv": 2580392, "tags.csv": 199073}


@pytest.mark.realdata
@needs_real_zip
def test_real_archive_via_local_zip(tmp_path, logs):
    release = use_local_movielens(REAL_ZIP, tmp_path / "raw", log=logs.append)

    assert release.variant == VARIANT  # inferred from ml-latest-small-2016.zip
    assert release.md5 == REAL_MD5
    assert release.files == REAL_SIZES
    with release.ratings_csv.open() as fh:
        assert fh.readline().strip() == "userId,movieId,rating,timestamp"
    assert use_local_movielens(REAL_ZIP, tmp_path / "raw", log=logs.append) == release


@pytest.mark.realdata
@needs_real_zip
def test_real_archive_via_local_server(server, tmp_path, logs):
    server.publish(REAL_ZIP.read_bytes(), md5_text=f"MD5 ({VARIANT}.zip) = {REAL_MD5}\n")

    release = fetch(server.url, tmp_path / "raw", logs)

    assert release.md5 == REAL_MD5
    assert release.files == REAL_SIZES
    assert sum(1 for line in logs if "%" in line) >= 5  # ~every 10% of a 1 MB body


# --------------------------------------------------------------------------- preflight


def check(dest_root: Path, **kwargs: object) -> str:
    return check_movielens_source(dest_root, variant=VARIANT, **kwargs)


def test_preflight_of_a_download_asks_for_the_checksum_only(server, tmp_path):
    server.publish(GOOD_ZIP)
    assert check(tmp_path, base_url=server.url) == f"{server.url}{VARIANT}.zip (reachable)"
    assert server.requests == [MD5_PATH]
    assert entries(tmp_path) == []  # nothing downloaded or extracted


def test_preflight_offline_says_what_to_do_after_one_try(dead_url, tmp_path):
    started = time.monotonic()
    with pytest.raises(MovieLensError, match=f"after 1 attempt.*{ENV_VAR}=/path/to/"):
        check(tmp_path, base_url=dead_url)
    assert time.monotonic() - started < 10


def test_preflight_offline_with_a_verified_copy_needs_no_network(dead_url, tmp_path):
    seed_copy(tmp_path, tmp_path / "raw")
    assert check(tmp_path / "raw", base_url=dead_url).startswith("the verified copy")


def test_preflight_of_local_sources(tmp_path):
    good = write(tmp_path / f"{VARIANT}.zip", GOOD_ZIP)
    assert check(tmp_path, local_path=good) == f"the local archive {good} ({VARIANT})"
    folder = tmp_path / "extracted"
    with zipfile.ZipFile(good) as zf:
        zf.extractall(folder)
    assert (
        check(tmp_path, local_path=folder) == f"the extracted folder {folder / VARIANT} ({VARIANT})"
    )
    assert entries(tmp_path) == ["extracted", f"{VARIANT}.zip"]  # nothing extracted by it


def crc_broken_zip() -> bytes:
    data = bytearray(make_zip(compression=zipfile.ZIP_STORED))
    data[bytes(data).index(b"964982703")] = ord("0")  # same size, wrong CRC
    return bytes(data)


def zip_of_zeros(megabytes: int) -> bytes:
    """A zip whose ratings.csv is `megabytes` MB of one repeated line: ~1,000 to 1."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{VARIANT}/movies.csv", MOVIES)
        with zf.open(f"{VARIANT}/ratings.csv", "w") as member:
            line = b"1,1,4.0,964982703\n" * (2**20 // 18)
            for _ in range(megabytes):
                member.write(line)
    return buffer.getvalue()


SPLIT = make_zip({"a/ratings.csv": RATINGS, "b/movies.csv": MOVIES}, top="")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"userId,movieId\n", "not a zip archive"),
        (GOOD_ZIP[: len(GOOD_ZIP) // 2], "corrupt archive"),
        (crc_broken_zip(), "ratings.csv fails its CRC check"),
        (make_zip({"movies.csv": MOVIES}), "no folder in it contains ratings.csv and movies.csv"),
        (SPLIT, "no folder in it contains ratings.csv and movies.csv side by side"),
        (zip_of_zeros(40), "compressed .* to 1 .* zip bomb"),
    ],
    ids=["missing", "not-a-zip", "truncated", "crc", "no-ratings", "split-folders", "zip-bomb"],
)
def test_preflight_and_the_raw_asset_refuse_a_bad_archive_alike(tmp_path, content, message):
    """The same checks, the same message, and nothing extracted by either."""
    path = tmp_path / f"{VARIANT}.zip"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MovieLensError, match=message) as preflight:
        check(tmp_path / "raw", local_path=path)
    with pytest.raises(MovieLensError) as raw:
        use_local_movielens(path, tmp_path / "raw", log=lambda _: None)
    assert str(raw.value) == str(preflight.value)
    assert not (tmp_path / "raw" / VARIANT).exists()


def test_a_zip_that_expands_beyond_the_bound_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(movielens, "MAX_EXTRACTED_BYTES", 100)
    path = write(tmp_path / f"{VARIANT}.zip", GOOD_ZIP)
    for attempt in (
        lambda: check(tmp_path / "raw", local_path=path),
        lambda: use_local_movielens(path, tmp_path / "raw", log=lambda _: None),
    ):
        with pytest.raises(MovieLensError, match="would expand to .* refusing to extract"):
            attempt()


def test_preflight_and_the_raw_asset_accept_awkward_names_alike(tmp_path):
    """A folder or a zip whose name has a space is used by both, under a safe label."""
    zipped = write(tmp_path / "my movies.zip", make_zip(top="my movies"))
    folder = tmp_path / "my movie folder"
    with zipfile.ZipFile(zipped) as zf:
        zf.extractall(folder)
    assert check(tmp_path / "raw", local_path=zipped) == f"the local archive {zipped} (my-movies)"
    release = use_local_movielens(zipped, tmp_path / "raw", log=lambda _: None)
    assert release.variant == "my-movies" and release.path == tmp_path / "raw" / "my-movies"
    assert check(tmp_path / "raw", local_path=folder).endswith("(my-movies)")
    assert use_local_movielens(folder, tmp_path / "raw", log=lambda _: None).variant == "my-movies"


def test_make_preflight_ends_with_the_message_not_a_traceback(tmp_path):
    """What `make materialize` runs first: an unusable source is the last thing printed."""
    env = {**os.environ, "CINEMATCH_HOME": str(tmp_path), ENV_VAR: str(tmp_path / "gone.zip")}
    run = subprocess.run(
        [sys.executable, "-m", "cinematch_assets.ops.preflight"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"The local MovieLens path {tmp_path / 'gone.zip'} does not exist")
    assert ENV_VAR in last

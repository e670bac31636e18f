"""Tests for the synthetic MovieLens generator: format, determinism, shape, planted signal."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from cinematch_assets.sources import synthetic
from cinematch_assets.sources.synthetic import (
    GENRES,
    HALF_STARS_FROM,
    MANIFEST_NAME,
    MARKDOWN_TITLES,
    NO_GENRES,
    SYNTHETIC_PRESETS,
    T_END,
    T_START,
    SyntheticSpec,
    generate_movielens,
    main,
    planted_model,
    scaled_spec,
)
from cinematch_assets.storage.leftovers import temp_prefix
from cinematch_assets_tests.conftest import REPO_ROOT

CSV_FILES = ("ratings.csv", "movies.csv", "links.csv", "tags.csv")
HEADERS = {
    "ratings.csv": ["userId", "movieId", "rating", "timestamp"],
    "movies.csv": ["movieId", "title", "genres"],
    "links.csv": ["movieId", "imdbId", "tmdbId"],
    "tags.csv": ["userId", "movieId", "tag", "timestamp"],
}
HALF_STAR_GRID = {f"{v / 2:.1f}" for v in range(1, 11)}
TINY = SYNTHETIC_PRESETS["synthetic-tiny"]
SMALL = SYNTHETIC_PRESETS["synthetic-small"]
# Several blocks of users, still quick: for chunking and duplicate tests.
MULTI_BLOCK = SyntheticSpec(n_users=2_500, n_movies=1_500, n_ratings=25_000, seed=3)


def read_rows(folder: Path, name: str) -> list[list[str]]:
    with open(folder / name, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in CSV_FILES}


@dataclass(frozen=True)
class Ratings:
    """ratings.csv as arrays, with 0-based user and movie indices."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    ts: np.ndarray
    catalog: np.ndarray  # all movieIds of movies.csv, increasing
    genres: np.ndarray  # (n_movies, len(GENRES)) bool


def load(folder: Path) -> Ratings:
    table = np.loadtxt(folder / "ratings.csv", delimiter=",", skiprows=1)
    movies = read_rows(folder, "movies.csv")[1:]
    catalog = np.array([int(m[0]) for m in movies])
    genres = np.array([[g in m[2].split("|") for g in GENRES] for m in movies])
    movie_ids = table[:, 1].astype(np.int64)
    return Ratings(
        users=table[:, 0].astype(np.int64) - 1,
        items=np.searchsorted(catalog, movie_ids),
        ratings=table[:, 2],
        ts=table[:, 3].astype(np.int64),
        catalog=catalog,
        genres=genres,
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic") / "tiny"
    generate_movielens(TINY, folder)
    return folder


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("synthetic") / "small"
    return folder, generate_movielens(SMALL, folder)


@pytest.fixture(scope="module")
def small_ratings(small: tuple[Path, dict]) -> Ratings:
    return load(small[0])


# --------------------------------------------------------------------------- format


def test_headers_and_bytes_are_grouplens_style(tiny: Path) -> None:
    for name in CSV_FILES:
        raw = (tiny / name).read_bytes()
        text = raw.decode("utf-8")
        assert b"\r" not in raw and raw.endswith(b"\n"), name
        assert text.split("\n", 1)[0] == ",".join(HEADERS[name])
        # Minimal quoting, exactly as Python's csv module (and GroupLens) writes it.
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(read_rows(tiny, name))
        assert out.getvalue() == text, f"{name} is not minimally quoted CSV"


def test_ratings_values(tiny: Path) -> None:
    rows = read_rows(tiny, "ratings.csv")[1:]
    movie_ids = {int(m[0]) for m in read_rows(tiny, "movies.csv")[1:]}
    assert all(r[2] in HALF_STAR_GRID for r in rows)
    users = [int(r[0]) for r in rows]
    assert set(users) == set(range(1, TINY.n_users + 1))
    assert {int(r[1]) for r in rows} <= movie_ids
    assert all(T_START <= int(r[3]) < T_END for r in rows)
    keys = [(int(r[0]), int(r[1])) for r in rows]
    assert keys == sorted(keys), "ratings are sorted by userId, then movieId, as in GroupLens"


def test_movies_and_links_values(tiny: Path) -> None:
    movies = read_rows(tiny, "movies.csv")[1:]
    ids = [int(m[0]) for m in movies]
    assert ids == sorted(set(ids)) and len(ids) == TINY.n_movies
    assert max(ids) > 1.5 * len(ids), "movieIds should have gaps, as in MovieLens"
    for _, title, genres in movies:
        assert title.strip()
        names = genres.split("|")
        assert genres == NO_GENRES or (set(names) <= set(GENRES) and names == sorted(names))
    assert any(m[2] == NO_GENRES for m in movies)

    links = read_rows(tiny, "links.csv")[1:]
    assert [int(link[0]) for link in links] == ids
    assert all(re.fullmatch(r"\d{7}", link[1]) for link in links)
    assert len({link[1] for link in links}) == len(links)
    tmdb = [link[2] for link in links]
    assert all(t == "" or re.fullmatch(r"[1-9]\d*", t) for t in tmdb)
    assert 1 <= tmdb.count("") < 0.05 * len(tmdb), "a few movies lack a tmdbId"


def test_tags_values(tiny: Path) -> None:
    tags = read_rows(tiny, "tags.csv")[1:]
    rated = {(r[0], r[1]) for r in read_rows(tiny, "ratings.csv")[1:]}
    assert 0 < len(tags) < 0.1 * TINY.n_ratings
    assert all((t[0], t[1]) in rated for t in tags), "tags are on movies the user rated"
    assert all(t[2] and T_START <= int(t[3]) < T_END for t in tags)
    keys = [(int(t[0]), int(t[1])) for t in tags]
    assert keys == sorted(keys)


def test_tags_cover_awkward_text(small: tuple[Path, dict]) -> None:
    tags = {t[2] for t in read_rows(small[0], "tags.csv")[1:]}
    assert any(t != t.lower() for t in tags), "mixed case"
    assert any(" " in t for t in tags), "spaces"
    assert any("," in t or '"' in t for t in tags), "needs quoting"
    raw = (small[0] / "tags.csv").read_text(encoding="utf-8")
    assert '""' in raw or ',"' in raw


def test_titles_have_movielens_quirks(tiny: Path) -> None:
    titles = [m[1] for m in read_rows(tiny, "movies.csv")[1:]]
    years = [re.search(r"\((\d{4})\)\s*$", t) for t in titles]
    dated = [int(y.group(1)) for y in years if y]
    assert len(dated) > 0.95 * len(titles)
    assert min(dated) >= 1902 and max(dated) <= 2023
    assert any(not re.search(r"\(\d{4}(-\d{0,4})?\)\s*$", t) for t in titles), "no year"
    assert any(re.search(r", (The|A|An) \(\d{4}\)$", t) for t in titles), "trailing article"
    assert any(re.search(r"\(\d{4}-\d{4}\)$", t) for t in titles), "year range"
    assert any(re.search(r"\(\d{4}-\)$", t) for t in titles), "open year range"
    assert any(t.endswith(") ") for t in titles), "trailing space"
    assert any(not t.isascii() for t in titles), "non-ASCII"
    assert any(re.search(r"\(.+\) \(\d{4}", t) for t in titles), "alternate title"
    assert any('"' in t for t in titles) and any("," in t for t in titles)
    assert set(MARKDOWN_TITLES) <= set(titles), "Markdown syntax"


# --------------------------------------------------------------------------- determinism


def test_same_spec_same_bytes_other_seed_differs(tmp_path: Path, tiny: Path) -> None:
    generate_movielens(TINY, tmp_path / "again")
    assert file_bytes(tmp_path / "again") == file_bytes(tiny)
    generate_movielens(replace(TINY, seed=7), tmp_path / "other")
    other = file_bytes(tmp_path / "other")
    assert all(other[name] != data for name, data in file_bytes(tiny).items())


def test_chunk_size_does_not_change_output(tmp_path: Path) -> None:
    outputs = []
    for chunk_users in (1, 1_500, 100_000):  # one block per chunk, two, everything at once
        folder = tmp_path / f"chunk-{chunk_users}"
        generate_movielens(MULTI_BLOCK, folder, chunk_users=chunk_users)
        outputs.append(file_bytes(folder))
    assert outputs[0] == outputs[1] == outputs[2]


def test_no_duplicate_pairs_unless_asked(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    generate_movielens(MULTI_BLOCK, plain)
    lines = (plain / "ratings.csv").read_text().splitlines()[1:]
    pairs = {line.rsplit(",", 2)[0] for line in lines}
    assert len(pairs) == len(lines)

    dup = tmp_path / "dup"
    summary = generate_movielens(replace(MULTI_BLOCK, n_duplicates=7), dup)
    dup_lines = (dup / "ratings.csv").read_text().splitlines()[1:]
    assert summary["rows"]["ratings"] == len(dup_lines) == len(lines) + 7
    # Exact copies, right after the original; everything else is unchanged.
    repeated = [i for i in range(1, len(dup_lines)) if dup_lines[i] == dup_lines[i - 1]]
    assert len(repeated) == 7
    assert [x for i, x in enumerate(dup_lines) if i not in set(repeated)] == lines


# --------------------------------------------------------------------------- shape


def test_totals_near_target(tiny: Path, small: tuple[Path, dict]) -> None:
    for spec, folder in ((TINY, tiny), (SMALL, small[0])):
        n = len((folder / "ratings.csv").read_bytes().splitlines()) - 1
        assert abs(n - spec.n_ratings) <= 0.01 * spec.n_ratings


def test_long_tails(small_ratings: Ratings) -> None:
    per_user = np.bincount(small_ratings.users)
    per_movie = np.bincount(small_ratings.items, minlength=len(small_ratings.catalog))
    assert len(per_user) == SMALL.n_users and per_user.min() >= 1
    assert 0.02 < np.mean(per_user < 15) < 0.5, "some users for the activity filter to drop"
    assert per_user.max() > 10 * np.median(per_user), "a few heavy users"
    assert per_user.max() >= 1_000
    rated = per_movie[per_movie > 0]
    assert np.mean(rated < 10) > 0.5, "most movies have few ratings (Zipf-like popularity)"
    assert rated.max() > 0.2 * SMALL.n_users, "blockbusters"


def test_min_ratings_per_user(tmp_path: Path) -> None:
    spec = replace(TINY, min_ratings_per_user=20)
    generate_movielens(spec, tmp_path)
    per_user = np.bincount(load(tmp_path).users)
    assert per_user.min() >= 20 and len(per_user) == spec.n_users


def test_rating_histogram(small_ratings: Ratings, small: tuple[Path, dict]) -> None:
    r = small_ratings.ratings
    values, counts = np.unique(r, return_counts=True)
    share = dict(zip(values.tolist(), (counts / len(r)).tolist(), strict=True))
    assert max(share, key=share.get) == 4.0
    assert 0.22 < share[4.0] < 0.32
    assert 3.3 <= r.mean() <= 3.7
    assert small[1]["stats"]["rating_mean"] == pytest.approx(r.mean())
    for half in (1.5, 2.5, 3.5, 4.5):  # half stars rarer than both whole-star neighbours
        assert share[half] < min(share[half - 0.5], share[half + 0.5])
    early = small_ratings.ts < HALF_STARS_FROM
    assert early.any() and np.all(r[early] % 1 == 0), "no half stars before 2003-02-12"


def test_users_have_their_own_activity_window(small_ratings: Ratings) -> None:
    u, ts = small_ratings.users, small_ratings.ts
    first = np.full(SMALL.n_users, T_END)
    last = np.zeros(SMALL.n_users, dtype=np.int64)
    np.minimum.at(first, u, ts)
    np.maximum.at(last, u, ts)
    span_days = (last - first) / 86_400
    assert np.mean(span_days < 1) > 0.2 and np.mean(span_days > 365) > 0.1
    assert np.ptp(first) > 20 * 365 * 86_400, "users start all over 1996..2023"


# --------------------------------------------------------------------------- planted signal


def fit_biases(u: np.ndarray, i: np.ndarray, y: np.ndarray, shape: tuple[int, int]):
    """Regularized user + item bias model, a few alternating passes."""
    mu, bu, bi = y.mean(), np.zeros(shape[0]), np.zeros(shape[1])
    for _ in range(5):
        bi = np.bincount(i, y - mu - bu[u], shape[1]) / (np.bincount(i, minlength=shape[1]) + 5)
        bu = np.bincount(u, y - mu - bi[i], shape[0]) / (np.bincount(u, minlength=shape[0]) + 5)
    return lambda uu, ii: mu + bu[uu] + bi[ii]


def als_half_step(rows, cols, y, fixed: np.ndarray, n_rows: int, lam: float) -> np.ndarray:
    """Ridge-solve one side of the factorization given the other."""
    k = fixed.shape[1]
    x = fixed[cols]
    outer = (x[:, :, None] * x[:, None, :]).reshape(len(rows), k * k)
    gram = np.stack([np.bincount(rows, outer[:, j], n_rows) for j in range(k * k)], axis=1)
    rhs = np.stack([np.bincount(rows, x[:, j] * y, n_rows) for j in range(k)], axis=1)
    return np.linalg.solve(gram.reshape(n_rows, k, k) + lam * np.eye(k), rhs[..., None])[..., 0]


@pytest.fixture(scope="module")
def split(small_ratings: Ratings):
    """An 80/20 random split (the test mask) and the bias baseline fitted on train."""
    d = small_ratings
    test = np.random.default_rng(0).random(len(d.ratings)) < 0.2
    shape = (SMALL.n_users, SMALL.n_movies)
    baseline = fit_biases(d.users[~test], d.items[~test], d.ratings[~test], shape)
    return test, baseline


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


def test_als_learns_the_planted_factors(small_ratings: Ratings, split) -> None:
    d, (test, baseline) = small_ratings, split
    u, i, y = d.users[~test], d.items[~test], d.ratings[~test]
    residual = y - baseline(u, i)
    q = 0.1 * np.random.default_rng(1).standard_normal((SMALL.n_movies, SMALL.rank))
    for _ in range(6):
        p = als_half_step(u, i, residual, q, SMALL.n_users, lam=10.0)
        q = als_half_step(i, u, residual, p, SMALL.n_movies, lam=10.0)
    ut, it, yt = d.users[test], d.items[test], d.ratings[test]
    base = rmse(baseline(ut, it), yt)
    als = rmse(baseline(ut, it) + np.einsum("ij,ij->i", p[ut], q[it]), yt)
    oracle = rmse(planted_model(SMALL).expected_rating(ut, it), yt)
    assert als < 0.95 * base, f"ALS {als:.3f} vs bias baseline {base:.3f}"
    assert oracle < als, "the planted model is the best possible predictor"


def test_genre_preferences_are_real(small_ratings: Ratings, split) -> None:
    """A user's average residual per genre on train predicts their test ratings."""
    d, (test, baseline) = small_ratings, split
    u, g = d.users[~test], d.genres[d.items[~test]]
    residual = d.ratings[~test] - baseline(u, d.items[~test])
    n = SMALL.n_users
    sums = np.stack([np.bincount(u, residual * g[:, j], n) for j in range(len(GENRES))], 1)
    counts = np.stack([np.bincount(u, g[:, j], n) for j in range(len(GENRES))], 1)
    liking = sums / (counts + 5)  # shrunk towards 0 for genres a user rarely rates
    ut, gt = d.users[test], d.genres[d.items[test]]
    by_genre = (liking[ut] * gt).sum(axis=1) / np.maximum(gt.sum(axis=1), 1)
    base_pred = baseline(ut, d.items[test])
    yt = d.ratings[test]
    assert rmse(base_pred + by_genre, yt) < 0.97 * rmse(base_pred, yt)


def test_planted_model_matches_output(small: tuple[Path, dict], small_ratings: Ratings) -> None:
    model = planted_model(SMALL)
    summary = small[1]
    assert np.array_equal(model.movie_ids, small_ratings.catalog)
    assert np.array_equal(np.bincount(small_ratings.users), model.counts)
    assert summary["params"]["global_mean"] == model.params.global_mean
    assert summary["params"]["rank"] == SMALL.rank
    assert model.genre_preference().shape == (SMALL.n_users, len(GENRES))
    assert model.popularity.sum() == pytest.approx(1.0)


# --------------------------------------------------------------------------- output folder


def test_summary_counts_rows(small: tuple[Path, dict]) -> None:
    folder, summary = small
    for name in CSV_FILES:
        rows = len(read_rows(folder, name)) - 1
        assert summary["rows"][name.removesuffix(".csv")] == rows, name
    assert summary["spec"] == asdict(SMALL)
    assert summary["reused"] is False
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest == {k: v for k, v in summary.items() if k != "reused"}


def test_reuses_existing_output_and_leaves_no_temp(tmp_path: Path) -> None:
    out = tmp_path / "data"
    first = generate_movielens(TINY, out)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = generate_movielens(TINY, out)
    assert again["reused"] is True and again["rows"] == first["rows"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    assert [p.name for p in tmp_path.iterdir()] == ["data"], "no temp folder left behind"

    other = replace(TINY, seed=5)
    assert generate_movielens(other, out)["reused"] is False  # another spec replaces it
    assert json.loads((out / MANIFEST_NAME).read_text())["spec"]["seed"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


KILLED_GENERATOR = """
import sys, time
from pathlib import Path
from cinematch_assets.sources import synthetic

out, ready = Path(sys.argv[1]), Path(sys.argv[2])

def stall(*args):
    ready.write_text("writing")
    time.sleep(600)

synthetic._Writer.write = stall
synthetic.generate_movielens(synthetic.SyntheticSpec.from_variant("synthetic-tiny"), out)
"""


def test_next_run_removes_the_temp_folder_of_a_killed_run(tmp_path: Path) -> None:
    out, ready = tmp_path / "data", tmp_path / "ready"
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_GENERATOR, str(out), str(ready)],
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while not ready.exists():
        assert writer.poll() is None, writer.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "the generator never started writing"
        time.sleep(0.1)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    leftovers = [p.name for p in tmp_path.iterdir() if "synthetic-tmp" in p.name]
    assert leftovers and leftovers[0].startswith(f".data.synthetic-tmp-{writer.pid}@")

    # A temp folder of a live writer (this process) is left alone.
    live = tmp_path / (temp_prefix("data.synthetic-tmp") + "live")
    live.mkdir()
    summary = generate_movielens(TINY, out)
    assert summary["reused"] is False and (out / MANIFEST_NAME).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data", "ready", live.name])


def test_refuses_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_movielens(TINY, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic._Writer, "write", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_movielens(TINY, tmp_path / "data")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- specs & CLI


def test_presets_and_scaled_names() -> None:
    assert SyntheticSpec.from_variant("synthetic-tiny") == TINY
    assert (TINY.n_users, TINY.n_movies, TINY.n_ratings) == (100, 400, 5_000)
    big = SyntheticSpec.from_variant("synthetic-33m")
    assert (big.n_users, big.n_movies, big.n_ratings) == (330_000, 86_000, 33_000_000)
    one = SyntheticSpec.from_variant("synthetic-1m")
    assert one == SYNTHETIC_PRESETS["synthetic-1m"] == scaled_spec(1_000_000)
    assert one.n_users == 10_000 and 15_000 < one.n_movies < 30_000
    spec = SyntheticSpec.from_variant("synthetic-250k", seed=9)
    assert (spec.n_ratings, spec.n_users, spec.seed) == (250_000, 2_500, 9)
    assert SyntheticSpec.from_variant("synthetic-5m").n_ratings == 5_000_000
    with pytest.raises(ValueError, match="unknown variant"):
        SyntheticSpec.from_variant("ml-latest")
    with pytest.raises(ValueError):
        SyntheticSpec(n_users=10, n_movies=10, n_ratings=100, min_ratings_per_user=50)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["--users", "50", "--movies", "200", "--ratings", "1000", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["spec"]["n_users"] == 50 and printed["rows"]["ratings"] > 900
    assert "elapsed_s" in printed and (out / "ratings.csv").is_file()
    assert main(["--variant", "synthetic-tiny", "--seed", "3", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["spec"]["seed"] == 3

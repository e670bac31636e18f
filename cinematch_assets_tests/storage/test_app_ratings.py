"""The app's ratings table: accounts with hashed keys, saves checked before anything is
written, the latest rating winning, and concurrent or killed writers."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

from cinematch_assets.storage import app_ratings as store
from cinematch_assets.storage.app_ratings import APP_USERS_FROM, RatingRefused
from cinematch_assets.storage.delta_reader import read_delta

MOVIES = set(range(1, 1_001))


def save(home: Path, user: int, key: str, ratings: dict) -> int:
    return store.save_ratings(home, user, key, ratings, MOVIES, session="s", serving_version="v1")


def rows(home: Path) -> list[dict]:
    return read_delta(store.ratings_path(home)).to_pylist()


def test_accounts_count_up_from_a_billion_and_keep_only_a_hash_of_the_key(tmp_path):
    (first, key), (second, _) = store.create_account(tmp_path), store.create_account(tmp_path)
    assert (first, second) == (APP_USERS_FROM, APP_USERS_FROM + 1)
    stored = b"".join(
        p.read_bytes() for p in store.accounts_path(tmp_path).rglob("*") if p.is_file()
    )
    assert key.encode() not in stored
    store.check_key(tmp_path, first, key)
    for user, wrong, message in [
        (first, "guess", "wrong or missing key for user 1000000000"),
        (first, None, "wrong or missing key"),
        (second, key, "wrong or missing key for user 1000000001"),
        (APP_USERS_FROM + 7, key, "wrong or missing key"),
        (510, key, "user 510 is one of the release's users: their ratings are read-only"),
    ]:
        with pytest.raises(RatingRefused, match=message):
            store.check_key(tmp_path, user, wrong)


def test_the_latest_rating_wins_and_a_removed_one_is_gone(tmp_path):
    user, key = store.create_account(tmp_path)
    assert save(tmp_path, user, key, {1: 4.5, 2: 2.0, 3: 5.0}) == 3
    save(tmp_path, user, key, {2: 3.5})
    save(tmp_path, user, key, {3: None})
    assert store.saved_ratings(tmp_path, user, key) == {1: 4.5, 2: 3.5}
    # The table is the log: every save is there, the removal as a null.
    log = sorted(rows(tmp_path), key=lambda r: r["rated_at"])
    assert [(r["movieId"], r["rating"]) for r in log][-2:] == [(2, 3.5), (3, None)]
    assert {r["serving_version"] for r in rows(tmp_path)} == {"v1"}


@pytest.mark.parametrize(
    ("ratings", "message"),
    [
        ({1: 4.0, 5_000: 3.0, 7_000: 1.0}, "unknown movies: 5000, 7000"),
        ({1: 4.2}, r"stars go in halves from 0.5 to 5.0: not so for movies 1"),
        ({1: 0.0, 2: 5.5}, "not so for movies 1, 2"),
        ({}, "nothing to save"),
        ({m: 3.0 for m in range(1, 502)}, "at most 500 ratings in one save"),
    ],
)
def test_a_refused_save_writes_nothing_and_says_why(tmp_path, ratings, message):
    user, key = store.create_account(tmp_path)
    save(tmp_path, user, key, {9: 3.0})
    before = DeltaTable(str(store.ratings_path(tmp_path))).version()
    with pytest.raises(RatingRefused, match=message):
        save(tmp_path, user, key, ratings)
    with pytest.raises(RatingRefused, match="wrong or missing key"):
        save(tmp_path, user, "not the key", {1: 4.0})
    assert DeltaTable(str(store.ratings_path(tmp_path))).version() == before


SAVER = """
import sys
from pathlib import Path
from cinematch_assets.storage import app_ratings as store
home, user, key, count = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
for movie in range(1, count + 1):
    store.save_ratings(home, user, key, {movie: 4.0}, range(1, 10**6), session="p",
                       serving_version=None)
    print(movie, flush=True)
"""


def savers(home: Path, processes: int, count: int) -> list[subprocess.Popen]:
    accounts = [store.create_account(home) for _ in range(processes)]
    return [
        subprocess.Popen(
            [sys.executable, "-c", SAVER, str(home), str(user), key, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for user, key in accounts
    ]


@pytest.mark.parametrize("count", [pytest.param(200, marks=pytest.mark.slow), 25])
def test_processes_saving_at_once_lose_and_duplicate_nothing(tmp_path, count):
    """8 app processes, each saving `count` ratings one commit at a time."""
    running = savers(tmp_path, 8, count)
    for process in running:
        _, errors = process.communicate(timeout=600)
        assert process.returncode == 0, errors
    saved = rows(tmp_path)
    assert len(saved) == 8 * count
    assert len({(r["userId"], r["movieId"]) for r in saved}) == 8 * count


def test_a_writer_killed_mid_save_leaves_each_rating_there_once_or_not_at_all(tmp_path):
    (process,) = savers(tmp_path, 1, 10_000)
    assert process.stdout.readline().strip() == "1"  # started: the next saves are under way
    time.sleep(1.5)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    done = [int(line) for line in process.stdout.read().split()]
    confirmed = 1 + len(done)  # the saves the writer returned from
    movies = [r["movieId"] for r in rows(tmp_path)]
    assert len(movies) == len(set(movies))
    # Every confirmed save is there; the one in flight is there once or not at all.
    assert sorted(movies)[:confirmed] == list(range(1, confirmed + 1))
    assert len(movies) in (confirmed, confirmed + 1)

"""The app's own events: the ratings visitors save, and the visitors' accounts, as Delta
tables the app writes with delta-rs (no Spark in the app) and the pipeline reads as a
source beside the MovieLens release.

    $CINEMATCH_HOME/lake/app/ratings    userId, movieId, rating, rated_at (UTC), session,
                                        serving_version: one row per saved rating; a
                                        removed rating is a row whose rating is null
    $CINEMATCH_HOME/lake/app/accounts   userId, key_sha256, created_at

The ratings table is a log: a change is a new row and the latest row of a (user, movie)
wins, so nothing is rewritten and a removal reaches the next run as a null. Each save is
one commit, atomic: a writer that dies mid-save leaves a data file no commit names, and
the table reads as it was. Writers on one host take a lock first: delta-rs retries a
commit that lost a race only so often, and 8 processes saving at once exhausted it.

Reads go through `delta_reader.read_delta` (deltalake's own Arrow readers can abort the
process at exit). A visitor's account is a user id from `APP_USERS_FROM` up (MovieLens
numbers its users from 1 and stays far below) and a random key, of which only a SHA-256
is stored: a key is 144 random bits, so a fast hash is as strong as a slow one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Container, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from cinematch_assets import keys
from cinematch_assets.conventions import MAX_RATING, MIN_RATING
from cinematch_assets.storage.atomic_files import exclusive_lock
from cinematch_assets.storage.delta_reader import read_delta

APP_USERS_FROM = 1_000_000_000
MAX_RATINGS_PER_SAVE = 500
INT32_MAX = 2**31 - 1

RATINGS_SCHEMA = pa.schema([
    ("userId", pa.int64()),
    ("movieId", pa.int64()),
    ("rating", pa.float64()),  # null: the rating was removed
    ("rated_at", pa.timestamp("us", tz="UTC")),
    ("session", pa.string()),
    ("serving_version", pa.string()),
])  # fmt: skip
ACCOUNTS_SCHEMA = pa.schema([
    ("userId", pa.int64()),
    ("key_sha256", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
])  # fmt: skip


class RatingRefused(ValueError):
    """A save or a read that is refused; the message says why, for the visitor."""


def ratings_path(home: Path) -> Path:
    """The table of the asset `app/ratings` (the lake keeps a table at its key's path)."""
    return home.joinpath("lake", *keys.APP_RATINGS)


def accounts_path(home: Path) -> Path:
    return ratings_path(home).with_name("accounts")


def write_lock(table: Path) -> Path:
    """The lock every writer of `table` on this host holds while it commits."""
    return table.parent / f".{table.name}.lock"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_tables(home: Path) -> None:
    """Create both tables empty when missing (the product run does; so does a first save)."""
    for table, schema in (
        (ratings_path(home), RATINGS_SCHEMA),
        (accounts_path(home), ACCOUNTS_SCHEMA),
    ):
        with exclusive_lock(write_lock(table)):
            if not DeltaTable.is_deltatable(str(table)):
                write_deltalake(str(table), schema.empty_table(), mode="append")


def create_account(home: Path) -> tuple[int, str]:
    """A new app user: (user id, secret key). The key is shown once; only its hash stays."""
    ensure_tables(home)
    table, key = accounts_path(home), secrets.token_urlsafe(18)
    with exclusive_lock(write_lock(table)):
        ids = read_delta(table, columns=["userId"]).column("userId")
        user_id = max(APP_USERS_FROM - 1, pc.max(ids).as_py() or 0) + 1
        row = {"userId": [user_id], "key_sha256": [_hash(key)], "created_at": [_now()]}
        write_deltalake(str(table), pa.table(row, schema=ACCOUNTS_SCHEMA), mode="append")
    return user_id, key


def check_key(home: Path, user_id: int, key: str | None) -> None:
    """Refuse unless `key` is the key of app user `user_id`."""
    if user_id < APP_USERS_FROM:
        raise RatingRefused(
            f"user {user_id} is one of the release's users: their ratings are read-only"
        )
    stored = None
    if DeltaTable.is_deltatable(str(accounts_path(home))):
        found = _of_user(read_delta(accounts_path(home), columns=["userId", "key_sha256"]), user_id)
        stored = found.column("key_sha256")[0].as_py() if found.num_rows else None
    if not key or stored is None or not hmac.compare_digest(stored, _hash(key)):
        raise RatingRefused(f"wrong or missing key for user {user_id}: open your own link")


def check_ratings(ratings: Mapping[int, float | None], movies: Container[int]) -> None:
    """Refuse unknown movies, stars off the half-star grid and oversized saves; None (a
    removal) is allowed."""
    if not ratings:
        raise RatingRefused("nothing to save")
    if len(ratings) > MAX_RATINGS_PER_SAVE:
        raise RatingRefused(f"at most {MAX_RATINGS_PER_SAVE} ratings in one save")
    if unknown := sorted(m for m in ratings if m not in movies):
        raise RatingRefused(f"unknown movies: {', '.join(map(str, unknown))}")
    off_grid = sorted(
        m for m, s in ratings.items()
        if s is not None and not (MIN_RATING <= s <= MAX_RATING and float(s * 2).is_integer())
    )  # fmt: skip
    if off_grid:
        raise RatingRefused(
            f"stars go in halves from {MIN_RATING} to {MAX_RATING}: not so for movies "
            f"{', '.join(map(str, off_grid))}"
        )


def save_ratings(
    home: Path,
    user_id: int,
    key: str | None,
    ratings: Mapping[int, float | None],
    movies: Container[int],
    *,
    session: str,
    serving_version: str | None,
) -> int:
    """Append `ratings` (movieId -> stars, None to remove) of app user `user_id` in one
    commit, after checking the key and every rating (nothing is written when one is
    refused). Returns the rows written."""
    check_key(home, user_id, key)
    check_ratings(ratings, movies)
    now = _now()
    rows = pa.table(
        {
            "userId": [user_id] * len(ratings),
            "movieId": list(ratings),
            "rating": [None if s is None else float(s) for s in ratings.values()],
            "rated_at": [now] * len(ratings),
            "session": [session] * len(ratings),
            "serving_version": [serving_version] * len(ratings),
        },
        schema=RATINGS_SCHEMA,
    )
    table = ratings_path(home)
    ensure_tables(home)
    with exclusive_lock(write_lock(table)):
        write_deltalake(str(table), rows, mode="append")
    return rows.num_rows


def saved_ratings(home: Path, user_id: int, key: str | None) -> dict[int, float]:
    """App user `user_id`'s ratings as they stand: the latest row per movie, removals
    left out."""
    check_key(home, user_id, key)
    if not DeltaTable.is_deltatable(str(ratings_path(home))):
        return {}
    rows = _of_user(read_delta(ratings_path(home), columns=LATEST_COLUMNS), user_id)
    standing = latest_ratings(rows).get(user_id, {})
    return {movie: stars for movie, (stars, _) in sorted(standing.items())}


LATEST_COLUMNS = ["userId", "movieId", "rating", "rated_at"]


def latest_ratings(rows: pa.Table) -> dict[int, dict[int, tuple[float, datetime]]]:
    """Each user's ratings as they stand in `rows` (of the ratings table): movieId ->
    (stars, rated_at) from the latest row of each (user, movie), removals left out."""
    latest: dict[int, dict[int, tuple[float | None, datetime]]] = {}
    for user, movie, stars, at in zip(
        *(rows.column(c).to_pylist() for c in LATEST_COLUMNS), strict=True
    ):
        mine = latest.setdefault(user, {})
        if movie not in mine or at >= mine[movie][1]:
            mine[movie] = (stars, at)
    return {
        user: {m: (s, at) for m, (s, at) in movies.items() if s is not None}
        for user, movies in latest.items()
    }


def standing_counts(home: Path) -> tuple[int, int]:
    """(ratings that stand, visitors with any) in the app ratings table now."""
    if not DeltaTable.is_deltatable(str(ratings_path(home))):
        return 0, 0
    standing = latest_ratings(servable(read_delta(ratings_path(home), columns=LATEST_COLUMNS)))
    return sum(map(len, standing.values())), sum(1 for movies in standing.values() if movies)


def servable(rows: pa.Table) -> pa.Table:
    """The rows a list can be built from: an app user, a movie and a time, every id in 32
    bits (the rest Bronze quarantines, with the reason, at the next product run)."""
    user, movie, at = (rows.column(c) for c in ("userId", "movieId", "rated_at"))
    keep = pc.and_(
        pc.and_(pc.greater_equal(user, APP_USERS_FROM), pc.less_equal(user, INT32_MAX)),
        pc.and_(pc.less_equal(movie, INT32_MAX), pc.is_valid(at)),
    )
    return rows.filter(pc.fill_null(keep, False))


def _of_user(table: pa.Table, user_id: int) -> pa.Table:
    return table.filter(pc.equal(table.column("userId"), user_id))


def _now() -> datetime:
    return datetime.now(UTC)


def top_rated(latest: Mapping[int, Mapping[int, tuple[float, datetime]]], size: int) -> pa.Table:
    """Each user's `size` highest-rated movies in `latest` (`latest_ratings`), latest
    first among equal stars: userId, rank, movieId, rating, rated_at, as the served
    user profiles hold them."""
    rows: dict[str, list] = {c: [] for c in ("userId", "rank", "movieId", "rating", "rated_at")}
    for user, movies in sorted(latest.items()):
        best = sorted(movies.items(), key=lambda m: (-m[1][0], -m[1][1].timestamp(), m[0]))
        for rank, (movie, (stars, at)) in enumerate(best[:size], start=1):
            for column, value in zip(rows, (user, rank, movie, stars, at), strict=True):
                rows[column].append(value)
    return pa.table(
        rows,
        schema=pa.schema([
            ("userId", pa.int64()), ("rank", pa.int32()), ("movieId", pa.int64()),
            ("rating", pa.float64()), ("rated_at", pa.timestamp("us", tz="UTC")),
        ]),
    )  # fmt: skip

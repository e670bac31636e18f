"""The serving artifacts on disk: where each file lives and how it is written. No Spark, so
the app reads through the same layout the serving assets write.

    $CINEMATCH_HOME/serving/
      recommendations/manifest.json        {"version", "shards", "users", "n", "created",
                                            "updated" (visitors' lists), ...}
      recommendations/<version>/part-00000.json   {"<userId>": [{"movieId", "pred_rating",
                                                    "score", "reason"}, ...], ...}: the
                                                    top-n, then the "New for you" row,
                                                    its entries marked "row": "new_for_you"
      recommendations/<version>/part-00000.rated.npy  each user's ratings: what their list
                                                    leaves out, and what a re-ranked list
                                                    starts from
      recommendations/<version>/part-00000.index.npy  where each user's list and ratings lie
      movie_catalog.parquet                one row per movie (title, year, genres, ids, stats)
      user_profiles.parquet                each user's highest-rated movies
      app_user_profiles.parquet            the same for the app's visitors, from the
                                           ratings they saved (read over the above)
      model_factors.npz                    both models' movie side (`ml.lists.ModelItems`):
                                           what new users' lists are built from

Every file is written to a temporary name beside its target, flushed and renamed into
place, so a reader sees the old file or the new one, never half of one. The
recommendations are a directory per version: all shards are written first, then the
manifest is swapped to point at them; the previous version stays until the next publish,
so an app that read the old manifest a moment ago can still open its shards. Between
product runs, the app's visitors are folded in: a new version is the published one with
their lists replaced (`publish_changed_lists`), its other shards linked, not copied.

Runs may overlap (Dagster runs assets of two runs at once; `make materialize` runs outside
any queue). A run holds a lock on its version folder from creation to publication
(`new_version`), and publishing (serialized by a lock of its own) removes only versions
that are neither the new one, nor the one it replaces, nor held by a live writer. A writer
that dies releases its lock with its process, so its folder goes at the next publish. A
manifest that cannot be read (a crash or a full disk during a write elsewhere) is simply
replaced by the next publish.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import uuid
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cinematch_assets.storage.atomic_files import exclusive_lock, write_atomic

# The manifest's record of the app ratings table's Delta version its lists take in.
APP_RATINGS_VERSION = "app_ratings_version"
# What marks an entry of the "New for you" row in a user's served entries.
NEW_FOR_YOU = "new_for_you"
# Files per version stay few (118 at ML-33M's users); a lookup reads one user's bytes
# through the shard's index, whatever the shard's size.
USERS_PER_SHARD = 2_000


def serving_root(home: Path) -> Path:
    return home / "serving"


def recommendations_dir(home: Path) -> Path:
    return serving_root(home) / "recommendations"


def manifest_path(home: Path) -> Path:
    return recommendations_dir(home) / "manifest.json"


def catalog_path(home: Path) -> Path:
    return serving_root(home) / "movie_catalog.parquet"


def profiles_path(home: Path) -> Path:
    return serving_root(home) / "user_profiles.parquet"


def app_profiles_path(home: Path) -> Path:
    return serving_root(home) / "app_user_profiles.parquet"


def factors_path(home: Path) -> Path:
    return serving_root(home) / "model_factors.npz"


# The asset that writes each file, for messages that say how to rebuild it.
WRITTEN_BY = {
    "movie_catalog.parquet": "serving/movie_catalog",
    "user_profiles.parquet": "serving/user_profiles",
    "model_factors.npz": "serving/model_factors",
    "app_user_profiles.parquet": "serving/app_user_lists",
}


def written_by(path: Path) -> str:
    """The asset that writes a serving file (the manifest and shards: the JSON export)."""
    return WRITTEN_BY.get(Path(path).name, "serving/recommendations_json")


def shard_count(users: int) -> int:
    return max(1, -(-users // USERS_PER_SHARD))


def shard_of(user_id: int, shards: int) -> int:
    return user_id % shards


def shard_name(shard: int) -> str:
    return f"part-{shard:05d}.json"


def shard_path(home: Path, manifest: dict[str, Any], user_id: int) -> Path:
    """The file holding `user_id`'s list under the version `manifest` names."""
    return (
        recommendations_dir(home)
        / manifest["version"]
        / shard_name(shard_of(user_id, manifest["shards"]))
    )


def index_name(shard: int) -> str:
    return f"part-{shard:05d}.index.npy"


def index_path(shard_file: Path) -> Path:
    """The index beside a shard file."""
    return shard_file.with_name(shard_file.name.removesuffix(".json") + ".index.npy")


def rated_name(shard: int) -> str:
    return f"part-{shard:05d}.rated.npy"


def rated_path(shard_file: Path) -> Path:
    """The ratings file beside a shard file."""
    return shard_file.with_name(shard_file.name.removesuffix(".json") + ".rated.npy")


# A rating as the served files keep it: 5 bytes (the stars are on the half-star grid).
RATED_DTYPE = np.dtype([("movieId", "<i4"), ("half_stars", "u1")])
# The index's columns: the user, where their list lies in the JSON shard (byte offset and
# length) and where their ratings lie in the ratings file (first row and count).
INDEX_COLUMNS = 5


@dataclass(frozen=True)
class Ratings:
    """Users' ratings as flat arrays (user, movie, stars), grouped by user in ascending
    order: what each user's served list left out, and what a re-ranked list starts from."""

    users: np.ndarray
    movies: np.ndarray
    stars: np.ndarray

    @classmethod
    def of(cls, ratings: Mapping[int, Mapping[int, float]]) -> Ratings:
        """From user -> {movieId: stars}."""
        users = sorted(ratings)
        counts = [len(ratings[u]) for u in users]
        return cls(
            np.repeat(np.asarray(users, np.int64), counts),
            np.fromiter((m for u in users for m in ratings[u]), np.int64, sum(counts)),
            np.fromiter((s for u in users for s in ratings[u].values()), np.float64, sum(counts)),
        )

    def grouped(self) -> Ratings:
        """The same ratings grouped by user (each user's by movie)."""
        order = np.lexsort((self.movies, self.users))
        return Ratings(self.users[order], self.movies[order], self.stars[order])

    def without(self, users: Collection[int]) -> Ratings:
        keep = ~np.isin(self.users, np.fromiter(users, np.int64, len(users)))
        return Ratings(self.users[keep], self.movies[keep], self.stars[keep])

    def plus(self, other: Ratings) -> Ratings:
        """These ratings and `other`'s, grouped by user."""
        return Ratings(
            np.concatenate([self.users, other.users]),
            np.concatenate([self.movies, other.movies]),
            np.concatenate([self.stars, other.stars]),
        ).grouped()


NO_RATINGS = Ratings(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))


def write_json_shard(
    directory: Path,
    shard: int,
    lists: dict[str, list[dict[str, Any]]],
    rated: Ratings = NO_RATINGS,
) -> int:
    """One shard file (user id -> ordered list), the ratings of its users (`rated`,
    grouped by user; those of users without a list are left out) and its index; returns
    the shard's size in bytes. The shard is one JSON object, a user per line in ascending
    id order; the index holds, per user, where their list and their ratings lie, so a
    reader parses one list, not the shard (`read_user_list`, `read_user_ratings`)."""
    users = sorted(lists, key=int)
    lines, index, at = [b"{\n"], np.zeros((len(users), INDEX_COLUMNS), dtype=np.int64), 2
    for row, user in enumerate(users):
        key = json.dumps(str(user)).encode() + b": "
        value = json.dumps(lists[user], ensure_ascii=False).encode()
        index[row, :3] = int(user), at + len(key), len(value)
        lines.append(key + value + (b",\n" if row < len(users) - 1 else b"\n"))
        at += len(lines[-1])
    lines.append(b"}\n")
    listed = np.isin(rated.users, index[:, 0])
    kept_users = rated.users[listed]
    starts = np.searchsorted(kept_users, index[:, 0])
    index[:, 3], index[:, 4] = starts, np.searchsorted(kept_users, index[:, 0], "right") - starts
    ratings = np.empty(len(kept_users), RATED_DTYPE)
    ratings["movieId"] = rated.movies[listed]
    ratings["half_stars"] = np.rint(rated.stars[listed] * 2)
    target = write_atomic(directory / shard_name(shard), b"".join(lines))
    write_atomic(directory / rated_name(shard), _npy(ratings))
    write_atomic(directory / index_name(shard), _npy(index))
    return target.stat().st_size


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def split_rows(entries: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """A user's served entries as (the top-n, the "New for you" row)."""
    top = [entry for entry in entries if entry.get("row") != NEW_FOR_YOU]
    return top, [entry for entry in entries if entry.get("row") == NEW_FOR_YOU]


def read_shard_index(path: Path) -> np.ndarray:
    """A shard's index: rows sorted by userId (`INDEX_COLUMNS`)."""
    index = np.load(path, allow_pickle=False)
    if index.ndim != 2 or index.shape[1] != INDEX_COLUMNS or index.dtype != np.int64:
        raise ValueError(
            f"not a shard index of this version: {index.dtype} {index.shape} (the served "
            "lists were written by an older CineMatch)"
        )
    return index


def read_user_list(
    shard_file: Path, index: np.ndarray, user_id: int
) -> list[dict[str, Any]] | None:
    """One user's list from a shard through its index (None: not in the shard)."""
    row = int(np.searchsorted(index[:, 0], user_id))
    if row == len(index) or index[row, 0] != user_id:
        return None
    offset, length = int(index[row, 1]), int(index[row, 2])
    with open(shard_file, "rb") as f:
        data = os.pread(f.fileno(), length, offset)
    if len(data) != length:
        raise ValueError(f"the shard ends before user {user_id}'s list")
    entries = json.loads(data)
    if not isinstance(entries, list):
        raise ValueError(f"user {user_id}'s entry is not a list")
    return entries


def read_user_ratings(shard_file: Path, index: np.ndarray, user_id: int) -> dict[int, float] | None:
    """One user's ratings (movieId -> stars) from beside a shard through its index (None:
    not in the shard)."""
    row = int(np.searchsorted(index[:, 0], user_id))
    if row == len(index) or index[row, 0] != user_id:
        return None
    start, count = int(index[row, 3]), int(index[row, 4])
    ratings = np.load(rated_path(shard_file), mmap_mode="r", allow_pickle=False)
    if ratings.dtype != RATED_DTYPE or len(ratings) < start + count:
        raise ValueError(f"the ratings beside {shard_file.name} do not match its index")
    mine = np.array(ratings[start : start + count])
    return dict(zip(mine["movieId"].tolist(), (mine["half_stars"] / 2).tolist(), strict=True))


def read_shard(shard_file: Path) -> tuple[dict[str, list[dict[str, Any]]], Ratings]:
    """A whole shard: its lists and its users' ratings."""
    lists = json.loads(shard_file.read_bytes())
    index = read_shard_index(index_path(shard_file))
    ratings = np.load(rated_path(shard_file), allow_pickle=False)
    users = np.repeat(index[:, 0], index[:, 4])
    if ratings.dtype != RATED_DTYPE or len(ratings) != len(users):
        raise ValueError(f"the ratings beside {shard_file.name} do not match its index")
    return lists, Ratings(users, ratings["movieId"].astype(np.int64), ratings["half_stars"] / 2)


def _writing_marker(directory: Path, version: str) -> Path:
    return directory / f".{version}.writing"


@contextmanager
def new_version(home: Path) -> Iterator[tuple[str, Path]]:
    """A new, empty version folder for one run's shards: (version, folder). This process
    holds it until the block ends, so no publish removes it meanwhile; publish inside
    the block."""
    directory = recommendations_dir(home)
    directory.mkdir(parents=True, exist_ok=True)
    version = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    marker = _writing_marker(directory, version)
    handle = marker.open("a")
    # Held before the folder exists: a publish only looks at markers of existing folders.
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        (directory / version).mkdir()
        yield version, directory / version
    finally:
        marker.unlink(missing_ok=True)
        handle.close()


def _held_by_a_writer(directory: Path, version: str) -> bool:
    """True while a live process holds `version` (see `new_version`)."""
    marker = _writing_marker(directory, version)
    try:
        handle = marker.open("r")
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        # Its writer is gone: the folder will be removed, and the marker with it.
        marker.unlink(missing_ok=True)
        return False


def read_manifest(home: Path) -> dict[str, Any] | None:
    """The published manifest; None when there is no readable one."""
    try:
        manifest = json.loads(manifest_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(manifest, dict) and isinstance(manifest.get("version"), str)
    return manifest if ok else None


def published_version(home: Path) -> str | None:
    """The version the manifest names; None when there is no readable manifest."""
    manifest = read_manifest(home)
    return manifest["version"] if manifest else None


def publish_recommendations(home: Path, version: str, manifest: dict[str, Any]) -> Path:
    """Point the manifest at `version` (its shards already written), then remove every
    version but this one, the one it replaces and those other runs are still writing."""
    with exclusive_lock(recommendations_dir(home) / ".publish.lock"):
        return _publish(home, version, manifest)


def _publish(home: Path, version: str, manifest: dict[str, Any]) -> Path:
    """`publish_recommendations` once its caller holds the publish lock."""
    directory = recommendations_dir(home)
    path = manifest_path(home)
    previous = published_version(home)
    write_atomic(path, json.dumps({**manifest, "version": version}))
    for old in directory.iterdir():
        if (
            old.is_dir()
            and old.name not in {version, previous}
            and not _held_by_a_writer(directory, old.name)
        ):
            shutil.rmtree(old, ignore_errors=True)
    return path


class PublishedMeanwhile(RuntimeError):
    """Another version was published since the one a change was made against."""


class ListedUsers:
    """Which users have a list in the version `manifest` names (shard indexes read once)."""

    def __init__(self, home: Path, manifest: dict[str, Any]) -> None:
        self.home, self.manifest = home, manifest
        self._indexes: dict[int, np.ndarray] = {}

    def __contains__(self, user_id: object) -> bool:
        if not isinstance(user_id, int | np.integer):
            return False
        user_id = int(user_id)
        shard = shard_of(user_id, int(self.manifest["shards"]))
        if shard not in self._indexes:
            index = index_path(shard_path(self.home, self.manifest, user_id))
            self._indexes[shard] = (
                read_shard_index(index) if index.exists() else np.zeros((0, INDEX_COLUMNS))
            )
        users = self._indexes[shard][:, 0]
        row = int(np.searchsorted(users, user_id))
        return row < len(users) and users[row] == user_id


def publish_changed_lists(
    home: Path,
    lists: dict[int, list[dict[str, Any]] | None],
    fields: dict[str, Any],
    *,
    base: str,
    rated: Mapping[int, Mapping[int, float]] | None = None,
) -> dict[str, Any]:
    """Publish the published version with `lists` (user id -> new list; None: no list)
    in place of those users' lists, with their ratings (`rated`: user -> {movieId:
    stars}; none when not given), and `fields` added to its manifest (with the time,
    `updated`); returns the new manifest. The shards no user of `lists` falls in are
    hard links to the published ones (their files are never rewritten in place, only
    replaced), so this costs the changed shards, not the whole set. `base` is the
    version the lists were made against: when another was published since, nothing is
    (`PublishedMeanwhile`). Holds the publish lock from reading the published version
    to the swap, so a product run publishing meanwhile is never undone."""
    directory = recommendations_dir(home)
    directory.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(directory / ".publish.lock"):
        published = read_manifest(home)
        if published is None or published["version"] != base:
            now = published["version"] if published else "nothing"
            raise PublishedMeanwhile(f"{now} was published since {base}")
        shards, users = int(published["shards"]), int(published["users"])
        by_shard: dict[int, dict[int, list | None]] = {}
        for user, entries in lists.items():
            by_shard.setdefault(shard_of(user, shards), {})[user] = entries
        with new_version(home) as (version, folder):
            for shard in range(shards):
                old = directory / base / shard_name(shard)
                if shard not in by_shard:
                    for name in (shard_name(shard), rated_name(shard), index_name(shard)):
                        _link_or_copy(old.with_name(name), folder / name)
                    continue
                shard_lists, ratings = read_shard(old) if old.exists() else ({}, NO_RATINGS)
                before = len(shard_lists)
                for user, entries in by_shard[shard].items():
                    if entries is None:
                        shard_lists.pop(str(user), None)
                    else:
                        shard_lists[str(user)] = entries
                changed = by_shard[shard]
                given = {user: (rated or {}).get(user, {}) for user in changed}
                ratings = ratings.without(changed).plus(Ratings.of(given))
                users += len(shard_lists) - before
                write_json_shard(folder, shard, shard_lists, ratings)
            updated = datetime.now(UTC).isoformat(timespec="seconds")
            manifest = {**published, **fields, "users": users, "updated": updated}
            _publish(home, version, manifest)
    return {**manifest, "version": version}


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, target)

"""The users the pipeline served: their published lists (the manifest and its JSON
shards, followed to a newer version when one replaces them), the ratings each list leaves
out, their favourite movies, and a list as it is shown (re-ranked for more discovery,
filtered by genre)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cinematch_assets.conventions import SHOWN
from cinematch_assets.ml.arrays import position_of
from cinematch_assets.ml.lists.build import ModelItems
from cinematch_assets.serving.catalog import Catalog, with_genres
from cinematch_assets.serving.loading import LOADED, file_stamp, reading
from cinematch_assets.storage import serving_files as files
from cinematch_assets.storage.app_ratings import APP_USERS_FROM, INT32_MAX

T = TypeVar("T")


def parse_user_id(text: str | None) -> tuple[int | None, str | None]:
    """(user id, None) or (None, what is wrong with `text`) for a typed user id."""
    text = (text or "").strip()
    if not text:
        return None, "Enter a user id to see their recommendations."
    # Not echoed: the text may come from a crafted link (?user=...).
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None, "That is not a user id: ids are whole numbers, such as 510."
    if text.startswith("-") or not text.strip("+0"):
        return None, "That is not a user id: ids start at 1."
    if len(text.lstrip("+0")) > len(str(INT32_MAX)) or int(text) > INT32_MAX:
        return None, f"That is not a user id: ids go up to {INT32_MAX:,}."
    return int(text), None


@dataclass(frozen=True)
class Recommendations:
    """The precomputed lists: a manifest naming the version and its JSON shards."""

    home: Path
    manifest: dict[str, Any]

    @classmethod
    def load(cls, home: Path) -> Recommendations:
        path = files.manifest_path(home)
        with reading("The list of every user's recommendations", path):
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if not (
                isinstance(manifest, dict)
                and isinstance(manifest.get("version"), str)
                and isinstance(manifest.get("shards"), int)
                and manifest["shards"] > 0
                and isinstance(manifest.get("users"), int)
            ):
                raise ValueError(f"not a manifest: {str(manifest)[:200]}")
        return cls(home, manifest)

    @property
    def users(self) -> int:
        return int(self.manifest["users"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def lookup(self, user_id: int) -> list[dict[str, Any]] | None:
        """The user's ordered list, or None when the models do not know the user."""
        return self.find(user_id)[1]

    def find(self, user_id: int) -> tuple[str, list[dict[str, Any]] | None]:
        """(the version read, the user's list or None). A version replaced since the
        manifest was read is followed to the new one, which the answer then names."""
        return self._read(user_id, "recommendations", files.read_user_list)

    def ratings(self, user_id: int) -> dict[int, float] | None:
        """The user's ratings (movieId -> stars) that their served list leaves out: all
        of them, what a re-ranked list starts from. None when the user is not served."""
        return self._read(user_id, "ratings", files.read_user_ratings)[1]

    def _read(self, user_id: int, what: str, read: Callable[[Path, np.ndarray, int], T]):
        shard = files.shard_path(self.home, self.manifest, user_id)
        if not shard.exists():
            newer = Recommendations.load(self.home)
            if newer.version != self.version:
                return newer._read(user_id, what, read)
        with reading(f"The {what} of user {user_id}", shard):
            index_file = files.index_path(shard)
            index = load_shard_index(str(index_file), *file_stamp(index_file))
            return self.version, read(shard, index, user_id)


@lru_cache(maxsize=1024)
def load_shard_index(path: str, mtime_ns: int, size: int) -> np.ndarray:
    """A shard's index (48 KB a shard); the modification time and size in the key drop a
    replaced file."""
    return files.read_shard_index(Path(path))


def load_profiles(path: Path, app_path: Path | None = None) -> pd.DataFrame:
    """user_profiles.parquet indexed by userId; once `app_path` exists, the app's
    visitors' profiles come from it (the ratings they saved, as they stand now)."""
    columns = ["userId", "rank", "movieId", "rating"]
    profiles = pq.read_table(path, columns=columns).to_pandas()
    if app_path is not None and app_path.exists():
        visitors = pq.read_table(app_path, columns=columns).to_pandas()
        kept = profiles[profiles["userId"] < APP_USERS_FROM]
        profiles = pd.concat([kept, visitors.astype(kept.dtypes)], ignore_index=True)
    return profiles.set_index("userId")


def user_favourites(profiles: pd.DataFrame, user_id: int) -> pd.DataFrame:
    if user_id not in profiles.index:
        return profiles.iloc[0:0]
    return profiles.loc[[user_id]].sort_values("rank")


def with_discovery(
    items: ModelItems, entries: list[dict[str, Any]], discovery: float, n: int
) -> list[dict[str, Any]]:
    """A served list (best first, with scores) as the served order ranks it with
    `discovery` more popularity penalty: the score is linear in the penalty, so each entry
    moves by -discovery x its movie's popularity; the best n."""
    if not discovery:
        return entries[:n]
    # New movies keep their places: their scores are on another scale, and no
    # popularity to penalize.
    known = [e for e in entries if not e.get("new")]
    at = position_of(items.movie_ids, [int(e["movieId"]) for e in known])
    popularity = np.where(at >= 0, items.popularity[at.clip(0)], 0.0)
    moved = iter(sorted(
        ({**entry, "score": round(float(entry["score"]) - discovery * float(pop), 4)}
         for entry, pop in zip(known, popularity, strict=True)),
        key=lambda e: -e["score"],
    ))  # fmt: skip
    return [entry if entry.get("new") else next(moved) for entry in entries][:n]


def known_user_list(
    recommendations: Recommendations,
    catalog: Catalog,
    items: ModelItems | None,
    user_id: int,
    *,
    n: int = SHOWN,
    discovery: float = 0.0,
    genres: Sequence[str] = (),
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]] | None:
    """A known user's list as the app shows it, their "New for you" row, and the
    published version both come from: the served list re-ranked with `discovery` more
    popularity penalty (needs the models' movie side, `items`), only movies of `genres`,
    the best n; the row's movies of `genres`. None when the models do not know the user."""
    version, entries = recommendations.find(user_id)
    if entries is None:
        return None
    top, row = files.split_rows(entries)
    if items is not None:
        top = with_discovery(items, top, discovery, len(top))
    return version, with_genres(catalog, top, genres)[:n], with_genres(catalog, row, genres)


def open_profiles(home: Path) -> pd.DataFrame:
    path, app_path = files.profiles_path(home), files.app_profiles_path(home)
    with reading("The users' favourite movies", path):
        return LOADED.get([path, app_path], lambda: load_profiles(path, app_path))

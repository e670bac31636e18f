"""The serving artifacts on disk: where each file lives and how it is written. No Spark, so
the app reads through the same layout the serving assets write.

    $CINEMATCH_HOME/serving/
      recommendations/manifest.json        {"version", "shards", "users", "n", ...}
      recommendations/<version>/part-00000.json   {"<userId>": [{"movieId", "pred_rating",
                                                    "score", "reason"}, ...], ...}
      movie_catalog.parquet                one row per movie (title, year, genres, ids, stats)
      user_profiles.parquet                each user's highest-rated movies
      model_factors.npz                    what fold-in needs (item factors of both models)

Every file is written to a temporary name beside its target and renamed into place, so a
reader sees the old file or the new one, never half of one. The recommendations are a
directory per version: all shards are written first, then the manifest is swapped to point
at them; the previous version stays until the next write, so an app that read the old
manifest a moment ago can still open its shards.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# A shard's JSON parses in about 15 ms at this many users, so a lookup never waits for
# more than one small file, however many users there are.
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


def factors_path(home: Path) -> Path:
    return serving_root(home) / "model_factors.npz"


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


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside `target`; renamed onto `target` when the block succeeds,
    removed when it fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(temp, 0o644)  # mkstemp's 0600 would hide the file from an app run as another user
    try:
        yield Path(temp)
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def write_atomically(target: Path, write: Callable[[Path], object]) -> Path:
    with atomic_path(target) as temp:
        write(temp)
    return target


def write_json_shard(directory: Path, shard: int, lists: dict[str, list[dict[str, Any]]]) -> int:
    """One shard file (user id -> ordered list); returns its size in bytes."""
    target = directory / shard_name(shard)
    write_atomically(
        target,
        lambda temp: temp.write_text(json.dumps(lists, ensure_ascii=False), encoding="utf-8"),
    )
    return target.stat().st_size


def publish_recommendations(home: Path, version: str, manifest: dict[str, Any]) -> Path:
    """Point the manifest at `version` (its shards already written), then remove every
    version but this one and the one it replaces."""
    directory = recommendations_dir(home)
    path = manifest_path(home)
    previous = json.loads(path.read_text())["version"] if path.exists() else None
    published = json.dumps({**manifest, "version": version})
    write_atomically(path, lambda temp: temp.write_text(published))
    for old in directory.iterdir():
        if old.is_dir() and old.name not in {version, previous}:
            shutil.rmtree(old, ignore_errors=True)
    return path

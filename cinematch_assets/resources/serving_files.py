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
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from cinematch_assets.atomic_files import atomic_path, write_atomic

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


def write_json_shard(directory: Path, shard: int, lists: dict[str, list[dict[str, Any]]]) -> int:
    """One shard file (user id -> ordered list); returns its size in bytes."""
    target = write_atomic(directory / shard_name(shard), json.dumps(lists, ensure_ascii=False))
    return target.stat().st_size


def publish_recommendations(home: Path, version: str, manifest: dict[str, Any]) -> Path:
    """Point the manifest at `version` (its shards already written), then remove every
    version but this one and the one it replaces."""
    directory = recommendations_dir(home)
    path = manifest_path(home)
    previous = json.loads(path.read_text())["version"] if path.exists() else None
    write_atomic(path, json.dumps({**manifest, "version": version}))
    for old in directory.iterdir():
        if old.is_dir() and old.name not in {version, previous}:
            shutil.rmtree(old, ignore_errors=True)
    return path


def write_model_factors(
    home: Path,
    *,
    movie_ids: np.ndarray,
    ranking_items: np.ndarray,
    rating_items: np.ndarray,
    rating_item_bias: np.ndarray,
    rating_global_mean: float,
    rating_reg_param: float,
    rating_variant: str,
    rating_bias_damping: float,
    rating_nonnegative: bool,
    ranking_reg_param: float,
    ranking_alpha: float,
) -> dict[str, Any]:
    """model_factors.npz, what fold-in needs: both models' item factors and the rating
    model's movie biases, all aligned on `movie_ids`, and each model's settings. Returns
    the settings (the scalars written)."""
    arrays = {
        "movie_ids": movie_ids,
        "ranking_items": ranking_items,
        "rating_items": rating_items,
        "rating_item_bias": rating_item_bias,
        "rating_global_mean": np.float64(rating_global_mean),
        "rating_reg_param": np.float64(rating_reg_param),
        "rating_variant": np.str_(rating_variant),
        "rating_bias_damping": np.float64(rating_bias_damping),
        "rating_nonnegative": np.bool_(rating_nonnegative),
        "ranking_reg_param": np.float64(ranking_reg_param),
        "ranking_alpha": np.float64(ranking_alpha),
    }
    # A file object: given a path, np.savez would append ".npz" to the temporary name.
    with atomic_path(factors_path(home)) as temp, temp.open("wb") as out:
        np.savez(out, **arrays)
    return {key: value.item() for key, value in arrays.items() if np.ndim(value) == 0}

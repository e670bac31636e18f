"""`model_factors.npz` (its path: `storage.serving_files`): every model's movie side
(`ModelItems`) as one NumPy archive, what serving writes and what the app places new
users with.

Each array is a key of the archive; scalars are 0-d arrays. `ARRAY_KEYS` must be there;
EASE's weights (`ease_kept`, `ease_weights`) only when the served order ranks with EASE,
the movies' genres and everyone's genre shares (`taste_genres`, `taste_base`) when the
lists were made with them, the new movies (`new_*`) only when there are any to place,
and `new_audience` only when the content model cut each new movie's audience; the "New
for you" row (`new_row_*`: its size, title weight, each new movie's row audience and
freshness, and the title links as a sparse matrix's three arrays) only when the content
model made one. Reading checks
that the arrays agree with each other, so a damaged or mismatched file fails with a
clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from cinematch_assets.ml.lists.build import (
    EaseItems,
    GenreTaste,
    ListPolicy,
    ModelItems,
    NewMovies,
    NewRow,
)
from cinematch_assets.ml.models.foldin import RatingTerms
from cinematch_assets.ml.models.titles import TitleLinks
from cinematch_assets.storage.atomic_files import atomic_path

ARRAY_KEYS = (
    "movie_ids", "ranking_items", "rating_items", "rating_item_bias", "rating_global_mean",
    "rating_reg_param", "rating_variant", "rating_bias_damping", "rating_nonnegative",
    "ranking_reg_param", "ranking_alpha", "popularity", "policy_ranker", "policy_stars_weight",
    "policy_popularity_penalty", "policy_star_floor", "policy_taste_weight",
)  # fmt: skip


def to_arrays(items: ModelItems) -> dict[str, np.ndarray]:
    rating, policy = items.rating, items.policy
    arrays = {
        "movie_ids": items.movie_ids,
        "ranking_items": items.ranking_items,
        "rating_items": rating.item_factors,
        "rating_item_bias": rating.item_bias,
        "rating_global_mean": np.float64(rating.global_mean),
        "rating_reg_param": np.float64(rating.reg_param),
        "rating_variant": np.str_(rating.variant),
        "rating_bias_damping": np.float64(rating.bias_damping),
        "rating_nonnegative": np.bool_(rating.nonnegative),
        "ranking_reg_param": np.float64(items.ranking_reg_param),
        "ranking_alpha": np.float64(items.ranking_alpha),
        "popularity": items.popularity,
        "policy_ranker": np.str_(policy.ranker),
        "policy_stars_weight": np.float64(policy.stars_weight),
        "policy_popularity_penalty": np.float64(policy.popularity_penalty),
        "policy_star_floor": np.float64(policy.star_floor),
        "policy_taste_weight": np.float64(policy.taste_weight),
        "policy_als_weight": np.float64(policy.als_weight),
    }
    if items.ease is not None:
        arrays |= {"ease_kept": items.ease.kept, "ease_weights": items.ease.weights}
    if items.taste is not None:
        arrays |= {
            "taste_genres": items.taste.genres.astype(np.uint8),
            "taste_base": items.taste.base,
        }
    if (new := items.new) is not None:
        arrays |= {
            "new_movie_ids": new.movie_ids,
            "new_ranking_items": new.ranking_items,
            "new_rating_bias": new.rating_bias,
            "new_rating_items": new.rating_items,
            "new_threshold": np.float64(new.threshold),
            "new_slots": np.int64(new.slots),
        }
        if new.audience is not None:
            arrays["new_audience"] = new.audience
        if (row := new.row) is not None:
            links = row.links.matrix
            arrays |= {
                "new_row_size": np.int64(row.size),
                "new_row_title_weight": np.float64(row.title_weight),
                "new_row_audience": row.audience,
                "new_row_fresh": row.fresh,
                "new_row_links_data": links.data,
                "new_row_links_indices": links.indices,
                "new_row_links_indptr": links.indptr,
            }
    return arrays


def _new_row(arrays: Any, known: int) -> NewRow:
    indptr = np.asarray(arrays["new_row_links_indptr"])
    links = sparse.csr_matrix(
        (np.asarray(arrays["new_row_links_data"], np.float32),
         np.asarray(arrays["new_row_links_indices"]), indptr),
        shape=(len(indptr) - 1, known),
    )  # fmt: skip
    return NewRow(
        int(arrays["new_row_size"]),
        np.asarray(arrays["new_row_audience"], dtype=np.float32),
        np.asarray(arrays["new_row_fresh"], dtype=bool),
        TitleLinks(links),
        float(arrays["new_row_title_weight"]),
    )


def _new_movies(arrays: Any, known: int) -> NewMovies:
    return NewMovies(
        np.asarray(arrays["new_movie_ids"], dtype=np.int64),
        np.asarray(arrays["new_ranking_items"], dtype=np.float32),
        np.asarray(arrays["new_rating_bias"], dtype=np.float32),
        np.asarray(arrays["new_rating_items"], dtype=np.float32),
        float(arrays["new_threshold"]),
        int(arrays["new_slots"]),
        # Artifacts written before the audience cut have none.
        np.asarray(arrays["new_audience"], dtype=np.float32) if "new_audience" in arrays else None,
        _new_row(arrays, known) if "new_row_size" in arrays else None,
    )


def from_arrays(arrays: Any) -> ModelItems:
    """From `to_arrays`' keys (a dict or an open .npz); a missing key or arrays of
    different lengths raise ValueError."""
    if missing := set(ARRAY_KEYS) - set(arrays.keys()):
        raise ValueError(f"no {', '.join(sorted(missing))}")
    ids = np.asarray(arrays["movie_ids"], dtype=np.int64)
    rating = RatingTerms(
        global_mean=float(arrays["rating_global_mean"]),
        item_bias=np.asarray(arrays["rating_item_bias"]),
        item_factors=np.asarray(arrays["rating_items"]),
        reg_param=float(arrays["rating_reg_param"]),
        variant=str(arrays["rating_variant"]),
        bias_damping=float(arrays["rating_bias_damping"]),
        nonnegative=bool(arrays["rating_nonnegative"]),
    )
    policy = ListPolicy(
        ranker=str(arrays["policy_ranker"]),
        stars_weight=float(arrays["policy_stars_weight"]),
        popularity_penalty=float(arrays["policy_popularity_penalty"]),
        star_floor=float(arrays["policy_star_floor"]),
        taste_weight=float(arrays["policy_taste_weight"]),
        # Artifacts written before the EASE + ALS blend have none.
        als_weight=float(arrays.get("policy_als_weight", 0.0)),
    )
    ease = None
    if "ease_kept" in arrays:
        ease = EaseItems(np.asarray(arrays["ease_kept"]), np.asarray(arrays["ease_weights"]))
    new = _new_movies(arrays, len(ids)) if "new_movie_ids" in arrays else None
    taste = None
    if "taste_genres" in arrays:
        genres = np.asarray(arrays["taste_genres"], dtype=np.float32)
        taste = GenreTaste(genres, np.asarray(arrays["taste_base"], dtype=np.float64))
    items = ModelItems(
        ids, np.asarray(arrays["ranking_items"]), float(arrays["ranking_reg_param"]),
        float(arrays["ranking_alpha"]), rating, np.asarray(arrays["popularity"]), policy,
        ease, new, taste,
    )  # fmt: skip
    lengths = {len(ids), len(items.ranking_items), len(rating.item_factors)}
    lengths |= {len(rating.item_bias), len(items.popularity)}
    if len(lengths) != 1 or np.any(np.diff(ids) <= 0):
        raise ValueError("the factor arrays do not match the sorted movie ids")
    if policy.ranker == "ease" and ease is None:
        raise ValueError("the served order ranks with EASE, and there are no EASE weights")
    if taste is not None and taste.genres.shape != (len(ids), len(taste.base)):
        raise ValueError("the movies' genres do not match the movie ids")
    if policy.taste_weight and taste is None:
        raise ValueError("the served order weighs the genre taste, and there are no genres")
    if new is not None and not (
        len(new.movie_ids) == len(new.ranking_items) == len(new.rating_bias)
        == len(new.rating_items)
        and new.ranking_items.shape[1] == items.ranking_items.shape[1]
        and new.rating_items.shape[1] == rating.item_factors.shape[1]
        and (new.audience is None or len(new.audience) == len(new.movie_ids))
        and (new.row is None or len(new.row.audience) == len(new.row.fresh)
             == new.row.links.matrix.shape[0] == len(new.movie_ids))
    ):  # fmt: skip
        raise ValueError("the new movies' arrays do not match each other or the models")
    return items


def write_model_factors(items: ModelItems, path: Path) -> Path:
    """As .npz, atomically."""
    # A file object: given a path, np.savez would append ".npz" to the temporary name.
    with atomic_path(path) as temp, temp.open("wb") as out:
        np.savez(out, **to_arrays(items))
    return Path(path)


def read_model_factors(path: Path) -> ModelItems:
    with np.load(path) as arrays:
        return from_arrays(arrays)


def settings(items: ModelItems) -> dict[str, Any]:
    """The scalars (what Dagster's metadata shows)."""
    return {k: v.item() for k, v in to_arrays(items).items() if np.ndim(v) == 0}

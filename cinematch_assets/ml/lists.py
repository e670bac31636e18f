"""The list builder: what every list shows, for a block of users, in numpy. One code path
for the held-out evaluation, the served lists (through the Spark adapter in `recommend`,
on the executors) and a new user in the app (a block of one); only what is excluded
differs: the training ratings for the evaluation, every known rating for serving.

For each user of a block: the ranker's top-n among the movies the user has not rated,
the rating model's predicted stars for each, and the reason (`explain`). No Spark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cinematch_assets.conventions import LIKED_STARS
from cinematch_assets.ml.explain import reasons_by_similarity
from cinematch_assets.ml.foldin import RatingTerms
from cinematch_assets.ml.top_n import ScoreRows, dot_scores, top_n
from cinematch_assets.storage.atomic_files import atomic_path


@dataclass(frozen=True)
class UserBlock:
    """Users and what lists need of them, as flat arrays: their factors in the ranking
    model (zeros for a user it does not know), their ratings (positions of the movies
    among the ranker's, with the stars, grouped by row) and, for stars, their bias and
    factors in the rating model."""

    user_ids: np.ndarray
    factors: np.ndarray
    rated_at: np.ndarray
    rated_stars: np.ndarray
    rated_by: np.ndarray
    star_bias: np.ndarray | None = None
    star_factors: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.user_ids)

    def rated(self) -> list[np.ndarray]:
        """Each user's rated positions: what their list leaves out."""
        counts = np.bincount(self.rated_by, minlength=len(self))
        return np.split(self.rated_at, np.cumsum(counts))[: len(self)]

    def liked(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, rows) of the movies each user liked: LIKED_STARS or more."""
        mask = self.rated_stars >= LIKED_STARS
        return self.rated_at[mask], self.rated_by[mask]


class Ranker(Protocol):
    """Orders a block's movies (the positions of `movie_ids`) and says why."""

    movie_ids: np.ndarray

    def scores(self, block: UserBlock) -> ScoreRows: ...

    def explain(self, block: UserBlock, positions: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class FactorRanker:
    """Score = user factors . movie factors (+ a movie bias): the ranking model, a rating
    model by its stars (its movie bias included), most-popular (no factors, popularity as
    the bias). Reasons come from its own factors (none without factors)."""

    movie_ids: np.ndarray
    items: np.ndarray
    bias: np.ndarray | None = None

    def scores(self, block: UserBlock) -> ScoreRows:
        return dot_scores(block.factors, self.items, self.bias)

    def explain(self, block: UserBlock, positions: np.ndarray) -> np.ndarray:
        return reasons_by_similarity(self.items, positions, *block.liked())


@dataclass(frozen=True)
class Lists:
    """One row per user of the block, n columns, best first: movie positions (-1 where
    a list is short), scores, predicted stars (None without a rating model) and the
    position of the reason (-1: none)."""

    positions: np.ndarray
    scores: np.ndarray
    stars: np.ndarray | None
    reasons: np.ndarray


def build_lists(
    block: UserBlock, ranker: Ranker, n: int, stars: RatingTerms | None = None
) -> Lists:
    """Every user's top-n by `ranker` among the movies they have not rated, with the
    stars `stars` predicts (aligned on the ranker's movies) and the reason."""
    positions, scores = top_n(
        ranker.scores(block), len(block), len(ranker.movie_ids), n, exclude=block.rated()
    )
    predicted = None
    if stars is not None:
        predicted = stars.predict_block(block.star_bias, block.star_factors, positions)
    return Lists(positions, scores, predicted, ranker.explain(block, positions))


@dataclass(frozen=True)
class ModelItems:
    """Both models' movie side, aligned on `movie_ids` (sorted): the ranking model's
    factors (and what folding a new user into it takes), the rating model's terms. What
    the served lists are built from, and what the app loads (model_factors.npz)."""

    movie_ids: np.ndarray
    ranking_items: np.ndarray
    ranking_reg_param: float
    ranking_alpha: float
    rating: RatingTerms

    def ranker(self) -> FactorRanker:
        return FactorRanker(self.movie_ids, self.ranking_items)

    def to_arrays(self) -> dict[str, np.ndarray]:
        rating = self.rating
        return {
            "movie_ids": self.movie_ids,
            "ranking_items": self.ranking_items,
            "rating_items": rating.item_factors,
            "rating_item_bias": rating.item_bias,
            "rating_global_mean": np.float64(rating.global_mean),
            "rating_reg_param": np.float64(rating.reg_param),
            "rating_variant": np.str_(rating.variant),
            "rating_bias_damping": np.float64(rating.bias_damping),
            "rating_nonnegative": np.bool_(rating.nonnegative),
            "ranking_reg_param": np.float64(self.ranking_reg_param),
            "ranking_alpha": np.float64(self.ranking_alpha),
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> ModelItems:
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
        items = cls(
            ids, np.asarray(arrays["ranking_items"]), float(arrays["ranking_reg_param"]),
            float(arrays["ranking_alpha"]), rating,
        )  # fmt: skip
        lengths = {len(ids), len(items.ranking_items), len(rating.item_factors)}
        if len(lengths | {len(rating.item_bias)}) != 1 or np.any(np.diff(ids) <= 0):
            raise ValueError("the factor arrays do not match the sorted movie ids")
        return items

    def save(self, path: Path) -> Path:
        """As .npz, atomically."""
        # A file object: given a path, np.savez would append ".npz" to the temporary name.
        with atomic_path(path) as temp, temp.open("wb") as out:
            np.savez(out, **self.to_arrays())
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> ModelItems:
        with np.load(path) as arrays:
            return cls.from_arrays(arrays)

    def settings(self) -> dict[str, Any]:
        """The scalars (what Dagster's metadata shows)."""
        return {k: v.item() for k, v in self.to_arrays().items() if np.ndim(v) == 0}


ARRAY_KEYS = (
    "movie_ids", "ranking_items", "rating_items", "rating_item_bias", "rating_global_mean",
    "rating_reg_param", "rating_variant", "rating_bias_damping", "rating_nonnegative",
    "ranking_reg_param", "ranking_alpha",
)  # fmt: skip

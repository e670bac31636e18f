"""RP3beta (Paudel et al., "Updatable, Accurate, Diverse, and Scalable Recommendations for
Interactive Applications", TiiS 2016; Dacrema et al., RecSys 2019, found it as accurate
as far heavier models on MovieLens): a random walk of three steps, movie -> user ->
movie, its arrival probabilities divided by the popularity of the movie arrived at to the
power beta (beta 0: the plain walk, which favours what everyone rated).

    W[i, j] = sum over users u of i and j: 1 / (ratings of i x ratings of u)
              / (ratings of j) ** beta,   diag(W) = 0

A user's score for movie j is the sum of W[i, j] over the movies i they rated 3 stars or
more, as EASE's (`ml.models.ease`), over the same kept movies; no inverse, one sparse
product. numpy and scipy on the driver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame

from cinematch_assets.ml.models.ease import EasePairs, ease_pairs, gram


@dataclass(frozen=True)
class RP3Params:
    beta: float
    max_items: int


@dataclass(frozen=True)
class RP3Model:
    """W over the kept movies (ids ascending), as `EaseModel` holds B."""

    movie_ids: np.ndarray
    weights: np.ndarray
    params: RP3Params


def walk_weights(pairs: EasePairs) -> np.ndarray:
    """sum over users of 1 / (ratings of i x ratings of u), i x j (float64), before the
    popularity of j: a Gram with each pair weighted by 1 / sqrt(the user's ratings)."""
    _, rows = np.unique(pairs.users, return_inverse=True)
    per_user = np.bincount(rows).astype(np.float64)
    walk = gram(pairs.users, pairs.positions, len(pairs.kept), 1.0 / np.sqrt(per_user[rows]))
    counts = np.bincount(pairs.positions, minlength=len(pairs.kept)).astype(np.float64)
    walk /= np.maximum(counts, 1.0)[:, None]
    return walk


def rp3_weights(walk: np.ndarray, counts: np.ndarray, beta: float) -> np.ndarray:
    """W (float32) from the walk's weights and each movie's ratings."""
    weights = walk / np.maximum(counts, 1.0)[None, :] ** beta
    weights[np.diag_indices_from(weights)] = 0.0
    return weights.astype(np.float32)


@dataclass(frozen=True)
class RP3Walk:
    """The walk's weights before the popularity exponent and each movie's ratings: made
    once for a whole search of beta."""

    movie_ids: np.ndarray
    walk: np.ndarray
    counts: np.ndarray
    max_items: int

    @classmethod
    def of(cls, train: DataFrame, max_items: int) -> RP3Walk:
        pairs = ease_pairs(train, max_items)
        counts = np.bincount(pairs.positions, minlength=len(pairs.kept))
        return cls(pairs.kept.astype(np.int64), walk_weights(pairs), counts, max_items)

    def model(self, beta: float) -> RP3Model:
        weights = rp3_weights(self.walk, self.counts, beta)
        return RP3Model(self.movie_ids, weights, RP3Params(beta, self.max_items))

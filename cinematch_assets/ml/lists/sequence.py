"""Lists by what tends to come next (`ml.models.sequence`): a ranker that reads each
user's recent movies from profiles made beforehand, since a block of users carries what
they rated but not in which order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from cinematch_assets.ml.arrays import position_of
from cinematch_assets.ml.lists.build import UserBlock
from cinematch_assets.ml.lists.top_n import ScoreRows
from cinematch_assets.ml.models.sequence import Histories, SequenceModel


@dataclass(frozen=True, eq=False)
class SequenceRanker:
    """Score = the user's profile (`Histories.profiles`: their last movies, recency
    weighted) times W; a user without a profile scores 0 everywhere. No reasons."""

    movie_ids: np.ndarray
    weights: np.ndarray
    user_ids: np.ndarray  # ascending: whose profiles, one row each
    profiles: sparse.csr_matrix

    @classmethod
    def of(cls, model: SequenceModel, histories: Histories) -> SequenceRanker:
        """The model with the profiles of `histories` (on the model's movies)."""
        params = model.params
        users, profiles = histories.profiles(params.window, params.decay, len(model.movie_ids))
        return cls(model.movie_ids, model.weights, users, profiles)

    @property
    def rank(self) -> int:
        return 0

    def scores(self, block: UserBlock) -> ScoreRows:
        at = position_of(self.user_ids, block.user_ids)
        rows = sparse.csr_matrix((len(at), len(self.movie_ids)))
        if (at >= 0).any():  # a user without a profile keeps a row of zeros
            rows = sparse.diags((at >= 0).astype(np.float64)) @ self.profiles[at.clip(0)]

        def score(start: int, stop: int, out: np.ndarray) -> None:
            out[:] = rows[start:stop] @ self.weights

        return score

    def explain(self, block: UserBlock, positions: np.ndarray) -> np.ndarray:
        return np.full(positions.shape, -1, dtype=np.int64)

"""Which movies follow which: a closed-form linear model over the order in which people
rated, in the manner of EASE and of SLIT (Choi et al., "Session-aware Linear Item-Item
Models for Session-based Recommendation", WWW 2021).

Each rating with a rating before it by the same user is one example: its sources are the
user's `window` previous movies, the d-th before it weighted `decay` ** (d - 1), its
target the movie itself. With S (examples x movies, the weighted sources) and T (the
targets, one 1 a row):

    W = (S^T S + lambda I)^-1 S^T T

A user's score for movie j is their profile (their last `window` movies, the latest
weighted 1, the one before `decay`, ...) times W's column j: what tends to come next
after what they rated last. Ties in time keep movie order. numpy and scipy on the
driver, like EASE; above `max_items` it keeps the most-rated movies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame
from scipy import sparse
from scipy.linalg import cho_factor, cho_solve

from cinematch_assets.ml.arrays import position_of
from cinematch_assets.ml.models.ease import kept_movies


@dataclass(frozen=True)
class SequenceParams:
    reg: float
    window: int
    decay: float
    max_items: int


@dataclass(frozen=True)
class SequenceModel:
    """W over the kept movies (ids ascending): `weights[i, j]`, how much having rated
    `movie_ids[i]` lately says the next is `movie_ids[j]`."""

    movie_ids: np.ndarray
    weights: np.ndarray
    params: SequenceParams


@dataclass(frozen=True)
class Histories:
    """Every user's ratings in the order they were made: users ascending, each one's
    movie positions (among the kept ids) by time, as flat arrays."""

    users: np.ndarray
    positions: np.ndarray

    @classmethod
    def of(cls, rows: DataFrame, kept: np.ndarray) -> Histories:
        """From (userId, movieId, timestamp) rows; movies outside `kept` left out."""
        table = rows.select("userId", "movieId", "timestamp").toArrow()
        users = table.column("userId").to_numpy()
        movies = table.column("movieId").to_numpy()
        order = np.lexsort((movies, table.column("timestamp").to_numpy(), users))
        at = position_of(kept, movies[order])
        return cls(users[order][at >= 0], at[at >= 0])

    def lagged(self, window: int, decay: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(example, source position, weight) of every source within `window` ratings
        before each rating of the same user; examples are indices of the ratings."""
        examples, sources, weights = [], [], []
        for lag in range(1, window + 1):
            same = np.flatnonzero(self.users[lag:] == self.users[:-lag])
            examples.append(same + lag)
            sources.append(self.positions[same])
            weights.append(np.full(len(same), decay ** (lag - 1)))
        return np.concatenate(examples), np.concatenate(sources), np.concatenate(weights)

    def profiles(
        self, window: int, decay: float, n_items: int
    ) -> tuple[np.ndarray, sparse.csr_matrix]:
        """(user ids, users x movies): each user's last `window` movies, the latest
        weighted 1, the one before `decay`, and so on."""
        ids, starts = np.unique(self.users, return_index=True)
        ends = np.append(starts[1:], len(self.users))
        back = ends[np.repeat(np.arange(len(ids)), ends - starts)] - np.arange(len(self.users)) - 1
        recent = back < window  # back: how many of the user's ratings came after this one
        rows = np.repeat(np.arange(len(ids)), ends - starts)[recent]
        matrix = sparse.csr_matrix(
            (decay ** back[recent].astype(np.float64), (rows, self.positions[recent])),
            shape=(len(ids), n_items),
        )
        return ids, matrix


@dataclass(frozen=True)
class SequenceGrams:
    """What W is solved from for any lambda, made once for a whole search (as EASE's
    Gram): S^T S and S^T T of the histories, and the histories (each user's profile)."""

    movie_ids: np.ndarray
    histories: Histories
    gram: np.ndarray
    cross: np.ndarray
    window: int
    decay: float
    max_items: int

    @classmethod
    def of(cls, train: DataFrame, *, window: int, decay: float, max_items: int) -> SequenceGrams:
        """From (userId, movieId, timestamp) rows, over the `max_items` most-rated movies."""
        counts = train.groupBy("movieId").count().toPandas()
        ids = counts["movieId"].to_numpy(np.int64)
        kept = kept_movies(ids, counts["count"].to_numpy(), max_items)
        return cls.of_histories(Histories.of(train, kept), kept, window, decay, max_items)

    @classmethod
    def of_histories(
        cls, histories: Histories, movie_ids: np.ndarray, window: int, decay: float,
        max_items: int,
    ) -> SequenceGrams:  # fmt: skip
        examples, sources, weights = histories.lagged(window, decay)
        shape = (len(histories.positions), len(movie_ids))
        s = sparse.csr_matrix((weights, (examples, sources)), shape=shape)
        t = sparse.csr_matrix(
            (np.ones(shape[0]), (np.arange(shape[0]), histories.positions)), shape
        )
        gram, cross = (s.T @ s).toarray(), (s.T @ t).toarray()
        return cls(movie_ids, histories, gram, cross, window, decay, max_items)

    def model(self, reg: float) -> SequenceModel:
        """W by ridge regression of each rating's movie on the weighted movies before it
        (Cholesky: S^T S + lambda I is symmetric positive definite)."""
        gram = self.gram.copy()
        gram[np.diag_indices_from(gram)] += reg
        weights = cho_solve(cho_factor(gram, overwrite_a=True), self.cross).astype(np.float32)
        params = SequenceParams(reg, self.window, self.decay, self.max_items)
        return SequenceModel(self.movie_ids, weights, params)

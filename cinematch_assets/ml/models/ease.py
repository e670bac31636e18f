"""EASE, the ranking challenger (Steck, "Embarrassingly Shallow Autoencoders for Sparse
Data", WWW 2019): a closed-form item-item model over who rated what.

    P = (X^T X + lambda I)^-1,   B = I - P / diag(P) (column-wise),   diag(B) = 0

X is who rated what (1 a rating) or, `decay_weighted`, each rating's time-decay weight
from Gold (1 for a user's latest, halving with each half-life before it): recent
co-ratings then say more about which movies go together than those of years ago.
A user's score for movie j is the sum of B[i, j] over the movies i in their history. It
needs a dense movies x movies matrix and its inverse (8 n^2 bytes each in float64), so
above `max_items` it keeps the most-rated movies (`kept_movies`). The matrix work is
numpy and scipy on the driver, and B stays a NumPy array: Spark never holds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from pyspark.sql import DataFrame
from scipy import sparse
from scipy.linalg import lapack

from cinematch_assets.ml.arrays import position_of
from cinematch_assets.ml.models.fits import FitKey, count_fit, fit_key


@dataclass(frozen=True)
class EaseParams:
    reg: float
    max_items: int
    decay_weighted: bool = False


@dataclass(frozen=True)
class EaseModel:
    """B over the kept movies: `weights[i, j]` from movie `movie_ids[i]` to `movie_ids[j]`
    (ids ascending). A NumPy array, never a Spark table: in the lake it is a file beside
    the model's Delta row (`ml.models.artifacts`, `storage.matrix_files`)."""

    movie_ids: np.ndarray
    weights: np.ndarray
    params: EaseParams


@dataclass(frozen=True)
class EasePairs:
    """Who rated what on the driver: the kept movie ids, and per pair its user, its
    movie's position among them and its time-decay weight (None: not read)."""

    kept: np.ndarray
    users: np.ndarray
    positions: np.ndarray
    weights: np.ndarray | None = None

    def gram(self, decay_weighted: bool) -> np.ndarray:
        if decay_weighted and self.weights is None:
            raise ValueError("a decay-weighted EASE needs the ratings' `weight` column")
        weights = self.weights if decay_weighted else None
        return gram(self.users, self.positions, len(self.kept), weights)


def ease_pairs(train: DataFrame, max_items: int, *, decay_weighted: bool = False) -> EasePairs:
    """The pairs of `train` on the driver (with Gold's `weight` when `decay_weighted`)."""
    counts = train.groupBy("movieId").count().toPandas()
    kept = kept_movies(counts["movieId"].to_numpy(np.int64), counts["count"].to_numpy(), max_items)
    columns = ["userId", "movieId", *(["weight"] if decay_weighted else [])]
    pairs = train.select(*columns).toArrow()
    users = pairs.column("userId").to_numpy()
    at = position_of(kept, pairs.column("movieId").to_numpy())
    weights = pairs.column("weight").to_numpy()[at >= 0] if decay_weighted else None
    return EasePairs(kept, users[at >= 0], at[at >= 0], weights)


def fit_ease_model(
    train: DataFrame,
    *,
    reg: float,
    max_items: int,
    decay_weighted: bool = False,
    log: Callable[[str], object] = print,
) -> EaseModel:
    started = time.perf_counter()
    pairs = ease_pairs(train, max_items, decay_weighted=decay_weighted)
    weights = fit_ease(pairs.gram(decay_weighted), reg)
    log(
        f"EASE on {len(pairs.kept):,} movies, lambda {reg:g}"
        f"{', decay-weighted' if decay_weighted else ''}: {time.perf_counter() - started:.1f} s"
    )
    return EaseModel(
        pairs.kept.astype(np.int64), weights, EaseParams(reg, max_items, decay_weighted)
    )


def refit_ease_model(
    train: DataFrame, params: EaseParams, *, log: Callable[[str], object] = print
) -> EaseModel:
    """An EASE made as `params` says, fitted on other rows (`train`)."""
    return fit_ease_model(
        train, reg=params.reg, max_items=params.max_items,
        decay_weighted=params.decay_weighted, log=log,
    )  # fmt: skip


def ease_key(train: DataFrame, params: EaseParams) -> FitKey:
    return fit_key("ease", train, asdict(params), 0)


def kept_movies(movie_ids: np.ndarray, counts: np.ndarray, max_items: int) -> np.ndarray:
    """The ids (sorted) of the `max_items` most-rated movies (ties: lower id)."""
    order = np.lexsort((movie_ids, -counts))
    return np.sort(movie_ids[order[:max_items]])


def gram(
    users: np.ndarray, positions: np.ndarray, n_items: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """X^T X (float64, n_items x n_items) of the user x movie matrix given as (user index,
    movie position) pairs, through a sparse product: X is 1 at a pair, or its weight."""
    _, rows = np.unique(users, return_inverse=True)
    shape = (rows.max() + 1 if len(rows) else 0, n_items)
    x = sparse.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, positions)), shape=shape)
    if weights is not None:  # the same pattern (duplicates summed): a pair's mean weight
        summed = sparse.csr_matrix((np.asarray(weights, np.float64), (rows, positions)), shape)
        summed.data /= x.data
        x = summed
    else:
        x.data[:] = 1.0  # a pair given twice is still one rating
    return np.asarray((x.T @ x).todense(), dtype=np.float64)


def fit_ease(gram_matrix: np.ndarray, reg: float) -> np.ndarray:
    """B (float32) from X^T X and the regularization lambda. X^T X + lambda I is
    symmetric positive definite, so its inverse comes from its Cholesky factor (LAPACK
    potrf, then potri), in place: a third of the arithmetic of a general inverse (LU and
    n solves) and no second n x n copy (800 MB at 10k movies)."""
    count_fit("ease")
    p = gram_matrix.copy()
    p[np.diag_indices_from(p)] += reg
    # LAPACK works on columns: the transpose of a C-ordered symmetric matrix is itself,
    # laid out as LAPACK wants, so the factor and the inverse overwrite `p`.
    factor, info = lapack.dpotrf(p.T, lower=1, overwrite_a=1, clean=0)
    if info == 0:
        factor, info = lapack.dpotri(factor, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"X^T X + {reg:g} I is not positive definite ({info})")
    _mirror_upper(p)  # potri leaves the inverse in p's upper triangle only
    p /= -np.diag(p)  # in place: at 10k movies each n x n copy is 800 MB
    p[np.diag_indices_from(p)] = 0.0
    return p.astype(np.float32)


def _mirror_upper(matrix: np.ndarray, block: int = 1_024) -> None:
    """Copy the upper triangle of a square matrix onto its lower one, in place, a block
    of rows at a time (no n x n temporary)."""
    for start in range(0, len(matrix), block):
        stop = min(start + block, len(matrix))
        matrix[start:stop, :start] = matrix[:start, start:stop].T
        rows = matrix[start:stop, start:stop]
        rows[np.tril_indices(stop - start, -1)] = rows.T[np.tril_indices(stop - start, -1)]

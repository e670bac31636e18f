"""EASE, the ranking challenger (Steck, "Embarrassingly Shallow Autoencoders for Sparse
Data", WWW 2019): a closed-form item-item model over who rated what.

    P = (X^T X + lambda I)^-1,   B = I - P / diag(P) (column-wise),   diag(B) = 0

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


@dataclass(frozen=True)
class EaseModel:
    """B over the kept movies: `weights[i, j]` from movie `movie_ids[i]` to `movie_ids[j]`
    (ids ascending). A NumPy array, never a Spark table: in the lake it is a file beside
    the model's Delta row (`ml.models.artifacts`, `storage.matrix_files`)."""

    movie_ids: np.ndarray
    weights: np.ndarray
    params: EaseParams


def ease_pairs(train: DataFrame, max_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kept movie ids, user of each pair, position of each pair's movie) on the driver."""
    counts = train.groupBy("movieId").count().toPandas()
    kept = kept_movies(counts["movieId"].to_numpy(np.int64), counts["count"].to_numpy(), max_items)
    pairs = train.select("userId", "movieId").toArrow()
    users = pairs.column("userId").to_numpy()
    at = position_of(kept, pairs.column("movieId").to_numpy())
    return kept, users[at >= 0], at[at >= 0]


def fit_ease_model(
    train: DataFrame, *, reg: float, max_items: int, log: Callable[[str], object] = print
) -> EaseModel:
    started = time.perf_counter()
    kept, users, positions = ease_pairs(train, max_items)
    weights = fit_ease(gram(users, positions, len(kept)), reg)
    log(f"EASE on {len(kept):,} movies, lambda {reg:g}: {time.perf_counter() - started:.1f} s")
    return EaseModel(kept.astype(np.int64), weights, EaseParams(reg, max_items))


def ease_key(train: DataFrame, params: EaseParams) -> FitKey:
    return fit_key("ease", train, asdict(params), 0)


def kept_movies(movie_ids: np.ndarray, counts: np.ndarray, max_items: int) -> np.ndarray:
    """The ids (sorted) of the `max_items` most-rated movies (ties: lower id)."""
    order = np.lexsort((movie_ids, -counts))
    return np.sort(movie_ids[order[:max_items]])


def gram(users: np.ndarray, positions: np.ndarray, n_items: int) -> np.ndarray:
    """X^T X (float64, n_items x n_items) of the binary user x movie matrix given as
    (user index, movie position) pairs, through a sparse product."""
    _, rows = np.unique(users, return_inverse=True)
    x = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, positions)),
        shape=(rows.max() + 1 if len(rows) else 0, n_items),
    )
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

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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy import sparse

from cinematch_assets.ml.fits import FitKey, count_fit, fit_key, keep
from cinematch_assets.ml.lists import EaseItems, EaseRanker
from cinematch_assets.ml.metrics import ranking_metrics, relevant_rows
from cinematch_assets.ml.recommend import most_popular, recommend
from cinematch_assets.ml.top_n import position_of
from cinematch_assets.ml.tuning import Split, TuningResult, grid_search


@dataclass(frozen=True)
class EaseParams:
    reg: float
    max_items: int


@dataclass(frozen=True)
class EaseModel:
    """B over the kept movies: `weights[i, j]` from movie `movie_ids[i]` to `movie_ids[j]`
    (ids ascending). A NumPy array, never a Spark table: in the lake it is a file beside
    the model's Delta row (`ml.artifacts`, `storage.matrix_files`)."""

    movie_ids: np.ndarray
    weights: np.ndarray
    params: EaseParams

    def items_on(self, movie_ids: np.ndarray) -> EaseItems:
        """B placed among `movie_ids` (which hold every kept movie)."""
        kept = position_of(movie_ids, self.movie_ids)
        if (kept < 0).any():
            raise ValueError("EASE knows movies the other models do not")
        return EaseItems(kept, self.weights)

    def ranker(self) -> EaseRanker:
        """A ranker over the kept movies only (for tuning and the evaluation's lists)."""
        return EaseRanker(self.movie_ids, np.arange(len(self.movie_ids)), self.weights)


def _pairs(train: DataFrame, max_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    kept, users, positions = _pairs(train, max_items)
    weights = fit_ease(gram(users, positions, len(kept)), reg)
    log(f"EASE on {len(kept):,} movies, lambda {reg:g}: {time.perf_counter() - started:.1f} s")
    return EaseModel(kept.astype(np.int64), weights, EaseParams(reg, max_items))


def tune_ease(
    split: Split,
    regs: Sequence[float],
    *,
    max_items: int,
    k: int,
    log: Callable[[str], object],
) -> tuple[TuningResult, float]:
    """lambda by NDCG@k on the validation part (X^T X computed once for every lambda);
    also the most-popular baseline's NDCG@k on the same users. The best fit is kept for
    the run (`fits.keep`)."""
    train, validation = split
    kept, users_of, positions = _pairs(train, max_items)
    matrix = gram(users_of, positions, len(kept))
    seen = train.select("userId", "movieId", "rating")
    relevant = relevant_rows(validation)
    users = (
        relevant.select("userId").distinct().withColumn("features", F.array().cast("array<float>"))
    )

    best: list[tuple[float, EaseModel]] = []  # the best so far: the search runs in order

    def evaluate(params: dict[str, Any], split: Split) -> float:
        model = EaseModel(
            kept, fit_ease(matrix, params["reg"]), EaseParams(params["reg"], max_items)
        )
        value = ranking_metrics(recommend(model.ranker(), users, seen, k), relevant, k=k)["ndcg"]
        if not best or value > best[0][0]:
            best[:] = [(value, model)]
        return value

    result = grid_search(
        [{"reg": reg} for reg in regs],
        [split],
        evaluate,
        metric=f"ndcg@{k}",
        lower_is_better=False,
        parallelism=1,  # each fit holds a movies x movies inverse
        log=log,
    )
    chosen = best[0][1]
    if chosen.params.reg == result.best_params["reg"]:  # the champion scores on this split
        keep(ease_key(train, chosen.params), chosen)
    baseline = ranking_metrics(most_popular(train, users, seen, k), relevant, k=k)["ndcg"]
    return result, baseline


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
    """B (float32) from X^T X and the regularization lambda."""
    count_fit("ease")
    p = gram_matrix.copy()
    p[np.diag_indices_from(p)] += reg
    p = np.linalg.inv(p)
    p /= -np.diag(p)  # in place: at 10k movies each n x n copy is 800 MB
    p[np.diag_indices_from(p)] = 0.0
    return p.astype(np.float32)

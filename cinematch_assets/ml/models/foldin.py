"""Fold-in: factors for a user the models never saw, from a few ratings, against the
trained item factors. No Spark: the app runs it per request, the tests check it against
the trained models.

It is the user half of one ALS iteration, exactly as Spark MLlib solves it, with Spark's
regularization scaling (ALS-WR: lambda times the user's number of ratings):

- explicit (the rating model), over the movies the user rated:
      (Y^T Y + lambda n I) x = Y^T r
- implicit (the ranking model; Hu, Koren & Volinsky 2008), c = 1 + alpha * value:
      (Y_all^T Y_all + Y^T (C - I) Y + lambda n I) x = Y^T C 1

A nonnegative model (the article's variant) solves the same system under x >= 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cinematch_assets.conventions import DISLIKED_BELOW_STARS, MAX_RATING, MIN_RATING

# Sweeps of the nonnegative solver; it converges in far fewer at the ranks used here.
NNLS_SWEEPS = 500


def solve_explicit(
    items: np.ndarray, targets: np.ndarray, reg_param: float, *, nonnegative: bool = False
) -> np.ndarray:
    """The user factor that explicit ALS would give a user with `targets` on `items`
    (one factor row per rated movie)."""
    items = np.asarray(items, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    gram = items.T @ items + reg_param * len(targets) * np.eye(items.shape[1])
    return _solve(gram, items.T @ targets, nonnegative)


def implicit_gram(all_items: np.ndarray) -> np.ndarray:
    """Y^T Y over every movie: the part of the implicit system every user shares."""
    all_items = np.asarray(all_items, dtype=np.float64)
    return all_items.T @ all_items


def solve_implicit(
    items: np.ndarray,
    values: np.ndarray,
    gram: np.ndarray,
    reg_param: float,
    alpha: float,
    *,
    nonnegative: bool = False,
) -> np.ndarray:
    """The user factor that implicit ALS would give a user whose confidence sources are
    `values` on `items`; `gram` is `implicit_gram` of all the model's movies. As in
    Spark, c - 1 = alpha * |value|, the preference is 1 where value > 0, and lambda is
    scaled by the number of positive values."""
    items = np.asarray(items, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    c1 = alpha * np.abs(values)
    positive = values > 0
    system = gram + (items.T * c1) @ items + reg_param * positive.sum() * np.eye(items.shape[1])
    return _solve(system, items[positive].T @ (1.0 + c1[positive]), nonnegative)


def _solve(system: np.ndarray, rhs: np.ndarray, nonnegative: bool) -> np.ndarray:
    if nonnegative:
        return nonnegative_solve(system, rhs)
    # lstsq, not solve: a user with no ratings (lambda n = 0) has a singular system.
    return np.linalg.lstsq(system, rhs, rcond=None)[0]


def nonnegative_solve(system: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """argmin_{x >= 0} 1/2 x^T A x - b^T x for a symmetric positive semi-definite A, by
    projected coordinate descent (Spark solves the same problem with its NNLS)."""
    x = np.zeros(len(rhs))
    diagonal = np.diag(system)
    for _ in range(NNLS_SWEEPS):
        before = x.copy()
        for i in range(len(x)):
            if diagonal[i] > 0:
                x[i] = max(0.0, x[i] - (system[i] @ x - rhs[i]) / diagonal[i])
        if np.abs(x - before).max(initial=0.0) < 1e-10:
            break
    return x


@dataclass(frozen=True)
class RatingTerms:
    """What the rating model needs to predict a new user's stars: global mean, per-movie
    bias and factors (aligned), and how user biases were learned."""

    global_mean: float
    item_bias: np.ndarray
    item_factors: np.ndarray
    reg_param: float
    variant: str  # bias_residual | user_mean | none
    bias_damping: float
    nonnegative: bool

    def user_bias(self, movie_bias: np.ndarray, stars: np.ndarray) -> float:
        """The bias the model would learn for `stars` given to movies of these biases (a
        new user's ratings are all recent, so a decay weight would be 1 for each)."""
        if len(stars) == 0 or self.variant == "none":
            return 0.0
        if self.variant == "user_mean":
            return float(np.mean(stars))
        residual = stars - self.global_mean - movie_bias
        return float(residual.sum() / (self.bias_damping + len(stars)))

    def fold_in(self, positions: np.ndarray, stars: np.ndarray) -> tuple[float, np.ndarray]:
        """(user bias, user factor) for ratings `stars` of the movies at `positions`."""
        positions = np.asarray(positions, dtype=np.int64)
        return self.fold_in_on(self.item_bias[positions], self.item_factors[positions], stars)

    def fold_in_on(
        self, movie_bias: np.ndarray, movie_factors: np.ndarray, stars: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """(user bias, user factor) for `stars` given to movies with these terms: the
        model's own, or a new movie's placed from its content."""
        stars = np.asarray(stars, dtype=np.float64)
        bias = self.user_bias(movie_bias, stars)
        targets = stars - self.global_mean - bias - movie_bias
        factor = solve_explicit(
            movie_factors, targets, self.reg_param, nonnegative=self.nonnegative
        )
        return bias, factor

    @cached_property
    def _movie_terms(self) -> np.ndarray:
        """Global mean + each movie's bias (float32), made once: a server predicts every
        movie's stars for each new user."""
        return (self.global_mean + np.asarray(self.item_bias, dtype=np.float64)).astype(np.float32)

    def predict_all(
        self, user_bias: np.ndarray | None, user_factors: np.ndarray | None
    ) -> np.ndarray:
        """Stars in [0.5, 5] (float32) of every movie, for each user of a block."""
        users = 1 if user_bias is None else len(user_bias)
        items = np.asarray(self.item_factors, dtype=np.float32)  # no copy when it is already
        if user_factors is not None and items.shape[1]:
            stars = np.asarray(user_factors, dtype=np.float32) @ items.T
        else:
            stars = np.zeros((users, len(items)), dtype=np.float32)
        stars += self._movie_terms
        if user_bias is not None:
            user_terms = np.nan_to_num(np.asarray(user_bias, dtype=np.float64))
            stars += user_terms.astype(np.float32)[:, None]
        return np.clip(stars, MIN_RATING, MAX_RATING, out=stars)

    def predict_block(
        self, user_bias: np.ndarray | None, user_factors: np.ndarray | None, positions: np.ndarray
    ) -> np.ndarray:
        """Stars in [0.5, 5] (float32) for each user of a block (a bias, NaN or None for
        none, and factors, zeros for none) and each of their movies at `positions` (users
        x n; -1 where a list is short: any star there is meaningless)."""
        users, rank = positions.shape[0], self.item_factors.shape[1]
        bias = np.zeros(users) if user_bias is None else np.nan_to_num(user_bias.astype(np.float64))
        factors = np.zeros((users, rank), np.float32) if user_factors is None else user_factors
        safe = positions.clip(0)
        stars = (
            self.global_mean
            + bias[:, None]
            + self.item_bias[safe]
            + np.einsum("uk,unk->un", factors, self.item_factors[safe])
        )
        return stars.clip(MIN_RATING, MAX_RATING).astype(np.float32)


def preference_values(stars: np.ndarray) -> np.ndarray:
    """A new user's stars as implicit-feedback values: +1 (a preference, confidence
    1 + alpha) from DISLIKED_BELOW_STARS up, -1 below it (no preference, held with the
    same confidence), so a movie rated 0.5 pushes similar movies down, never up."""
    return np.where(np.asarray(stars, dtype=np.float64) >= DISLIKED_BELOW_STARS, 1.0, -1.0)

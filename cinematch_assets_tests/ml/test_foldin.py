"""Fold-in against Spark's own ALS: after the last iteration Spark solves every user's
factor from the final item factors, so folding a training user back in from their own
ratings must give the factor Spark stored, for explicit, implicit and nonnegative ALS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cinematch_assets.ml.lists.explain import reasons_by_similarity
from cinematch_assets.ml.models.als import factor_tables, fit_als
from cinematch_assets.ml.models.foldin import (
    RatingTerms,
    implicit_gram,
    nonnegative_solve,
    solve_explicit,
    solve_implicit,
)


@pytest.fixture(scope="module")
def ratings(spark):
    rng = np.random.default_rng(3)
    users, movies, rank = 40, 30, 3
    truth = rng.normal(size=(users, rank)) @ rng.normal(size=(rank, movies))
    rows = [
        (u, m, float(np.clip(np.round(3 + truth[u, m]), 1, 5)), float(rng.uniform(0.2, 1.0)))
        for u in range(users)
        for m in range(movies)
        if rng.random() < 0.4
    ]
    return spark.createDataFrame(rows, "userId int, movieId int, rating double, weight double")


def factors(model) -> tuple[dict[int, np.ndarray], np.ndarray, np.ndarray]:
    users, items = factor_tables(model)
    user_rows = {r["userId"]: np.array(r["features"]) for r in users.collect()}
    item_rows = items.orderBy("movieId").toPandas()
    ids = item_rows["movieId"].to_numpy()
    return user_rows, ids, np.stack(item_rows["features"].to_numpy()).astype(np.float64)


def by_user(ratings) -> dict[int, pd.DataFrame]:
    return dict(tuple(ratings.toPandas().groupby("userId")))


@pytest.mark.parametrize("nonnegative", [False, True])
def test_explicit_fold_in_reproduces_spark_user_factors(ratings, nonnegative):
    model = fit_als(
        ratings, rating_col="rating", rank=3, reg_param=0.1, max_iter=5, seed=1,
        nonnegative=nonnegative,
    )  # fmt: skip
    users, ids, items = factors(model)
    worst = 0.0
    for user, rows in by_user(ratings).items():
        positions = np.searchsorted(ids, rows["movieId"])
        folded = solve_explicit(
            items[positions], rows["rating"].to_numpy(), 0.1, nonnegative=nonnegative
        )
        worst = max(worst, np.abs(folded - users[user]).max())
    assert worst < (1e-3 if nonnegative else 1e-4)


def test_implicit_fold_in_reproduces_spark_user_factors(ratings):
    model = fit_als(
        ratings, rating_col="weight", rank=3, reg_param=0.1, max_iter=5, seed=1,
        implicit=True, alpha=4.0,
    )  # fmt: skip
    users, ids, items = factors(model)
    gram = implicit_gram(items)
    for user, rows in by_user(ratings).items():
        positions = np.searchsorted(ids, rows["movieId"])
        folded = solve_implicit(items[positions], rows["weight"].to_numpy(), gram, 0.1, 4.0)
        np.testing.assert_allclose(folded, users[user], atol=1e-4)


def test_nonnegative_solve_matches_the_active_set_answer():
    # min 1/2 x'Ax - b'x, x >= 0: the unconstrained optimum has a negative coordinate.
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    b = np.array([1.0, -1.0])
    assert np.linalg.solve(a, b)[1] < 0
    np.testing.assert_allclose(nonnegative_solve(a, b), [0.5, 0.0], atol=1e-9)


def test_rating_terms_fold_in_the_bias_then_the_residual():
    items = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    terms = RatingTerms(
        global_mean=3.5,
        item_bias=np.array([0.5, -0.5, 0.0]),
        item_factors=items,
        reg_param=0.1,
        variant="bias_residual",
        bias_damping=2.0,
        nonnegative=False,
    )
    positions, stars = np.array([0, 1]), np.array([5.0, 3.0])
    bias, factor = terms.fold_in(positions, stars)
    assert bias == pytest.approx(((5 - 3.5 - 0.5) + (3 - 3.5 + 0.5)) / (2.0 + 2))
    residual = stars - 3.5 - bias - terms.item_bias[positions]
    expected = np.linalg.solve(
        items[:2].T @ items[:2] + 0.1 * 2 * np.eye(2), items[:2].T @ residual
    )
    np.testing.assert_allclose(factor, expected)
    predicted = terms.predict_block(np.array([bias]), factor[None, :], np.array([[0, 1, 2]]))[0]
    assert predicted.min() >= 0.5 and predicted.max() <= 5.0
    assert predicted[0] > predicted[1]  # the 5-star movie stays above the 3-star one
    user_mean = RatingTerms(3.5, np.zeros(3), items, 0.1, "user_mean", 0.0, True)
    assert user_mean.user_bias(user_mean.item_bias[positions], stars) == 4.0


def test_reason_is_the_most_similar_liked_movie():
    items = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    one = np.zeros(2, dtype=np.int64)
    assert reasons_by_similarity(items, np.array([[2, 3]]), np.array([0, 1]), one).tolist() == [
        [0, 1]
    ]
    none = np.zeros(0, dtype=np.int64)
    assert reasons_by_similarity(items, np.array([[2]]), none, none).tolist() == [[-1]]
    # New movies have their own table: positions in it, reasons among the known movies.
    new = np.array([[0.2, 0.8], [0.8, 0.2]])
    assert reasons_by_similarity(
        items, np.array([[0, 1, -1]]), np.array([0, 1]), one, candidates=new
    ).tolist() == [[1, 0, -1]]


def test_block_reasons_match_a_brute_force_per_user():
    rng = np.random.default_rng(5)
    items = rng.normal(size=(200, 6))
    recommended = rng.integers(0, 200, (30, 10))
    recommended[3, 7:] = -1  # a short list
    liked_lists = [rng.choice(200, rng.integers(0, 12), replace=False) for _ in range(30)]
    liked_at = np.concatenate(liked_lists)
    liked_by = np.repeat(np.arange(30), [len(x) for x in liked_lists])
    why = reasons_by_similarity(items, recommended, liked_at, liked_by)
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    for user in range(30):
        shown = recommended[user] >= 0
        assert (why[user, ~shown] == -1).all()
        if not len(liked_lists[user]):
            assert (why[user] == -1).all()
            continue
        similarity = unit[recommended[user, shown]] @ unit[liked_lists[user]].T
        expected = liked_lists[user][np.argmax(similarity, axis=1)]
        assert why[user, shown].tolist() == expected.tolist()


def test_one_liked_movie_is_the_reason_for_at_most_so_many_of_a_row():
    rng = np.random.default_rng(8)
    items = rng.normal(size=(100, 4))
    liked_at = np.array([0, 1, 2, 10, 11])
    liked_by = np.array([0, 0, 0, 1, 1])
    # Every recommended movie is closest to liked movie 0 (user 0) and 10 (user 1).
    candidates = items[[0, 10]][:, None, :] + rng.normal(scale=0.01, size=(2, 6, 4))
    recommended = np.arange(12).reshape(2, 6)
    flat = candidates.reshape(12, 4)
    plain = reasons_by_similarity(items, recommended, liked_at, liked_by, candidates=flat)
    assert plain.tolist() == [[0] * 6, [10] * 6]
    capped = reasons_by_similarity(
        items, recommended, liked_at, liked_by, candidates=flat, most_uses=2
    )
    # Each liked movie names at most two; the first two keep the closest one; once every
    # liked movie of user 1 is spent, the closest one again.
    assert capped[0].tolist()[:2] == [0, 0] and sorted(capped[0].tolist()) == [0, 0, 1, 1, 2, 2]
    assert capped[1].tolist()[:2] == [10, 10]
    assert sorted(capped[1].tolist()[:4]) == [10, 10, 11, 11]
    assert capped[1].tolist()[4:] == [10, 10]

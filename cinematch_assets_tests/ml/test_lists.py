"""The served order in numpy: EASE against its definition, the blend with stars, the star
floor, the popularity penalty, the app's re-ranking for discovery, the exposure metrics
and the champion's choice. No Spark."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from cinematch_assets.ml.lists.build import (
    EASE_COLUMNS,
    FLOOR_PENALTY,
    EaseItems,
    EaseRanker,
    FactorRanker,
    GenreTaste,
    ListPolicy,
    ModelItems,
    NewMovies,
    NewRow,
    ScoreScale,
    UserBlock,
    build_lists,
    build_lists_each,
    zscore_rows,
)
from cinematch_assets.ml.lists.new_movies import (
    TitleWeightSearch,
    audience_cuts,
    tune_title_weight,
)
from cinematch_assets.ml.models.ease import EasePairs, fit_ease, gram, kept_movies
from cinematch_assets.ml.models.foldin import RatingTerms
from cinematch_assets.ml.models.titles import TitleLinks
from cinematch_assets.ml.selection.champion import choose
from cinematch_assets.ml.selection.metrics import gini
from cinematch_assets.serving import model_factors
from cinematch_assets.serving.known_users import with_discovery

RNG = np.random.default_rng(11)
MOVIES, RANK = 60, 4


def _saved(items: ModelItems, path: Path) -> ModelItems:
    """`items` written to `path` as model_factors.npz and read back."""
    return model_factors.read_model_factors(model_factors.write_model_factors(items, path))


def history(rows: list[list[int]], stars: float = 4.0) -> tuple[np.ndarray, ...]:
    at = np.concatenate([np.array(r, dtype=np.int64) for r in rows])
    by = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    return at, np.full(len(at), stars), by


def block(rows: list[list[int]], stars: float = 4.0) -> UserBlock:
    at, given, by = history(rows, stars)
    return UserBlock(
        user_ids=np.arange(len(rows)),
        factors=RNG.normal(size=(len(rows), RANK)).astype(np.float32),
        rated_at=at,
        rated_stars=given,
        rated_by=by,
        star_bias=np.zeros(len(rows)),
        star_factors=RNG.normal(scale=0.3, size=(len(rows), RANK)).astype(np.float32),
    )


def terms() -> RatingTerms:
    return RatingTerms(
        global_mean=3.5,
        item_bias=RNG.normal(scale=0.8, size=MOVIES).astype(np.float32),
        item_factors=RNG.normal(scale=0.3, size=(MOVIES, RANK)).astype(np.float32),
        reg_param=0.1,
        variant="bias_residual",
        bias_damping=3.0,
        nonnegative=False,
    )


def test_ease_weights_solve_the_closed_form():
    users = RNG.integers(0, 40, 600)
    items = RNG.integers(0, 25, 600)
    matrix = gram(users, items, 25)
    x = np.zeros((40, 25))
    x[users, items] = 1.0
    np.testing.assert_allclose(matrix, x.T @ x)
    b = fit_ease(matrix, 10.0).astype(np.float64)
    assert np.allclose(np.diag(b), 0.0)
    # The stationarity condition of min ||X - XB||^2 + lambda ||B||^2 s.t. diag(B) = 0:
    # off the diagonal, (X^T X + lambda I) B = X^T X.
    residual = (matrix + 10.0 * np.eye(25)) @ b - matrix
    off = ~np.eye(25, dtype=bool)
    np.testing.assert_allclose(residual[off], 0.0, atol=1e-4)
    kept = kept_movies(np.array([5, 3, 9, 7]), np.array([10, 30, 30, 1]), 2)
    assert list(kept) == [3, 9]  # most rated; a tie keeps the lower id first in line


def test_a_weighted_gram_is_that_of_the_weights():
    users = np.array([7, 7, 9, 9, 9])
    movies = np.array([0, 1, 0, 2, 0])  # user 9 rated movie 0 twice: its mean weight counts
    weights = np.array([0.5, 1.0, 0.2, 0.4, 0.6])
    x = np.array([[0.5, 1.0, 0.0], [0.4, 0.0, 0.4]])
    np.testing.assert_allclose(gram(users, movies, 3, weights), x.T @ x)
    binary = (x > 0).astype(float)
    np.testing.assert_allclose(gram(users, movies, 3), binary.T @ binary)
    with pytest.raises(ValueError, match="weight"):
        EasePairs(np.arange(3), users, movies).gram(True)


def test_ease_scores_are_the_sum_of_the_liked_movies_rows():
    weights = RNG.normal(size=(MOVIES, MOVIES)).astype(np.float32)
    np.fill_diagonal(weights, 0.0)
    ids = np.arange(MOVIES) + 100
    ranker = EaseRanker(ids, np.arange(MOVIES), weights)
    users = block([[1, 2, 3], [4], [5, 6]])
    low = block([[7]], stars=0.5)  # a 0.5-star rating never counts for similar movies
    out = np.empty((3, MOVIES), dtype=np.float32)
    ranker.scores(users)(0, 3, out)
    np.testing.assert_allclose(out[0], weights[[1, 2, 3]].sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(out[1], weights[4], rtol=1e-5)
    one = np.empty((1, MOVIES), dtype=np.float32)
    ranker.scores(low)(0, 1, one)
    assert not one.any()
    lists = build_lists(users, ranker, 5)
    for user, rated in enumerate([[1, 2, 3], [4], [5, 6]]):
        shown = lists.positions[user]
        assert not set(shown) & set(rated)
        # The reason: the liked movie with the largest weight toward the shown one.
        expected = [rated[int(np.argmax(weights[rated, j]))] for j in shown]
        assert list(lists.reasons[user]) == expected


def test_ease_scores_of_many_users_are_their_row_sums_bit_for_bit():
    # Past EASE_CHUNK_USERS the sums are taken a column slice at a time, chunk by chunk.
    movies = EASE_COLUMNS * 2 + 7
    weights = RNG.normal(size=(movies, movies)).astype(np.float32)
    ranker = EaseRanker(np.arange(movies), np.arange(movies), weights)
    rows = [list(RNG.choice(movies, RNG.integers(0, 40), replace=False)) for _ in range(1100)]
    users = block(rows)
    out = np.empty((len(rows), movies), dtype=np.float32)
    score = ranker.scores(users)
    for start in range(0, len(rows), 32):
        score(start, min(start + 32, len(rows)), out[start : start + 32])
    for user, rated in enumerate(rows):
        expected = weights[rated].sum(axis=0) if rated else np.zeros(movies)
        np.testing.assert_array_equal(out[user], expected)


def test_the_blend_puts_movies_below_the_star_floor_last():
    stars = terms()
    ranker = FactorRanker(np.arange(MOVIES), RNG.normal(size=(MOVIES, RANK)).astype(np.float32))
    users = block([[0], [1], [2], [3]])
    items = ModelItems(
        np.arange(MOVIES), ranker.items, 0.1, 2.0, stars,
        popularity=np.linspace(-2, 2, MOVIES).astype(np.float32),
    )  # fmt: skip
    plain = build_lists(users, items.ranker(ListPolicy("als")), MOVIES - 1, stars)
    floored = build_lists(users, items.ranker(ListPolicy("als", star_floor=3.0)), MOVIES - 1, stars)
    predicted = stars.predict_block(users.star_bias, users.star_factors, floored.positions)
    for user in range(4):
        below = predicted[user] < 3.0
        assert below.any() and not below.all()
        # Every movie above the floor comes first; each side keeps the plain order.
        assert not below[: (~below).sum()].any()
        order = [p for p in plain.positions[user] if p in set(floored.positions[user][~below])]
        assert list(floored.positions[user][~below]) == order
    assert FLOOR_PENALTY > 100


def test_stars_weight_and_popularity_penalty_move_the_order():
    stars = terms()
    items = ModelItems(
        np.arange(MOVIES), RNG.normal(size=(MOVIES, RANK)).astype(np.float32), 0.1, 2.0, stars,
        popularity=np.linspace(-2, 2, MOVIES).astype(np.float32),
    )  # fmt: skip
    users = block([[0, 1], [2], [3, 4, 5]])

    def mean_of(policy: ListPolicy, values: np.ndarray) -> float:
        return float(values[build_lists(users, items.ranker(policy), 10, stars).positions].mean())

    predicted = stars.predict_all(users.star_bias, users.star_factors).mean(axis=0)
    assert mean_of(ListPolicy("als", stars_weight=5.0), predicted) > mean_of(
        ListPolicy("als"), predicted
    )
    assert mean_of(ListPolicy("als", popularity_penalty=2.0), items.popularity) < mean_of(
        ListPolicy("als"), items.popularity
    )


def test_candidates_scored_together_equal_each_scored_alone():
    """The champion and the evaluation score many orders at once, sharing each model's
    scores and the stars per slice of users: the lists are exactly those of each order
    built on its own, for ALS and EASE (with its ALS fallback) alike."""
    stars = terms()
    factors = RNG.normal(size=(MOVIES, RANK)).astype(np.float32)
    kept = np.arange(0, MOVIES, 2)
    pairs = RNG.integers(0, len(kept), (2, 400))
    items = ModelItems(
        np.arange(MOVIES), factors, 0.1, 2.0, stars,
        popularity=np.linspace(-2, 2, MOVIES).astype(np.float32),
        ease=EaseItems(kept, fit_ease(gram(pairs[0], pairs[1], len(kept)), 10.0)),
    )  # fmt: skip
    policies = [
        ListPolicy(ranker, stars_weight=w, popularity_penalty=p, star_floor=floor, als_weight=a)
        for ranker, a in (("als", 0.0), ("ease", 0.0), ("ease", 0.5), ("ease", 2.0))
        for w in (0.0, 1.0) for p in (0.0, 0.5) for floor in (0.0, 3.0)
    ]  # fmt: skip
    # 70 users: three slices of the top-n (32 users each), each user with a history.
    users = block([[int(u % MOVIES), int((u * 7 + 3) % MOVIES)] for u in range(70)])
    together = build_lists_each(users, items.rankers(policies), 12, stars)
    assert len(together) == len(policies) == 32
    for policy in policies:
        alone = build_lists(users, items.ranker(policy), 12, stars)
        shared = together[policy.name]
        np.testing.assert_array_equal(shared.positions, alone.positions)
        np.testing.assert_allclose(shared.scores, alone.scores, rtol=1e-6)
        np.testing.assert_array_equal(shared.reasons, alone.reasons)
    # Scored without reasons (the champion's and the evaluation's candidate tables).
    unexplained = build_lists_each(users, items.rankers(policies), 12, stars, explain=False)
    for policy in policies:
        np.testing.assert_array_equal(
            unexplained[policy.name].positions, together[policy.name].positions
        )
        assert (unexplained[policy.name].reasons == -1).all()


def test_ease_with_als_adds_their_z_scores(tmp_path):
    """EASE blended with implicit ALS: EASE's z-scored score plus the weight times ALS's,
    the reasons EASE's; only EASE blends ALS in."""
    factors = RNG.normal(size=(MOVIES, RANK)).astype(np.float32)
    pairs = RNG.integers(0, MOVIES, (2, 400))
    items = ModelItems(
        np.arange(MOVIES), factors, 0.1, 2.0, terms(),
        popularity=np.zeros(MOVIES, np.float32),
        ease=EaseItems(np.arange(MOVIES), fit_ease(gram(pairs[0], pairs[1], MOVIES), 10.0)),
    )  # fmt: skip
    users = block([[1, 2, 3], [4, 5]])
    scores = {}
    for policy in (ListPolicy("ease"), ListPolicy("als"), ListPolicy("ease", als_weight=0.5)):
        out = np.empty((2, MOVIES), dtype=np.float32)
        items.ranker(policy).scores(users)(0, 2, out)
        scores[policy.als_weight, policy.ranker] = out
    np.testing.assert_allclose(
        scores[0.5, "ease"], scores[0.0, "ease"] + 0.5 * scores[0.0, "als"], atol=1e-5
    )
    blend = ListPolicy("ease", als_weight=0.5)
    assert (
        blend.name == "EASE + 0.5 x implicit ALS" and blend.id == "ease-als0.5-stars0-pop0-floor0"
    )
    mixed = build_lists(users, items.ranker(blend), 5)
    ease = build_lists(users, items.ranker(ListPolicy("ease")), 5)
    assert set(mixed.reasons.ravel()) <= {1, 2, 3, 4, 5}  # a liked movie, as EASE's
    assert mixed.positions.shape == ease.positions.shape
    assert _saved(replace(items, policy=blend), tmp_path / "f.npz").policy == blend
    with pytest.raises(ValueError, match="only EASE"):
        ListPolicy("als", als_weight=0.5)


def test_discovery_on_a_served_list_is_the_served_order_with_a_larger_penalty():
    """The app re-ranks a user's served pool: exactly what the served order gives with the
    penalty raised, among the same movies."""
    stars = terms()
    items = ModelItems(
        np.arange(MOVIES) + 1, RNG.normal(size=(MOVIES, RANK)).astype(np.float32), 0.1, 2.0,
        stars, popularity=RNG.normal(size=MOVIES).astype(np.float32),
        policy=ListPolicy("als", stars_weight=1.0, popularity_penalty=0.1, star_floor=3.0),
    )  # fmt: skip
    users = block([[0, 1, 2]])
    pool = build_lists(users, items.ranker(), 30, stars)
    served = [
        {"movieId": int(items.movie_ids[p]), "score": float(s)}
        for p, s in zip(pool.positions[0], pool.scores[0], strict=True)
    ]
    bolder = ListPolicy("als", stars_weight=1.0, popularity_penalty=0.6, star_floor=3.0)
    full = build_lists(users, items.ranker(bolder), MOVIES, stars).positions[0]
    in_pool = [int(items.movie_ids[p]) for p in full if p in set(pool.positions[0])]
    rerun = [e["movieId"] for e in with_discovery(items, served, 0.5, 10)]
    assert rerun == in_pool[:10]
    assert with_discovery(items, served, 0.0, 10) == served[:10]


def test_model_items_round_trip_with_ease_and_policy(tmp_path):
    stars = terms()
    kept = np.arange(0, MOVIES, 2)
    items = ModelItems(
        np.arange(MOVIES) + 1, RNG.normal(size=(MOVIES, RANK)).astype(np.float32), 0.1, 2.0,
        stars, popularity=RNG.normal(size=MOVIES).astype(np.float32),
        policy=ListPolicy("ease", 0.5, 0.25, 3.0),
        ease=EaseItems(kept, RNG.normal(size=(len(kept), len(kept))).astype(np.float32)),
    )  # fmt: skip
    again = model_factors.read_model_factors(
        model_factors.write_model_factors(items, tmp_path / "m.npz")
    )
    assert again.policy == items.policy
    np.testing.assert_array_equal(again.ease.weights, items.ease.weights)
    # EASE over half the movies: the ranking model ranks the rest (the fallback).
    ranker = again.ranker()
    assert ranker.base.fallback is not None
    lists = build_lists(block([[1, 2, 3]]), ranker, 20, stars)
    assert (lists.positions[0] >= 0).all()
    with pytest.raises(ValueError, match="EASE"):
        model_factors.from_arrays(
            {k: v for k, v in model_factors.to_arrays(items).items() if not k.startswith("ease")}
        )


def test_zscore_rows():
    scores = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]], dtype=np.float32)
    zscore_rows(scores)
    np.testing.assert_allclose(scores[0], [-1.2247449, 0.0, 1.2247449], rtol=1e-5)
    assert not scores[1].any()  # no spread: every movie at the mean


@pytest.mark.parametrize("with_bias", [False, True])
def test_a_factor_rankers_closed_form_zscores_are_its_zscored_scores(with_bias):
    ranker = FactorRanker(
        np.arange(MOVIES),
        RNG.normal(size=(MOVIES, RANK)).astype(np.float32),
        RNG.normal(size=MOVIES).astype(np.float32) if with_bias else None,
    )
    users = block([[1], [2, 3], []])
    users.factors[2] = 0  # no factors: only the bias, if any, spreads the scores
    expected = np.empty((3, MOVIES), np.float32)
    ranker.scores(users)(0, 3, expected)
    zscore_rows(expected)
    got = np.empty_like(expected)
    ranker.zscored(users)(0, 3, got)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_gini_of_exposure():
    assert gini(np.array([5.0, 5.0, 5.0, 5.0])) == pytest.approx(0.0)
    assert gini(np.array([0.0, 0.0, 0.0, 8.0])) == pytest.approx(0.75)  # (n-1)/n
    assert gini(np.zeros(3)) == 0.0


def test_the_champion_is_the_best_ndcg_among_the_covering_candidates():
    a, b, c = ListPolicy("als"), ListPolicy("ease"), ListPolicy("als", popularity_penalty=0.5)
    scores = {
        a.name: {"ndcg": 0.30, "coverage": 0.20},
        b.name: {"ndcg": 0.28, "coverage": 0.26},
        c.name: {"ndcg": 0.25, "coverage": 0.40},
    }
    chosen = choose([a, b, c], scores, 0.25)
    assert chosen.policy == b and "2 candidates" in chosen.why
    assert choose([a, b, c], scores, 0.5).policy == a  # none covers enough: best NDCG


def new_movies(threshold: float, slots: int = 2, count: int = 8) -> NewMovies:
    return NewMovies(
        movie_ids=np.arange(count) + 1000,
        ranking_items=RNG.normal(size=(count, RANK)).astype(np.float32),
        rating_bias=np.full(count, 0.5, np.float32),
        rating_items=np.zeros((count, RANK), np.float32),
        threshold=threshold,
        slots=slots,
    )


def test_the_score_scale_is_the_users_spread_over_the_known_movies():
    known = RNG.normal(size=(MOVIES, RANK)).astype(np.float32)
    users = RNG.normal(size=(3, RANK)).astype(np.float32)
    raw = users @ known.T
    expected = (raw - raw.mean(axis=1, keepdims=True)) / raw.std(axis=1, keepdims=True)
    scale = ScoreScale.of(known)
    np.testing.assert_allclose(scale.standardize(users, raw), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(scale.standardize(users, raw[:, 0]), expected[:, 0], rtol=1e-4)
    # A user with no factor has no scale: never a number a threshold could pass.
    assert np.isnan(scale.standardize(np.zeros((1, RANK)), np.zeros((1, 2)))).all()


def test_new_movies_take_the_last_shown_places_when_they_clear_the_threshold():
    stars = terms()
    items = ModelItems(
        np.arange(MOVIES), RNG.normal(size=(MOVIES, RANK)).astype(np.float32), 0.1, 2.0, stars,
        popularity=np.zeros(MOVIES, np.float32), policy=ListPolicy("als"),
    )  # fmt: skip
    users = block([[0, 1], [2], [3, 4, 5]])
    plain = build_lists(users, items.ranker(), 12, stars)
    everyone = replace(items, new=new_movies(threshold=-np.inf))
    lists = build_lists(
        users, everyone.ranker(), 12, stars, new=everyone.new_slots(10),
        rated_new=[np.array([0]), np.array([], np.int64), np.array([], np.int64)],
    )  # fmt: skip
    assert lists.new is not None
    for user in range(3):
        # Places 9 and 10 of the shown ten; the known ones move down, the length stays.
        assert lists.new[user].tolist() == [False] * 8 + [True, True] + [False] * 2
        known = lists.positions[user][~lists.new[user]]
        assert known.tolist() == plain.positions[user][:10].tolist()
        picked = lists.positions[user][lists.new[user]] - MOVIES
        mine = users.factors[user : user + 1]
        z = ScoreScale.of(items.ranking_items).standardize(
            mine, mine @ everyone.new.ranking_items.T
        )[0]
        if user == 0:
            z[0] = -np.inf  # user 0 rated the first new movie
        assert picked.tolist() == np.argsort(-z, kind="stable")[:2].tolist()
    # The reason of a new movie is one of the user's liked (known) movies.
    assert lists.reasons[0][8] in (0, 1)
    # A threshold no movie reaches, or no slots: the plain list.
    for new in (new_movies(threshold=np.inf), new_movies(threshold=-np.inf, slots=0)):
        other = replace(items, new=new)
        same = build_lists(users, other.ranker(), 12, stars, new=other.new_slots(10))
        assert same.positions.tolist() == plain.positions.tolist()
        assert same.new is None or not same.new.any()


def test_a_new_movie_goes_only_to_the_users_it_suits_best():
    """Its audience cut: the z-score of the share of users it suits best. Below it, a
    user does not get the movie, however high the threshold lets it through; the cut is
    the share's quantile of the users' own-scale scores."""
    stars = terms()
    known = RNG.normal(size=(MOVIES, RANK)).astype(np.float32)
    new = new_movies(threshold=-np.inf, slots=1, count=3)
    users = block([[u % MOVIES] for u in range(40)])
    scale = ScoreScale.of(known)
    cuts = audience_cuts(users.factors, new.ranking_items, scale, 0.25)
    z = scale.standardize(users.factors, users.factors @ new.ranking_items.T)
    np.testing.assert_allclose(cuts, np.quantile(z, 0.75, axis=0), rtol=1e-5)
    assert np.isneginf(audience_cuts(users.factors, new.ranking_items, scale, 1.0)).all()
    items = ModelItems(
        np.arange(MOVIES), known, 0.1, 2.0, stars, popularity=np.zeros(MOVIES, np.float32),
        new=replace(new, audience=cuts.astype(np.float32)),
    )  # fmt: skip
    lists = build_lists(users, items.ranker(), 10, stars, new=items.new_slots(10))
    picked = np.where(lists.new, lists.positions - MOVIES, -1)
    for movie in range(3):
        takers = (picked == movie).any(axis=1)
        assert 0 < takers.sum() <= 10  # a quarter of 40 users at most
        assert (z[takers, movie] >= cuts[movie] - 1e-5).all()


def test_a_new_movie_predicted_below_the_star_floor_never_takes_a_slot():
    stars = terms()
    items = ModelItems(
        np.arange(MOVIES), RNG.normal(size=(MOVIES, RANK)).astype(np.float32), 0.1, 2.0, stars,
        popularity=np.zeros(MOVIES, np.float32), policy=ListPolicy("als", star_floor=3.0),
        new=replace(new_movies(threshold=-np.inf), rating_bias=np.full(8, -1.5, np.float32)),
    )  # fmt: skip
    users = block([[0], [1]])  # star bias 0: 3.5 - 1.5 = 2 stars for every new movie
    lists = build_lists(users, items.ranker(), 10, stars, new=items.new_slots(10))
    assert lists.new is None or not lists.new.any()


def test_a_short_list_gets_its_new_movies_right_after_the_known_ones():
    stars = terms()
    items = ModelItems(
        np.arange(MOVIES), RNG.normal(size=(MOVIES, RANK)).astype(np.float32), 0.1, 2.0, stars,
        popularity=np.zeros(MOVIES, np.float32), new=new_movies(threshold=-np.inf),
    )  # fmt: skip
    users = block([list(range(MOVIES - 3))])  # three unrated known movies left
    lists = build_lists(users, items.ranker(), 10, stars, new=items.new_slots(10))
    assert lists.new[0].tolist() == [False] * 3 + [True] * 2 + [False] * 5
    assert (lists.positions[0][5:] == -1).all()


def test_a_list_shorter_than_the_shown_places_gets_new_movies_in_its_own_last_places():
    """Lists of 7 (a serving `n` or an evaluation `k` under the 10 shown): the new
    movies take places 6 and 7, never places past the list's end."""
    stars = terms()
    items = ModelItems(
        np.arange(MOVIES), RNG.normal(size=(MOVIES, RANK)).astype(np.float32), 0.1, 2.0, stars,
        popularity=np.zeros(MOVIES, np.float32), new=new_movies(threshold=-np.inf),
    )  # fmt: skip
    users = block([[0], [1, 2]])
    plain = build_lists(users, items.ranker(), 7, stars)
    lists = build_lists(users, items.ranker(), 7, stars, new=items.new_slots(10))
    for user in range(2):
        assert lists.new[user].tolist() == [False] * 5 + [True] * 2
        known = lists.positions[user][~lists.new[user]]
        assert known.tolist() == plain.positions[user][:5].tolist()


def test_model_items_keep_their_new_movies_through_the_npz(tmp_path):
    stars = terms()
    items = ModelItems(
        np.arange(MOVIES), RNG.normal(size=(MOVIES, RANK)).astype(np.float32), 0.1, 2.0, stars,
        popularity=np.zeros(MOVIES, np.float32), new=new_movies(threshold=1.25, slots=3),
    )  # fmt: skip
    loaded = model_factors.read_model_factors(
        model_factors.write_model_factors(items, tmp_path / "f.npz")
    )
    assert loaded.new is not None
    assert loaded.new.threshold == 1.25 and loaded.new.slots == 3
    np.testing.assert_array_equal(loaded.new.ranking_items, items.new.ranking_items)
    assert loaded.new.audience is None  # as in artifacts written before the audience cut
    cut = replace(items, new=replace(items.new, audience=np.linspace(0, 1, 8, dtype=np.float32)))
    np.testing.assert_array_equal(
        model_factors.read_model_factors(
            model_factors.write_model_factors(cut, tmp_path / "g.npz")
        ).new.audience,
        cut.new.audience,
    )
    with pytest.raises(ValueError, match="new movies"):
        model_factors.from_arrays(
            model_factors.to_arrays(cut) | {"new_audience": np.zeros(3, np.float32)}
        )
    broken = model_factors.to_arrays(items) | {"new_rating_bias": np.zeros(3, np.float32)}
    with pytest.raises(ValueError, match="new movies"):
        model_factors.from_arrays(broken)


def with_row(
    new: NewMovies, *, links: np.ndarray | None = None, fresh=None, audience=None, weight=4.0
) -> NewMovies:
    """`new` with a "New for you" row of 3: no audience cut, nothing fresh, no titles
    alike, unless given (`links`: new x known title similarities)."""
    count = len(new.movie_ids)
    links = np.zeros((count, MOVIES), np.float32) if links is None else links
    return replace(
        new,
        row=NewRow(
            size=3,
            audience=np.full(count, -np.inf, np.float32) if audience is None else audience,
            fresh=np.zeros(count, bool) if fresh is None else fresh,
            links=TitleLinks(sparse.csr_matrix(links)),
            title_weight=weight,
        ),
    )


def row_items(new: NewMovies, floor: float = 0.0) -> ModelItems:
    return ModelItems(
        np.arange(MOVIES), RNG.normal(size=(MOVIES, RANK)).astype(np.float32), 0.1, 2.0, terms(),
        popularity=np.zeros(MOVIES, np.float32), policy=ListPolicy("als", star_floor=floor),
        new=new,
    )  # fmt: skip


def test_the_new_for_you_row_is_the_best_fits_by_z_score_leaving_out_rated_ones():
    items = row_items(with_row(new_movies(threshold=np.inf, slots=0)))
    users = block([[0, 1], [2]])
    picks = items.new_for_you(users, [np.array([0]), np.array([], np.int64)])
    z = ScoreScale.of(items.ranking_items).standardize(
        users.factors, users.factors @ items.new.ranking_items.T
    )
    z[0, 0] = -np.inf  # user 0 rated the first new movie
    for user in range(2):
        assert picks.positions[user].tolist() == np.argsort(-z[user], kind="stable")[:3].tolist()
        np.testing.assert_allclose(picks.scores[user], np.sort(z[user])[::-1][:3], rtol=1e-5)
    assert not picks.by_title.any()
    # The top list's slots and threshold play no part: no new movie in the top list.
    assert items.new_slots(10) is None


def test_a_title_like_one_the_user_rated_highly_lifts_the_new_movie_and_is_its_reason():
    """New movie 5 is titled like known movie 7: user 0 liked movie 7, user 1 only rated
    it 2 stars. With the title weight the sequel leads user 0's row, with the film
    of its title as the reason; user 1's row does not change."""
    links = np.zeros((8, MOVIES), np.float32)
    links[5, 7] = 0.8
    items = row_items(with_row(new_movies(threshold=np.inf), links=links, weight=100.0))
    users = block([[7, 3], [7]])
    users = replace(users, rated_stars=np.array([5.0, 4.0, 2.0]))
    picks = items.new_for_you(users)
    assert picks.positions[0][0] == 5 and picks.by_title[0][0] and picks.reasons[0][0] == 7
    plain = replace(items, new=with_row(items.new, weight=100.0)).new_for_you(users)
    assert picks.positions[1].tolist() == plain.positions[1].tolist()
    assert not picks.by_title[1].any()


def test_the_row_offers_a_movie_only_past_its_audience_cut_fresh_ones_first_and_floored():
    new = new_movies(threshold=np.inf)
    users = block([[u % MOVIES] for u in range(12)])
    # Movie 2 is offered to no one; movies 6 and 7 are fresh.
    audience = np.full(8, -np.inf, np.float32)
    audience[2] = np.inf
    fresh = np.zeros(8, bool)
    fresh[[6, 7]] = True
    picks = row_items(with_row(new, audience=audience, fresh=fresh)).new_for_you(users)
    assert not (picks.positions == 2).any()
    assert (np.sort(picks.positions[:, :2], axis=1) == [6, 7]).all()
    assert (picks.scores[:, 0] >= picks.scores[:, 1]).all()  # each part by fit
    # Predicted below the star floor: never in the row (3.5 - 1.5 = 2 stars each).
    low = replace(with_row(new), rating_bias=np.full(8, -1.5, np.float32))
    assert (row_items(low, floor=3.0).new_for_you(users).positions == -1).all()


def test_model_items_keep_their_new_for_you_row_through_the_npz(tmp_path):
    links = np.zeros((8, MOVIES), np.float32)
    links[5, 7], links[1, 3] = 0.8, 0.4
    fresh = np.arange(8) % 2 == 0
    new = with_row(new_movies(threshold=1.0), links=links, fresh=fresh,
                   audience=np.linspace(-1, 1, 8, dtype=np.float32))  # fmt: skip
    loaded = _saved(row_items(new), tmp_path / "f.npz").new.row
    assert loaded.size == 3 and loaded.title_weight == 4.0
    np.testing.assert_array_equal(loaded.fresh, fresh)
    np.testing.assert_array_equal(loaded.audience, new.row.audience)
    np.testing.assert_array_equal(loaded.links.matrix.toarray(), links)


def test_the_title_weight_is_the_one_that_finds_the_held_out_movies_people_liked():
    """Validation of the title weight: 40 users each liked known movie u % 10 and held-out
    movie 50 + u % 10. When each held-out movie's title is like that of the known movie its
    likers liked, a heavier title weight finds it; when titles link the wrong movies,
    weight 0 does best."""
    known = RNG.normal(size=(MOVIES, RANK)).astype(np.float32)
    scale = ScoreScale.of(known)
    tuning_at = np.arange(50, 60)
    liked = [[u % 10, 50 + u % 10] for u in range(40)]
    users = block(liked)

    def search(linked: np.ndarray) -> TitleWeightSearch:
        links = np.zeros((10, MOVIES), np.float32)
        links[np.arange(10), linked] = 1.0
        tuning = with_row(
            replace(new_movies(threshold=np.inf, count=10), ranking_items=known[tuning_at]),
            links=links,
        )
        return tune_title_weight(users, tuning, tuning_at, scale, [0.0, 1.0, 4.0], default=1.0)

    right = search(np.arange(10))
    assert right.mean(4.0) > right.mean(1.0) > right.mean(0.0) and right.mean(4.0) > 0.95
    assert right.users == 40 and right.chosen == 4.0
    wrong = search((np.arange(10) + 1) % 10)
    assert wrong.mean(0.0) > wrong.mean(4.0) and wrong.chosen == 0.0
    # Users none of whose liked movies shares a title with a held-out one cannot tell.
    nobody = 20  # a known movie nobody liked
    assert search(np.where(np.arange(10) < 5, np.arange(10), nobody)).users == 20
    lonely = search(np.full(10, nobody))
    assert lonely.users == 0 and lonely.chosen == 1.0


def test_the_title_weight_moves_from_its_prior_only_on_evidence():
    """A weight better than the prior by less than twice the paired standard error does
    not replace it; one better by more does."""
    rng = np.random.default_rng(3)
    prior = rng.uniform(0, 1, 200)
    noisy = prior + rng.normal(0.01, 0.2, 200)  # a hair better on average, mostly noise
    search = TitleWeightSearch({0.0: noisy, 2.0: prior}, default=2.0)
    gain, error = search.versus_default(0.0)
    assert 0 < gain < 2 * error and search.chosen == 2.0
    clear = TitleWeightSearch({0.0: prior + 0.05 + rng.normal(0, 0.01, 200), 2.0: prior}, 2.0)
    assert clear.chosen == 0.0
    assert [row["chosen"] for row in clear.table()] == [True, False]


def test_the_genre_taste_follows_a_clear_taste_and_barely_moves_a_broad_one():
    """Movies 0-9 animated, the rest of two other genres in turn; everyone's likes are a
    tenth animated. A user who liked only animated films gets animation up (and the
    others down) far more than a user whose likes look like everyone's gets anything."""
    genres = np.zeros((MOVIES, 3), np.float32)
    genres[:10, 0] = 1.0
    genres[np.arange(10, MOVIES), 1 + np.arange(MOVIES - 10) % 2] = 1.0
    taste = GenreTaste(genres, np.array([0.1, 0.45, 0.45]))
    users = block([list(range(8)), [0, 10, 11, 12, 13, 14, 15, 16, 17, 18]])
    scores = np.zeros((2, MOVIES), np.float32)
    taste.scores(users)(0, 2, scores)
    clear, broad = scores
    assert clear[:10].min() > 2 and clear[10:].max() < 0
    assert np.abs(broad).max() < 0.5 * clear[:10].min()
    # In the served order, with its weight; and the policy says so in its name and id.
    items = ModelItems(
        np.arange(MOVIES), RNG.normal(size=(MOVIES, RANK)).astype(np.float32), 0.1, 2.0,
        terms(), popularity=np.zeros(MOVIES, np.float32), taste=taste,
        policy=ListPolicy("als", taste_weight=3.0),
    )  # fmt: skip
    lists = build_lists(block([list(range(5))]), items.ranker(), 5)
    assert (lists.positions[0] < 10).all()  # the five animated films left
    assert items.policy.id.endswith("-taste3") and "genre taste" in items.policy.name
    assert ListPolicy("als").id == "als-stars0-pop0-floor0"  # ids without taste unchanged
    loaded = _saved(items, Path(tempfile.mkdtemp()) / "f.npz")
    np.testing.assert_array_equal(loaded.taste.genres, genres)
    assert loaded.policy == items.policy
    with pytest.raises(ValueError, match="no genres"):
        replace(items, taste=None).ranker()


def test_ease_weights_from_the_cholesky_factor_are_the_inverse_s():
    """B through X^T X + lambda I's Cholesky factor, in place, is B through its general
    inverse (the definition) to 1e-6, at sizes that cross the mirroring's blocks."""
    rng = np.random.default_rng(2)
    for movies in (3, 1_100):
        x = (rng.random((3 * movies, movies)) < 0.05).astype(np.float64)
        matrix = x.T @ x
        for reg in (0.5, 300.0):
            inverse = np.linalg.inv(matrix + reg * np.eye(movies))
            expected = -inverse / np.diag(inverse)
            np.fill_diagonal(expected, 0.0)
            np.testing.assert_allclose(fit_ease(matrix, reg), expected, atol=1e-6, rtol=0)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        fit_ease(-np.eye(3), 0.5)

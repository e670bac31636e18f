"""The next period's parts: the time cut and its features, RP3beta, the sequence model
with its ranker, and what the cards say."""

import numpy as np
import pytest
from scipy import sparse

from cinematch_assets.ml.lists.build import UserBlock, build_lists
from cinematch_assets.ml.lists.sequence import SequenceRanker
from cinematch_assets.ml.models.ease import EasePairs
from cinematch_assets.ml.models.rp3 import rp3_weights, walk_weights
from cinematch_assets.ml.models.sequence import (
    Histories,
    SequenceGrams,
    SequenceModel,
    SequenceParams,
)
from cinematch_assets.ml.selection.next_period import cutoff_time, split_at
from cinematch_assets.reports.evaluation import next_period_sentence, with_next_period

RNG = np.random.default_rng(5)


def test_rp3beta_is_the_three_step_walk_over_popularity_to_beta():
    users = RNG.integers(0, 30, 300)
    movies = RNG.integers(0, 12, 300)
    x = np.zeros((30, 12))
    x[users, movies] = 1.0
    # One pair per (user, movie), as the ratings are.
    pairs = np.unique(np.column_stack([users, movies]), axis=0)
    walk = walk_weights(EasePairs(np.arange(12), pairs[:, 0], pairs[:, 1]))
    counts = x.sum(axis=0)
    from_movie = x.T / np.maximum(counts, 1)[:, None]  # movie -> user
    from_user = x / np.maximum(x.sum(axis=1), 1)[:, None]  # user -> movie
    expected = (from_movie @ from_user) / np.maximum(counts, 1)[None, :] ** 0.5
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(rp3_weights(walk, counts, 0.5), expected, rtol=1e-5, atol=1e-7)


def test_the_sequence_model_learns_what_comes_next():
    """Everyone watches 0, then 1, then 2 (and 3 at random): after 0 comes 1, after 1 comes
    2. A user whose latest movie is 1 gets 2 first; one whose latest is 0 gets 1."""
    users, positions = [], []
    for user in range(40):
        order = [0, 1, 2]
        order.insert(int(RNG.integers(0, 4)), 3)
        users += [user] * 4
        positions += order
    histories = Histories(np.array(users), np.array(positions))
    examples, sources, weights = histories.lagged(window=2, decay=0.5)
    assert len(examples) == 40 * (3 + 2)  # three lag-1 and two lag-2 pairs a user
    assert set(weights) == {1.0, 0.5}
    w = SequenceGrams.of_histories(histories, np.arange(4) + 10, 2, 0.5, 4).model(1.0).weights
    assert np.argmax(w[0, :3]) == 1 and np.argmax(w[1, :3]) == 2
    model = SequenceModel(np.arange(4) + 10, w, SequenceParams(1.0, 2, 0.5, 4))
    # Profiles: the latest movie weighs 1, the one before it the decay.
    latest = Histories(np.array([5, 5, 6]), np.array([3, 1, 0]))
    ids, profiles = latest.profiles(2, 0.5, 4)
    assert list(ids) == [5, 6]
    np.testing.assert_allclose(profiles.toarray(), [[0, 1, 0, 0.5], [1, 0, 0, 0]])
    ranker = SequenceRanker.of(model, latest)
    block = UserBlock(
        user_ids=np.array([5, 6, 99]), factors=np.zeros((3, 0), np.float32),
        rated_at=np.array([3, 1, 0]), rated_stars=np.full(3, 4.0), rated_by=np.array([0, 0, 1]),
    )  # fmt: skip
    lists = build_lists(block, ranker, 1)
    assert list(lists.positions[:2, 0]) == [2, 1]
    out = np.empty((3, 4), np.float32)
    ranker.scores(block)(0, 3, out)
    assert not out[2].any()  # no profile: nothing to go on
    assert isinstance(ranker.profiles, sparse.csr_matrix)


def test_the_cut_leaves_the_share_after_it_and_features_from_before_only(spark):
    day = 86_400
    rows = [(1, m, 4.0, m * day) for m in range(1, 11)] + [(2, m, 3.0, m * day) for m in (1, 2)]
    rows += [(3, 10, 5.0, 10 * day)]  # rates only after T: not in the next period
    ratings = spark.createDataFrame(rows, "userId int, movieId int, rating double, timestamp long")
    ratings = ratings.withColumn("rated_at", ratings["timestamp"].cast("timestamp"))
    cutoff = cutoff_time(ratings, 0.25)
    assert cutoff == 8 * day  # the 0.75 quantile of the 13 times: 4 ratings at or after it
    before, after = split_at(ratings, cutoff, half_life_days=1.0, reference="user_latest")
    assert sorted((r.userId, r.movieId) for r in after.collect()) == [(1, 8), (1, 9), (1, 10)]
    mine = {r.movieId: r for r in before.filter("userId = 1").collect()}
    assert set(mine) == set(range(1, 8))
    # The decay weight counts from the user's latest rating before T, not after it.
    assert mine[7].weight == pytest.approx(1.0) and mine[6].weight == pytest.approx(0.5)
    assert mine[7].user_mean == pytest.approx(4.0)
    with pytest.raises(ValueError, match="share_after"):
        cutoff_time(ratings, 1.0)


def test_the_model_card_says_how_the_served_order_does_next_period():
    details = {
        "cutoff": "2014-04-06 09:09 UTC", "users": 21, "recent_days": 28,
        "ndcg_served": 0.2, "ndcg_recently_popular": 0.1, "ndcg_difference": 0.1,
        "ndcg_difference_ci": 0.04,
    }  # fmt: skip
    sentence = next_period_sentence(details)
    assert "the served order beat the movies most rated in the 28 days before" in sentence
    assert "+0.1000 ± 0.0400" in sentence
    card = with_next_period("# Card\n\nbody\n", details)
    again = with_next_period(card, details | {"ndcg_difference": -0.1})
    assert again.count("## On the next period") == 1 and "lost to" in again
    assert again.startswith("# Card\n\nbody\n")
    assert "tied with" in next_period_sentence(details | {"ndcg_difference_ci": 0.2})

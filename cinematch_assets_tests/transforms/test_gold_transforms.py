"""Gold: activity filter (one pass and k-core), split, time decay, user-bias normalization."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from cinematch_assets.transforms.gold import (
    TEST,
    TRAIN,
    annotate_activity,
    assign_split,
    decay_weight,
    holdout_features,
    movie_below,
    training_features,
    user_below,
    user_stats,
)
from cinematch_assets.transforms.quality import partition_counts
from cinematch_assets.transforms.reconcile import KEPT, kept_rows, reason_counts

DAY = 86_400
RATINGS = "userId int, movieId int, rating double, timestamp long"


@pytest.fixture(scope="module")
def chain(spark):
    """User 1 rates movies 1-3, user 2 rates 1-2, user 3 rates movie 3 only.

    With thresholds (2 users, 2 movies) one pass drops user 3 (1 rating); movie 3 has two
    ratings (users 1 and 3) so it stays. The k-core drops movie 3 too, since once user 3
    is gone only user 1 rated it.
    """
    rows = [
        (1, 1, 4.0, 1),
        (1, 2, 3.0, 2),
        (1, 3, 5.0, 3),
        (2, 1, 2.0, 4),
        (2, 2, 4.0, 5),
        (3, 3, 1.0, 6),
    ]
    return spark.createDataFrame(rows, RATINGS)


def test_one_pass_filter_counts_on_the_input(chain):
    annotated = annotate_activity(chain, min_user_ratings=2, min_movie_ratings=2)
    assert reason_counts(annotated) == {KEPT: 5, user_below(2): 1}
    assert {(r.userId, r.movieId) for r in kept_rows(annotated).collect()} == {
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 1),
        (2, 2),
    }


def test_k_core_filter_repeats_until_stable(chain):
    annotated = annotate_activity(chain, min_user_ratings=2, min_movie_ratings=2, mode="k_core")
    assert reason_counts(annotated) == {KEPT: 4, user_below(2): 1, movie_below(2): 1}
    kept = kept_rows(annotated)
    users = kept.groupBy("userId").count().agg(F.min("count")).first()[0]
    movies = kept.groupBy("movieId").count().agg(F.min("count")).first()[0]
    assert users >= 2 and movies >= 2


def test_unknown_filter_mode_is_a_clear_error(chain):
    with pytest.raises(ValueError, match="one_pass"):
        annotate_activity(chain, min_user_ratings=1, min_movie_ratings=1, mode="sometimes")


@pytest.fixture(scope="module")
def many(spark):
    rows = [
        (u, m, float(1 + (u + m) % 5), 1_000_000 + m * DAY)
        for u in range(1, 101)
        for m in range(1, 51)
    ]
    return spark.createDataFrame(rows, RATINGS)


def test_random_split_is_seeded_sized_and_partition_independent(many):
    split = assign_split(many, test_fraction=0.2, seed=7)
    test_share = split.filter(F.col("split") == TEST).count() / 5000
    assert 0.18 < test_share < 0.22
    again = sorted(assign_split(many.repartition(5), test_fraction=0.2, seed=7).collect())
    assert sorted(split.collect()) == again
    other = assign_split(many, test_fraction=0.2, seed=8)
    assert sorted(other.collect()) != sorted(split.collect())


def test_temporal_split_holds_out_each_users_latest(many):
    split = assign_split(many, strategy="temporal", test_fraction=0.2)
    test = split.filter(F.col("split") == TEST)
    assert test.count() == 100 * 10
    # Every user's test ratings are newer than all of their training ratings.
    bounds = split.groupBy("userId").agg(
        F.max(F.when(F.col("split") == TRAIN, F.col("timestamp"))).alias("last_train"),
        F.min(F.when(F.col("split") == TEST, F.col("timestamp"))).alias("first_test"),
    )
    assert bounds.filter(F.col("first_test") <= F.col("last_train")).count() == 0


def test_split_rejects_bad_fraction(many):
    with pytest.raises(ValueError, match="test_fraction"):
        assign_split(many, test_fraction=1.0)


def test_decay_weight_halves_every_half_life(spark):
    ages = spark.createDataFrame([(0,), (30 * DAY,), (60 * DAY,), (-5 * DAY,)], "age long")
    weights = [r[0] for r in ages.select(decay_weight(F.col("age"), 30.0)).collect()]
    assert weights == pytest.approx([1.0, 0.5, 0.25, 1.0])
    with pytest.raises(ValueError):
        decay_weight(F.col("age"), 0)


def test_features_use_training_data_only(spark):
    rows = [
        # user 1: train 4.0 @ day 0 and 2.0 @ day 10; test 5.0 @ day 20 (must not leak)
        (1, 1, 4.0, 0, TRAIN),
        (1, 2, 2.0, 10 * DAY, TRAIN),
        (1, 3, 5.0, 20 * DAY, TEST),
        (2, 1, 3.0, 5 * DAY, TRAIN),
        (3, 1, 1.0, 5 * DAY, TEST),  # a user seen only in test
    ]
    split = spark.createDataFrame(rows, RATINGS + ", split string").withColumn(
        "rated_at", F.timestamp_seconds("timestamp")
    )
    train, test = split.filter("split = 'train'"), split.filter("split = 'test'")
    stats = user_stats(train)
    assert {r.userId: (r.user_mean, r.train_ratings) for r in stats.collect()} == {
        1: (3.0, 2),
        2: (3.0, 1),
    }

    feats = {
        (r.userId, r.movieId): r
        for r in training_features(train, stats, half_life_days=10).collect()
    }
    assert feats[(1, 1)].rating_norm == pytest.approx(1.0)
    assert feats[(1, 2)].rating_norm == pytest.approx(-1.0)
    # Reference is the user's latest *training* rating (day 10), not the test one (day 20).
    assert feats[(1, 1)].weight == pytest.approx(0.5)
    assert feats[(1, 2)].weight == pytest.approx(1.0)

    by_end = {
        (r.userId, r.movieId): r.weight
        for r in training_features(
            train, stats, half_life_days=10, reference="dataset_end"
        ).collect()
    }
    assert by_end[(2, 1)] == pytest.approx(0.5**0.5)  # day 5 vs training end at day 10

    held = {(r.userId, r.movieId): r for r in holdout_features(test, stats).collect()}
    assert held[(1, 3)].user_mean == 3.0 and held[(1, 3)].rating_norm == pytest.approx(2.0)
    assert held[(3, 1)].user_mean is None  # unseen user: the model falls back to a baseline


def test_a_split_partitions_the_filtered_ratings_in_one_pass(spark):
    """Train and test partition the filtered pairs: counted in one shuffle, and each way
    they can fail is counted by itself."""
    pairs = "userId int, movieId int"
    whole = spark.createDataFrame([(1, 1), (1, 2), (2, 1), (2, 2)], pairs)

    def counts(train: list, test: list) -> dict:
        parts = {"train": spark.createDataFrame(train, pairs),
                 "test": spark.createDataFrame(test, pairs)}  # fmt: skip
        return partition_counts(parts, whole, ["userId", "movieId"])

    clean = counts([(1, 1), (2, 2)], [(1, 2), (2, 1)])
    assert clean == {
        "train_rows": 2, "test_rows": 2, "whole_rows": 4, "in_train_and_test": 0,
        "whole_but_missing": 0, "not_in_whole": 0,
    }  # fmt: skip
    broken = counts([(1, 1), (1, 2), (3, 3)], [(1, 2)])  # (1, 2) twice, (2, *) lost, (3, 3) new
    assert broken["in_train_and_test"] == 1
    assert broken["whole_but_missing"] == 2 and broken["not_in_whole"] == 1

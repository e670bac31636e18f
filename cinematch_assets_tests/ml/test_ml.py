"""The ml package: metrics against hand-computed values, the top-N scorer against a full
sort, the bias baseline, the cold-row fallback, the decay weight in the fit, the tuning
splits, and ALS fits that repeat exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyspark.sql import functions as F

from cinematch_assets.ml.arrays import positions_in
from cinematch_assets.ml.lists.build import FactorRanker
from cinematch_assets.ml.lists.recommend import factor_ranker, most_popular, recommend
from cinematch_assets.ml.lists.top_n import dot_scores, top_n
from cinematch_assets.ml.models.als import FACTORS, dot
from cinematch_assets.ml.models.ranking import fit_ranking_model
from cinematch_assets.ml.models.rating import (
    RatingModel,
    RatingParams,
    bias_baseline,
    fit_biases,
    fit_rating_model,
    predict,
)
from cinematch_assets.ml.selection.evaluation import metrics_table
from cinematch_assets.ml.selection.metrics import (
    exposure_metrics_by,
    gini,
    ranking_metrics,
    regression_metrics,
    relevant_rows,
)
from cinematch_assets.ml.selection.model_tuning import als_cost
from cinematch_assets.ml.selection.tuning import (
    Evidence,
    Score,
    TuningResult,
    choose_by_evidence,
    grid_search,
    kfold_splits,
    parameter_grid,
    plan_tuning,
    sample_users,
    tuning_splits,
    user_sample,
    validation_split,
)
from cinematch_assets.transforms.gold import assign_split

# ---------------------------------------------------------------------------- metrics


def test_regression_metrics_by_hand(spark):
    df = spark.createDataFrame(
        [(4.0, 3.0), (2.0, 2.5), (5.0, 5.0)], "rating double, prediction double"
    )
    metrics = regression_metrics(df)
    assert metrics["mse"] == pytest.approx((1 + 0.25 + 0) / 3)
    assert metrics["rmse"] == pytest.approx(math.sqrt(1.25 / 3))
    assert metrics["mae"] == pytest.approx(1.5 / 3)
    assert metrics["rows"] == 3


def test_ranking_metrics_by_hand(spark):
    # User 1: relevant {10, 30, 50}; list 10, 20, 30 -> hits at ranks 1 and 3.
    # User 2: relevant {40}; list 50, 40 -> hit at rank 2.
    # User 3: relevant {60}; no list at all -> scores 0 and still counts.
    # User 4: no relevant movie -> not averaged, whatever its list.
    recs = spark.createDataFrame(
        [(1, 1, 10), (1, 2, 20), (1, 3, 30), (2, 1, 50), (2, 2, 40), (4, 1, 10)],
        "userId int, rank int, movieId int",
    )
    relevant = spark.createDataFrame(
        [(1, 10), (1, 30), (1, 50), (2, 40), (3, 60)], "userId int, movieId int"
    )
    m = ranking_metrics(recs, relevant, k=3)
    d = [1 / math.log2(r + 1) for r in (1, 2, 3)]
    assert m["users"] == 3
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert m["recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    ndcg_1 = (d[0] + d[2]) / (d[0] + d[1] + d[2])
    ndcg_2 = d[1] / d[0]
    assert m["ndcg"] == pytest.approx((ndcg_1 + ndcg_2 + 0) / 3)
    # MAP@k: precision at each hit, divided by min(relevant, k).
    map_1 = (1 / 1 + 2 / 3) / 3
    map_2 = (1 / 2) / 1
    assert m["map"] == pytest.approx((map_1 + map_2 + 0) / 3)
    # With intervals: 1.96 standard errors (sample deviation over the 3 users).
    ci = ranking_metrics(recs, relevant, k=3, interval=True)
    per_user = np.array([ndcg_1, ndcg_2, 0.0])
    assert ci["ndcg"] == pytest.approx(m["ndcg"])
    assert ci["ndcg_ci"] == pytest.approx(1.959964 * per_user.std(ddof=1) / math.sqrt(3))
    assert "ndcg_ci" not in m


def test_ranking_metrics_cut_lists_at_k(spark):
    recs = spark.createDataFrame([(1, 1, 5), (1, 2, 6)], "userId int, rank int, movieId int")
    relevant = spark.createDataFrame([(1, 6)], "userId int, movieId int")
    assert ranking_metrics(recs, relevant, k=1)["precision"] == 0.0
    assert ranking_metrics(recs, relevant, k=2)["precision"] == 0.5


def test_relevant_rows(spark):
    rows = spark.createDataFrame(
        [(1, 1, 4.0), (1, 2, 3.5), (2, 1, 5.0)], "userId int, movieId int, rating double"
    )
    assert sorted(map(tuple, relevant_rows(rows).collect())) == [(1, 1), (2, 1)]


def test_exposure_metrics_of_each_list_kind(spark):
    # Training shares: movie 1 4/8, movie 2 2/8, movies 3 and 4 1/8 each.
    train = spark.createDataFrame(
        [(u, m) for m, n in ((1, 4), (2, 2), (3, 1), (4, 1)) for u in range(n)],
        "userId int, movieId int",
    )
    recs = spark.createDataFrame(
        [
            ("a", 1, 1, 1, 4.0),
            ("a", 2, 1, 1, 4.0),
            ("a", 2, 2, 2, 2.5),
            ("a", 2, 3, 3, 2.0),  # beyond k: not shown
            ("b", 1, 1, 4, None),  # a list without stars
        ],
        "kind string, userId int, rank int, movieId int, pred_rating double",
    )
    got = exposure_metrics_by(recs, train, k=2, by="kind")
    assert got["a"]["coverage"] == 0.5
    assert got["a"]["novelty"] == pytest.approx((1 + 1 + 2) / 3)  # -log2 of 4/8, 4/8, 2/8
    assert got["a"]["gini"] == pytest.approx(gini(np.array([0.0, 0.0, 1.0, 2.0])))
    assert got["a"]["below_floor"] == pytest.approx(1 / 3)
    assert got["b"] == {"coverage": 0.25, "novelty": 3.0, "gini": 0.75, "below_floor": None}


# ---------------------------------------------------------------------------- top-N


@pytest.mark.parametrize("n_items", [300, 5000])  # a partition per row; chunk maxima first
def test_top_n_matches_a_full_sort_with_exclusions(n_items):
    rng = np.random.default_rng(3)
    # Small integers: exact in float32 whatever the order of the sums, and many ties.
    users, items = rng.integers(-3, 4, (600, 8)), rng.integers(-3, 4, (n_items, 8))
    bias = rng.integers(-2, 3, n_items)
    exclude = [rng.choice(n_items, size=rng.integers(0, 40), replace=False) for _ in range(600)]
    positions, scores = top_n(
        dot_scores(users, items, bias), 600, n_items, 10, exclude=exclude, block_users=64
    )
    full = users.astype(np.float32) @ items.astype(np.float32).T + bias.astype(np.float32)
    for u in range(600):
        full[u, exclude[u]] = -np.inf
        expected = np.argsort(-full[u], kind="stable")[:10]  # ties: lowest positions first
        assert list(positions[u]) == list(expected)
        assert not set(positions[u]) & set(exclude[u])
        np.testing.assert_allclose(scores[u], full[u, expected], rtol=1e-5)


def test_top_n_ties_and_short_lists():
    score = dot_scores(np.ones((1, 1)), np.zeros((5, 1)))
    positions, scores = top_n(score, 1, 5, 3, exclude=[np.array([1])])
    assert list(positions[0]) == [0, 2, 3]  # equal scores: lowest positions first
    positions, scores = top_n(score, 1, 5, 4, exclude=[np.array([0, 1, 2])])
    assert list(positions[0]) == [3, 4, -1, -1]
    assert np.isneginf(scores[0, 2:]).all()


@pytest.mark.parametrize("n_items", [300, 5000])
def test_top_n_of_rows_with_few_finite_scores(n_items):
    """-inf is never shown: a row with fewer finite scores than n (new movies that clear
    no bar) gets them and then -1, an all -inf row gets -1 only."""
    rows = np.full((3, n_items), -np.inf, dtype=np.float32)
    rows[0, [7, n_items - 1]] = [1.0, 2.0]

    def score(start, stop, out):
        out[:] = rows[start:stop]

    positions, scores = top_n(score, 3, n_items, 3)
    assert positions.tolist() == [[n_items - 1, 7, -1], [-1] * 3, [-1] * 3]
    assert scores[0, :2].tolist() == [2.0, 1.0] and np.isneginf(scores[0, 2])
    assert np.isneginf(scores[1:]).all()


def test_positions_in_skips_unknown_ids():
    ids = np.array([3, 7, 9])
    assert list(positions_in(ids, np.array([9, 4, 3, 100]))) == [2, 0]
    assert len(positions_in(ids, None)) == 0


def test_recommend_excludes_seen_and_matches_numpy(spark):
    users = spark.createDataFrame(
        [(1, [1.0, 0.0]), (2, [0.0, 1.0])], f"userId int, {FACTORS} array<float>"
    )
    items = spark.createDataFrame(
        [(10, [3.0, 0.0]), (20, [2.0, 1.0]), (30, [0.0, 3.0]), (40, [1.0, 2.0])],
        f"movieId int, {FACTORS} array<float>",
    )
    seen = spark.createDataFrame(
        [(1, 10, 5.0), (2, 30, 2.0)], "userId int, movieId int, rating double"
    )
    ranker = factor_ranker(items)
    assert isinstance(ranker, FactorRanker) and list(ranker.movie_ids) == [10, 20, 30, 40]
    got = recommend(ranker, users, seen, 2).orderBy("userId", "rank").collect()
    assert [(r.userId, r.rank, r.movieId) for r in got] == [
        (1, 1, 20),
        (1, 2, 40),
        (2, 1, 40),
        (2, 2, 20),
    ]
    assert [r.score for r in got] == [2.0, 1.0, 2.0, 1.0]
    # User 1 liked movie 10: it is the reason; user 2 liked nothing (2 stars): no reason.
    assert [r.reason for r in got] == [10, 10, None, None]
    assert all(r.pred_rating is None for r in got)  # no rating model given


def test_most_popular_lists_by_training_count(spark):
    train = spark.createDataFrame(
        [(1, 10, 4.0), (2, 10, 4.0), (3, 10, 4.0), (1, 20, 4.0), (2, 20, 4.0), (3, 30, 4.0)],
        "userId int, movieId int, rating double",
    )
    users = spark.createDataFrame([(1,), (4,)], "userId int")
    got = most_popular(train, users, train, 2).orderBy("userId", "rank").collect()
    assert [(r.userId, r.movieId) for r in got] == [(1, 30), (4, 10), (4, 20)]


def test_dot_of_factor_columns(spark):
    df = spark.createDataFrame(
        [([1.0, 2.0], [3.0, 4.0]), ([], []), (None, [1.0])], "a array<float>, b array<float>"
    )
    assert [r[0] for r in df.select(dot(F.col("a"), F.col("b"))).collect()] == [11.0, 0.0, None]


# ---------------------------------------------------------------------------- rating model


@pytest.fixture(scope="module")
def small_ratings(spark):
    rows = [
        (1, 10, 5.0, 1.0),
        (1, 20, 4.0, 1.0),
        (2, 10, 3.0, 1.0),
        (2, 20, 2.0, 0.0),
    ]
    return spark.createDataFrame(rows, "userId int, movieId int, rating double, weight double")


def test_bias_baseline_by_hand(small_ratings):
    model = fit_biases(small_ratings, damping=1.0)
    mean = 3.5
    movie = {10: (1.5 - 0.5) / (1 + 2), 20: (0.5 - 1.5) / (1 + 2)}
    user = {
        1: ((5 - mean - movie[10]) + (4 - mean - movie[20])) / 3,
        2: ((3 - mean - movie[10]) + (2 - mean - movie[20])) / 3,
    }
    assert model.global_mean == pytest.approx(mean)
    assert {r.movieId: r.bias for r in model.items.collect()} == pytest.approx(movie)
    assert {r.userId: r.bias for r in model.users.collect()} == pytest.approx(user)


def test_decay_weight_enters_the_bias_fit(small_ratings):
    """User 2's rating of movie 20 has weight 0: with decay weighting it counts for nothing."""
    model = fit_biases(small_ratings, damping=0.0, decay_weighted=True)
    mean = (5 + 4 + 3) / 3
    assert model.global_mean == pytest.approx(mean)
    movie = {r.movieId: r.bias for r in model.items.collect()}
    assert movie[20] == pytest.approx(4 - mean)  # only user 1's rating
    unweighted = fit_biases(small_ratings, damping=0.0)
    assert {r.movieId: r.bias for r in unweighted.items.collect()}[20] == pytest.approx(3 - 3.5)


def test_cold_rows_fall_back_to_the_baseline_and_stars_are_clipped(spark, small_ratings):
    baseline = fit_biases(small_ratings, damping=1.0)
    model = RatingModel(
        global_mean=4.5,
        users=spark.createDataFrame(
            [(1, 0.5, [2.0])], f"userId int, bias double, {FACTORS} array<float>"
        ),
        items=spark.createDataFrame(
            [(10, 0.0, [1.0])], f"movieId int, bias double, {FACTORS} array<float>"
        ),
        params=RatingParams(rank=1),
    )
    rows = spark.createDataFrame([(1, 10), (2, 10), (9, 99)], "userId int, movieId int")
    got = {(r.userId, r.movieId): r for r in predict(model, rows, fallback=baseline).collect()}
    assert got[(1, 10)].prediction == 5.0 and not got[(1, 10)].cold  # 4.5 + 0.5 + 2 clipped
    base = {(r.userId, r.movieId): r.prediction for r in predict(baseline, rows).collect()}
    assert got[(2, 10)].cold and got[(2, 10)].prediction == pytest.approx(base[(2, 10)])
    assert got[(9, 99)].cold and got[(9, 99)].prediction == pytest.approx(3.5)  # global mean


@pytest.fixture(scope="module")
def planted(spark):
    """Users and movies in two taste groups: a user loves their group's movies (5) and
    dislikes the other's (1), on top of movie quality; every pair is rated."""
    rng = np.random.default_rng(0)
    rows = []
    for user in range(60):
        for movie in range(40):
            likes = (user % 2) == (movie % 2)
            stars = (4.5 if likes else 1.5) + rng.normal(0, 0.3)
            weight = float(rng.uniform(0.2, 1.0))
            if rng.random() < 0.7:
                rows.append((user, movie, float(np.clip(np.round(stars * 2) / 2, 0.5, 5)), weight))
    return spark.createDataFrame(
        rows, "userId int, movieId int, rating double, weight double"
    ).cache()


def test_als_recovers_taste_the_biases_cannot(planted):
    train, validation = validation_split(planted, 0.25, seed=1)
    biases = fit_biases(train, damping=3.0)
    model = fit_rating_model(
        train, variant="bias_residual", rank=4, reg_param=0.1, max_iter=10, seed=1, biases=biases
    )

    def rmse(m):
        return regression_metrics(predict(m, validation, fallback=biases))["rmse"]

    assert rmse(model) < 0.6 * rmse(biases)
    # The model's own biases are the bias baseline's: the evaluation fits them no more.
    baseline = bias_baseline(model, train)
    assert baseline.global_mean == biases.global_mean and baseline.rank == 0
    for table in ("users", "items"):
        theirs, ours = (
            sorted(map(tuple, getattr(m, table).select(getattr(m, table).columns[0], "bias")
                                 .collect()))
            for m in (biases, baseline)
        )  # fmt: skip
        assert ours == theirs
    assert rmse(baseline) == pytest.approx(rmse(biases), rel=1e-12)


def test_fits_repeat_exactly_with_a_seed(planted):
    def fit():
        model = fit_ranking_model(
            planted, rank=4, reg_param=0.1, alpha=2.0, max_iter=5, confidence="decay_weight", seed=7
        )
        return {r.movieId: r.features for r in model.items.collect()}

    assert fit() == fit()


# ---------------------------------------------------------------------------- tuning


def test_kfold_splits_partition_the_rows(planted):
    total = planted.count()
    splits = kfold_splits(planted, 3, seed=5)
    validations = [v.select("userId", "movieId") for _, v in splits]
    assert sum(v.count() for v in validations) == total
    assert validations[0].union(validations[1]).union(validations[2]).distinct().count() == total
    for train, validation in splits:
        assert train.count() + validation.count() == total
        assert train.join(validation, ["userId", "movieId"], "left_semi").count() == 0


def test_validation_split_is_independent_of_the_gold_split(planted):
    """Gold splits with a hash of the same keys; an equal seed must not make the training
    rows fall on one side of the validation split."""
    gold_train = assign_split(planted, strategy="random", test_fraction=0.2, seed=42).filter(
        F.col("split") == "train"
    )
    train, validation = validation_split(gold_train, 0.2, seed=42)
    share = validation.count() / gold_train.count()
    assert 0.1 < share < 0.3


def test_user_sample_keeps_whole_users(planted):
    sample = sample_users(planted, 0.5, seed=3)
    users = {r.userId for r in sample.select("userId").distinct().collect()}
    assert 10 < len(users) < 50
    full_counts = planted.groupBy("userId").count().filter(F.col("userId").isin(*users))
    assert sample.count() == full_counts.agg(F.sum("count")).first()[0]


def test_plan_switches_to_a_validation_split_and_a_sample_at_scale(planted):
    small = plan_tuning(
        50_000,
        method="auto",
        folds=3,
        validation_fraction=0.2,
        cv_max_rows=10**6,
        max_rows=2 * 10**6,
    )
    assert (small.method, small.user_fraction) == ("cv", 1.0)
    large = plan_tuning(
        33 * 10**6,
        method="auto",
        folds=3,
        validation_fraction=0.2,
        cv_max_rows=10**6,
        max_rows=2 * 10**6,
    )
    assert large.method == "validation" and large.user_fraction == pytest.approx(2 / 33)
    assert "sample" in large.describe()
    assert len(tuning_splits(planted, small, seed=1)) == 3


def test_grid_search_picks_the_best_mean_and_round_trips():
    grid = parameter_grid(a=[1, 2, 3], b=["x"])
    logged = []
    result = grid_search(
        grid,
        ["s1", "s2"],
        lambda params, split: abs(params["a"] - 2) + (0.5 if split == "s2" else 0.0),
        metric="rmse",
        lower_is_better=True,
        parallelism=2,
        log=logged.append,
    )
    assert result.best_params == {"a": 2, "b": "x"}
    assert result.best_value == pytest.approx(0.25)
    assert len(logged) == 6 and all("of 6" in line for line in logged)
    again = TuningResult.from_json(result.to_json())
    assert again.best_params == result.best_params and again.rows == result.rows
    assert "**(chosen)**" in result.markdown()


def test_a_dearer_setting_is_chosen_only_on_evidence():
    """Rank 50 costs more than rank 20: it is chosen only when its RMSE is lower by more
    than the tolerance and by more than twice the paired standard error."""
    rng = np.random.default_rng(4)
    base = rng.gamma(1.0, 0.7, 20_000)  # squared errors of the cheap setting, per row
    grid = parameter_grid(rank=[20, 50], reg_param=[0.1])
    evidence = Evidence(als_cost, tolerance=0.0025)

    def search(dear: np.ndarray) -> TuningResult:
        units = {20: base, 50: dear}
        return grid_search(
            grid, ["split"],
            lambda params, _: Score(float(np.sqrt(units[params["rank"]].mean())),
                                    units[params["rank"]]),
            metric="rmse", lower_is_better=True, log=lambda _: None, evidence=evidence,
        )  # fmt: skip

    # 0.1% lower RMSE, every row a hair better: significant, but under the tolerance.
    assert search(base * 0.998).best_params["rank"] == 20
    # 2% lower on average, but noise: within twice the paired standard error.
    noisy = np.clip(base * 0.96 + rng.normal(0, 3.0, len(base)), 0, None)
    assert search(noisy).best_params["rank"] == 20
    # 2% lower and consistently: worth its cost.
    clear = search(base * 0.96)
    assert clear.best_params["rank"] == 50 and clear.tolerance == 0.0025
    rows = {row["rank"]: row for row in clear.rows}
    assert rows[20]["cost"] < rows[50]["cost"] and rows[50]["paired difference"] == 0
    assert rows[20]["paired difference"] > 2 * rows[20]["paired se"] > 0
    again = TuningResult.from_json(clear.to_json())
    assert again.tolerance == 0.0025 and again.best_params == clear.best_params
    # Cost levels are climbed one at a time: each dearer level must beat the choice so far.
    metrics, units = [1.00, 0.95, 0.949], [base, base * 0.9, base * 0.898]
    assert choose_by_evidence(metrics, units, [1, 2, 3], 0.0025, lower_is_better=True) == 1
    ndcg = [0.20, 0.25]
    per_user = [np.full(100, 0.2) + rng.normal(0, 0.01, 100), np.full(100, 0.25)]
    assert choose_by_evidence(ndcg, per_user, [1, 2], 0.01, lower_is_better=False) == 1


def test_a_user_sample_is_seeded_bounded_and_nested(spark):
    rows = spark.createDataFrame(
        [(user, movie) for user in range(1, 301) for movie in (1, 2)], "userId int, movieId int"
    )

    def ids(size: int, seed: int) -> set[int]:
        return {r["userId"] for r in user_sample(rows, size, seed).collect()}

    fifty = ids(50, seed=7)
    assert len(fifty) == 50 and ids(50, seed=7) == fifty
    assert fifty < ids(120, seed=7)  # a smaller sample lies inside a larger one
    assert ids(50, seed=8) != fifty
    assert ids(1_000, seed=7) == set(range(1, 301))  # fewer users than asked: all of them


def test_evaluation_rows_need_unique_ids():
    rows = [{"id": "a", "name": "model A", "role": "model", "task": "stars", "rmse": 0.9}]
    table = metrics_table(rows)
    assert table.loc[0, "id"] == "a" and table.loc[0, "name"] == "model A"
    for bad in ([{"name": "no id"}], rows + rows):
        with pytest.raises(ValueError, match="unique ids"):
            metrics_table(bad)

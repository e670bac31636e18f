"""The held-out evaluation of what is served: the product's models and their baselines
scored on the Gold test split, which no fit and no tuning has seen, every row and every
user. What judges the design instead (ablation, the article's variant, every candidate
order, the cold-movie protocol) is in `studies`, which shares this table's shape.

- Stars: every test row gets a prediction from the rating model and each baseline; a row
  whose user or movie is not in a model gets the bias baseline's prediction (`cold`).
- Lists: top-k over the movies each test user did not rate in training, scored against
  the test ratings of 4 stars or more on the same users: a seeded sample of them at
  scale (the same nested sample the studies use), each mean with its 95% interval. The
  served order's are the served lists themselves (`recommend.served_lists`, training
  ratings left out instead of every known one); beside them the most-popular baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cinematch_assets import keys
from cinematch_assets.ml.lists.build import ListPolicy, ModelItems
from cinematch_assets.ml.lists.new_movies import read_new_movie_ratings, read_new_movies
from cinematch_assets.ml.lists.recommend import (
    model_items,
    most_popular,
    served_lists,
    without_new_movies,
)
from cinematch_assets.ml.models import artifacts
from cinematch_assets.ml.models.als import FACTORS, empty_factors
from cinematch_assets.ml.models.artifacts import Read, Trained
from cinematch_assets.ml.models.ease import EaseModel
from cinematch_assets.ml.models.ranking import RankingModel
from cinematch_assets.ml.models.rating import (
    RatingModel,
    RatingParams,
    bias_baseline,
    cached,
    predict,
)
from cinematch_assets.ml.selection.champion import read_candidates
from cinematch_assets.ml.selection.metrics import (
    exposure_metrics_by,
    ranking_metrics,
    regression_metrics_by,
    relevant_rows,
)
from cinematch_assets.ml.selection.tuning import concurrently

Role = Literal[
    "model", "baseline", "ablation", "candidate", "discovery", "cold", "cv", "every_user"
]
GLOBAL_MEAN = "global mean"
BIAS_BASELINE = "damped bias baseline"
RATING_MODEL = "rating model"
SERVED = "served ranking"
SERVED_KNOWN = "served ranking without new movies"
MOST_POPULAR = "most popular"
# Each row's stable id (what code and queries select by); `name` is its display label.
ROW_IDS = {
    GLOBAL_MEAN: "global_mean",
    BIAS_BASELINE: "bias_baseline",
    RATING_MODEL: "rating_model",
    SERVED: "served",
    SERVED_KNOWN: "served_without_new_movies",
    MOST_POPULAR: "most_popular",
}
PREDICTION_COLUMNS = ["model", "userId", "movieId", "rating", "prediction", "cold"]
# The evaluation table: stars metrics (rmse..rows) or list metrics (k..map_ci) per row.
METRICS_SCHEMA = (
    "id string, name string, role string, task string, rmse double, mse double, mae double, "
    "cold_share double, rows long, k int, precision double, recall double, ndcg double, "
    "map double, coverage double, novelty double, gini double, below_floor double, "
    "users long, precision_ci double, recall_ci double, ndcg_ci double, map_ci double"
)
METRIC_NAMES = [column.split()[0] for column in METRICS_SCHEMA.split(", ")]
# Prediction errors are binned this finely for the error-distribution chart.
ERROR_BIN = 0.25


@dataclass(frozen=True)
class Entry:
    """One row of the evaluation table: a model, baseline or ablation (`role`), judged by
    its predicted stars (`stars`: a rating model), by its lists (`lists`), or both (an
    ablated rating model, whose lists rank by its stars)."""

    name: str
    role: Role
    stars: RatingModel | None = None
    lists: Callable[[], DataFrame] | None = field(default=None, compare=False)

    @property
    def task(self) -> str:
        return "stars" if self.stars is not None else "lists"


def global_mean_model(train: DataFrame) -> RatingModel:
    """Everyone gets the training mean: biases and factors of every training user and
    movie are empty, so `cold` still marks what training never saw."""
    mean = train.agg(F.avg("rating")).first()[0]

    def zero(key: str) -> DataFrame:
        return (
            train.select(key)
            .distinct()
            .withColumn("bias", F.lit(0.0))
            .withColumn(FACTORS, empty_factors())
        )

    return RatingModel(float(mean), zero("userId"), zero("movieId"), RatingParams(variant="none"))


def test_predictions(
    test: DataFrame, models: dict[str, RatingModel], *, fallback: RatingModel
) -> DataFrame:
    """One row per test row per model (PREDICTION_COLUMNS)."""
    rows = test.select("userId", "movieId", "rating")
    parts = [
        predict(model, rows, fallback=fallback).withColumn("model", F.lit(name))
        for name, model in models.items()
    ]
    return reduce(DataFrame.unionByName, parts).select(*PREDICTION_COLUMNS)


def rating_metrics(predictions: DataFrame) -> dict[str, dict[str, float]]:
    """RMSE, MSE, MAE, rows and the share of cold rows, per model."""
    return regression_metrics_by(
        predictions, "model", extra={"cold_share": F.avg(F.col("cold").cast("double"))}
    )


def list_metrics(
    recommendations: DataFrame, relevant: DataFrame, train: DataFrame, *, k: int
) -> dict[str, float]:
    """Accuracy (ranking_metrics, with 95% intervals) and exposure (coverage, novelty,
    Gini, share below the star floor) of top-k lists."""
    keyed = recommendations.withColumn("_list", F.lit(""))
    metrics = ranking_metrics(recommendations, relevant, k=k, interval=True)
    return metrics | exposure_metrics_by(keyed, train, k=k, by="_list").get("", {}) | {"k": k}


@dataclass(frozen=True)
class Evaluation:
    predictions: DataFrame
    recommendations: DataFrame
    # One dict per model/baseline/ablation row: name, role, task and its metrics.
    rows: list[dict[str, Any]]

    def table(self) -> pd.DataFrame:
        return metrics_table(self.rows)


def metrics_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per model, baseline, study entry; METRIC_NAMES columns, None where a metric
    does not apply. Every row carries its stable `id` (unique) and its `name` (a label)."""
    ids = [row.get("id") for row in rows]
    if None in ids or len(set(ids)) != len(ids):
        raise ValueError(f"evaluation rows need unique ids, not {ids}")
    return pd.DataFrame(
        [[row.get(name) for name in METRIC_NAMES] for row in rows],
        columns=METRIC_NAMES,
        dtype=object,
    )


def prediction_analysis(predictions: DataFrame) -> dict[str, pd.DataFrame]:
    """What the prediction charts show, aggregated in Spark (test sets can be large):
    `errors` (model, error bin, rows) and `by_rating` (model, rating, rows, mae and
    prediction quantiles p10, p25, p50, p75, p90)."""
    error = F.col("prediction") - F.col("rating")
    errors = (
        predictions.groupBy("model", (F.round(error / ERROR_BIN) * ERROR_BIN).alias("error"))
        .agg(F.count("*").alias("rows"))
        .orderBy("model", "error")
        .toPandas()
    )
    quantiles = [0.1, 0.25, 0.5, 0.75, 0.9]
    by_rating = (
        predictions.groupBy("model", "rating")
        .agg(
            F.count("*").alias("rows"),
            F.avg(F.abs(error)).alias("mae"),
            F.percentile_approx("prediction", quantiles, 1000).alias("q"),
        )
        .orderBy("model", "rating")
        .toPandas()
    )
    for i, q in enumerate(quantiles):
        by_rating[f"p{round(q * 100)}"] = by_rating["q"].map(lambda values, i=i: values[i])
    return {"errors": errors, "by_rating": by_rating.drop(columns="q")}


def served_test_lists(
    items: ModelItems,
    ranking: RankingModel,
    rating: RatingModel,
    train: DataFrame,
    users: DataFrame,
    k: int,
    rated_new: DataFrame | None = None,
) -> DataFrame:
    """What `users` (userId) are shown, with their training ratings (and `rated_new`)
    left out: the served lists (`recommend.served_lists`), run past k by the new slots
    so that the same pass gives the lists without them."""
    seen = train.select("userId", "movieId", "rating")
    slots = items.new_slots(k)
    extra = 0 if slots is None else slots.movies.slots
    watched = seen if rated_new is None else seen.unionByName(rated_new)
    return served_lists(
        items, ranking.users.join(users, "userId"), rating.users, watched, k + extra, shown=k
    )


def evaluate_served(
    train: DataFrame,
    test: DataFrame,
    *,
    rating: Trained[RatingModel],
    ranking: Trained[RankingModel],
    items: ModelItems,
    k: int,
    list_users: DataFrame | None = None,
    parallelism: int = 3,
    rated_new: DataFrame | None = None,
) -> Evaluation:
    """Score what is served on `test`: the rating model's stars on every row, the served
    lists (`items`: the models' movie side with the champion's order) on the test users
    of `list_users` (userId; default every one), beside the baselines they are judged
    against (global mean, the damped bias baseline with the rating model's settings,
    most popular) on the same rows and users. No refit. `rated_new`
    (userId, movieId, rating): the ratings of `items`' new movies, outside the split,
    which the served lists leave out as serving does."""
    biases = cached(bias_baseline(rating.model, train))  # every model's fallback
    seen = train.select("userId", "movieId", "rating").cache()
    users = test.select("userId").distinct()
    if list_users is not None:
        users = users.join(list_users.select("userId"), "userId")
    users = users.cache()
    relevant = relevant_rows(test).join(users, "userId", "left_semi").cache()
    # What users are shown, with the training ratings left out: the list the app serves.
    served = served_test_lists(
        items, ranking.model, rating.model, train, users, k, rated_new
    ).cache()
    recommendations = served.filter(F.col("rank") <= k).cache()
    slots = items.new_slots(k)
    entries = [
        Entry(GLOBAL_MEAN, "baseline", stars=global_mean_model(train)),
        Entry(BIAS_BASELINE, "baseline", stars=biases),
        Entry(RATING_MODEL, "model", stars=rating.model),
        Entry(SERVED, "model", lists=lambda: recommendations),
        *(
            [Entry(SERVED_KNOWN, "baseline", lists=lambda: without_new_movies(served, k))]
            if slots is not None
            else []
        ),
        Entry(MOST_POPULAR, "baseline", lists=lambda: most_popular(train, users, seen, k)),
    ]
    stars = {e.name: e.stars for e in entries if e.stars is not None}
    predictions = test_predictions(test, stars, fallback=biases).cache()
    scorings: dict[str, Callable[[], dict[str, Any]]] = {
        e.name: (lambda lists=e.lists: list_metrics(lists(), relevant, seen, k=k))
        for e in entries
        if e.lists is not None
    }
    scorings["stars"] = lambda: rating_metrics(predictions)
    scores = concurrently(scorings, parallelism)
    served.unpersist()  # its places past k were for the lists without new movies
    star_scores = scores.pop("stars")
    rows = [
        {"id": ROW_IDS[e.name], "name": e.name, "role": e.role, "task": e.task,
         **star_scores.get(e.name, {}),
         **scores.get(e.name, {})}
        for e in entries
    ]  # fmt: skip
    return Evaluation(predictions=predictions, recommendations=recommendations, rows=rows)


@dataclass(frozen=True)
class Served:
    """What the product's last run serves: the final models and the served order chosen
    on validation, beside every candidate it was chosen from."""

    rating: Trained[RatingModel]
    ranking: Trained[RankingModel]
    ease: Trained[EaseModel]
    candidates: list[ListPolicy]
    champion: ListPolicy


def read_served(read: Read, models: Path) -> Served:
    """The models and the served order from the lake, through `read` (`models`: the data
    root's model folders, for EASE's weights)."""
    candidates, champion = read_candidates(read)
    return Served(
        artifacts.read_rating_model(read),
        artifacts.read_ranking_model(read),
        artifacts.read_ease_model(read, models),
        candidates,
        champion,
    )


def served_model_items(read: Read, served: Served, train: DataFrame) -> ModelItems:
    """What the last run serves, as lists are built from it: its models' movie side with
    the champion's order and the new movies."""
    champion = served.champion
    return model_items(
        served.ranking.model,
        served.rating.model,
        train,
        policy=champion,
        ease=served.ease.model if champion.ranker == "ease" else None,
        new=read_new_movies(read),
        movies=read(keys.MOVIES_CLEAN),
    )


def evaluate_latest(
    read: Read,
    served: Served,
    train: DataFrame,
    test: DataFrame,
    *,
    k: int,
    list_users: DataFrame | None,
    parallelism: int,
) -> Evaluation:
    """`evaluate_served` on what the last run serves (`served_model_items`), the new
    movies' ratings left out as serving leaves them."""
    return evaluate_served(
        train, test, rating=served.rating, ranking=served.ranking,
        items=served_model_items(read, served, train), k=k, list_users=list_users,
        parallelism=parallelism, rated_new=read_new_movie_ratings(read),
    )  # fmt: skip


def headline_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The numbers that say whether the models earn their keep, for Dagster's metadata."""

    def value(name: str, metric: str) -> float:
        return float(table.loc[table["name"] == name, metric].iloc[0])

    rmse, baseline_rmse = value(RATING_MODEL, "rmse"), value(BIAS_BASELINE, "rmse")
    ndcg, popular_ndcg = value(SERVED, "ndcg"), value(MOST_POPULAR, "ndcg")
    return {
        "rating_model_rmse": round(rmse, 4),
        "bias_baseline_rmse": round(baseline_rmse, 4),
        "rmse_below_bias_baseline": round(1 - rmse / baseline_rmse, 4),
        "served_ranking_ndcg": round(ndcg, 4),
        "served_ranking_ndcg_ci": round(value(SERVED, "ndcg_ci"), 4),
        "list_users": int(value(SERVED, "users")),
        "served_coverage": round(value(SERVED, "coverage"), 4),
        "served_below_floor": round(value(SERVED, "below_floor"), 4),
        "most_popular_ndcg": round(popular_ndcg, 4),
        "ndcg_vs_most_popular": round(ndcg / popular_ndcg, 3) if popular_ndcg else float("nan"),
        "cold_share": round(value(RATING_MODEL, "cold_share"), 4),
        **(
            {"ndcg_without_new_movies": round(value(SERVED_KNOWN, "ndcg"), 4)}
            if (table["name"] == SERVED_KNOWN).any()
            else {}
        ),
    }

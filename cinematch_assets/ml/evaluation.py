"""The held-out evaluation: every model and baseline scored on the Gold test split, which
no fit and no tuning has seen.

- Stars: every test row gets a prediction from every rating model and baseline; a row
  whose user or movie is not in a model gets the bias baseline's prediction (`cold`).
- Lists: top-k over the movies each test user did not rate in training, from the
  ranking model, the most-popular baseline and the rating model ranked by its stars,
  scored against the test ratings >= 4 on the same users.
- Ablation: the chosen models refitted with one choice flipped (decay weights,
  normalization), scored the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cinematch_assets.ml.als import FACTORS, empty_factors
from cinematch_assets.ml.metrics import (
    catalog_coverage,
    ranking_metrics,
    regression_metrics_by,
    relevant_rows,
)
from cinematch_assets.ml.ranking import (
    RankingModel,
    fit_ranking_model,
    most_popular,
    recommend_unseen,
)
from cinematch_assets.ml.rating import (
    RatingModel,
    cached,
    fit_biases,
    fit_rating_model,
    predict,
)
from cinematch_assets.ml.topn import recommend

GLOBAL_MEAN = "global mean"
BIAS_BASELINE = "damped bias baseline"
RATING_MODEL = "rating model"
ARTICLE_VARIANT = "article's variant"
RANKING_MODEL = "ranking model"
MOST_POPULAR = "most popular"
BY_STARS = "rating model by predicted stars"
# The article's tuned model: user-mean normalized, nonnegative, rank 20, reg 0.05, 15 iterations.
ARTICLE_PARAMS = {"rank": 20, "reg_param": 0.05, "max_iter": 15}
PREDICTION_COLUMNS = ["model", "userId", "movieId", "rating", "prediction", "cold"]
# The evaluation table: stars metrics (rmse..rows) or list metrics (k..users) per row.
METRICS_SCHEMA = (
    "name string, role string, task string, rmse double, mse double, mae double, "
    "cold_share double, rows long, k int, precision double, recall double, ndcg double, "
    "map double, coverage double, users long"
)
METRIC_NAMES = [column.split()[0] for column in METRICS_SCHEMA.split(", ")]
# Prediction errors are binned this finely for the error-distribution chart.
ERROR_BIN = 0.25


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

    return RatingModel(float(mean), zero("userId"), zero("movieId"), {"variant": "global_mean"})


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


def by_stars(model: RatingModel, users: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    """A rating model's top-k by predicted stars (the user's own terms do not change the
    order: movie bias + u.v does)."""
    return recommend(
        model.users.join(users.select("userId"), "userId"),
        model.items,
        k,
        exclude=seen,
        item_bias="bias",
    )


def list_metrics(
    recommendations: DataFrame, relevant: DataFrame, *, k: int, catalog_size: int
) -> dict[str, float]:
    metrics = ranking_metrics(recommendations, relevant, k=k)
    return metrics | {"k": k, "coverage": catalog_coverage(recommendations, catalog_size)}


@dataclass(frozen=True)
class Evaluation:
    predictions: DataFrame
    recommendations: DataFrame
    # One dict per model/baseline/ablation row: name, role, task and its metrics.
    rows: list[dict[str, Any]]

    def table(self) -> pd.DataFrame:
        """One row per model, baseline and ablation; METRIC_NAMES columns, None where a
        metric does not apply."""
        return pd.DataFrame(
            [[row.get(name) for name in METRIC_NAMES] for row in self.rows],
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


def evaluate_models(
    train: DataFrame,
    test: DataFrame,
    *,
    rating: RatingModel,
    ranking: RankingModel,
    k: int,
    seed: int,
    ablation: bool = True,
) -> Evaluation:
    """Score the models and baselines on `test`; `rating.params` and `ranking.params`
    (their tables' columns) say how to refit them for the baselines and the ablation."""
    params = rating.params
    bias_params = {
        "damping": params["bias_damping"],
        "decay_weighted": params["bias_decay_weighted"],
    }
    als_params = {name: params[name] for name in ("rank", "reg_param", "max_iter")}
    biases = cached(fit_biases(train, **bias_params))  # every model's fallback
    article = fit_rating_model(train, variant="user_mean", seed=seed, **ARTICLE_PARAMS)
    predictions = test_predictions(
        test,
        {
            GLOBAL_MEAN: global_mean_model(train),
            BIAS_BASELINE: biases,
            RATING_MODEL: rating,
            ARTICLE_VARIANT: article,
        },
        fallback=biases,
    ).cache()  # read by the metrics, the charts and the table write
    stars = rating_metrics(predictions)

    seen = train.select("userId", "movieId")
    users = test.select("userId").distinct()
    relevant = relevant_rows(test)
    catalog_size = train.select("movieId").distinct().count()
    recommendations = recommend_unseen(ranking, users, seen, k).cache()

    def lists(recs: DataFrame) -> dict[str, float]:
        return list_metrics(recs, relevant, k=k, catalog_size=catalog_size)

    rows = [
        {"name": GLOBAL_MEAN, "role": "baseline", "task": "stars", **stars[GLOBAL_MEAN]},
        {"name": BIAS_BASELINE, "role": "baseline", "task": "stars", **stars[BIAS_BASELINE]},
        {"name": RATING_MODEL, "role": "model", "task": "stars", **stars[RATING_MODEL]},
        {"name": ARTICLE_VARIANT, "role": "baseline", "task": "stars", **stars[ARTICLE_VARIANT]},
        {"name": RANKING_MODEL, "role": "model", "task": "lists", **lists(recommendations)},
        {
            "name": MOST_POPULAR,
            "role": "baseline",
            "task": "lists",
            **lists(most_popular(train, users, seen, k)),
        },
        {
            "name": BY_STARS,
            "role": "baseline",
            "task": "lists",
            **lists(by_stars(rating, users, seen, k)),
        },
        {
            "name": f"{ARTICLE_VARIANT} by predicted stars",
            "role": "baseline",
            "task": "lists",
            **lists(by_stars(article, users, seen, k)),
        },
    ]
    if ablation:
        rows += ablation_rows(
            train,
            test,
            rating=rating,
            ranking=ranking,
            bias_params=bias_params,
            als_params=als_params,
            fallback=biases,
            lists=lists,
            users=users,
            seen=seen,
            k=k,
            seed=seed,
        )
    return Evaluation(predictions=predictions, recommendations=recommendations, rows=rows)


def ablation_rows(
    train: DataFrame,
    test: DataFrame,
    *,
    rating: RatingModel,
    ranking: RankingModel,
    bias_params: dict[str, Any],
    als_params: dict[str, Any],
    fallback: RatingModel,
    lists: Callable[[DataFrame], dict[str, float]],
    users: DataFrame,
    seen: DataFrame,
    k: int,
    seed: int,
) -> list[dict[str, Any]]:
    """The chosen models with one choice flipped each, same hyperparameters otherwise."""
    decay = bias_params["decay_weighted"]
    flipped_biases = fit_biases(train, **(bias_params | {"decay_weighted": not decay}))
    variants = {
        f"rating model, biases {'without' if decay else 'with'} decay weights": fit_rating_model(
            train, variant="bias_residual", seed=seed, biases=flipped_biases, **als_params
        ),
        "rating model, user-mean normalization instead of biases": fit_rating_model(
            train, variant="user_mean", seed=seed, nonnegative=False, **als_params
        ),
        "rating model, no normalization": fit_rating_model(
            train, variant="none", seed=seed, **als_params
        ),
    }
    stars = rating_metrics(test_predictions(test, variants, fallback=fallback))
    rows = [
        {
            "name": name,
            "role": "ablation",
            "task": "stars",
            **stars[name],
            **lists(by_stars(model, users, seen, k)),
        }
        for name, model in variants.items()
    ]
    confidence = ranking.params["confidence"]
    other = "binary" if confidence == "decay_weight" else "decay_weight"
    ranking_params = {
        name: ranking.params[name] for name in ("rank", "reg_param", "alpha", "max_iter")
    }
    flipped = fit_ranking_model(train, confidence=other, seed=seed, **ranking_params)
    rows.append(
        {
            "name": f"ranking model, {other} confidence",
            "role": "ablation",
            "task": "lists",
            **lists(recommend_unseen(flipped, users, seen, k)),
        }
    )
    return rows


def headline_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The numbers that say whether the models earn their keep, for Dagster's metadata."""

    def value(name: str, metric: str) -> float:
        return float(table.loc[table["name"] == name, metric].iloc[0])

    rmse, baseline_rmse = value(RATING_MODEL, "rmse"), value(BIAS_BASELINE, "rmse")
    ndcg, popular_ndcg = value(RANKING_MODEL, "ndcg"), value(MOST_POPULAR, "ndcg")
    return {
        "rating_model_rmse": round(rmse, 4),
        "bias_baseline_rmse": round(baseline_rmse, 4),
        "rmse_below_bias_baseline": round(1 - rmse / baseline_rmse, 4),
        "ranking_model_ndcg": round(ndcg, 4),
        "most_popular_ndcg": round(popular_ndcg, 4),
        "ndcg_vs_most_popular": round(ndcg / popular_ndcg, 3) if popular_ndcg else float("nan"),
        "cold_share": round(value(RATING_MODEL, "cold_share"), 4),
    }

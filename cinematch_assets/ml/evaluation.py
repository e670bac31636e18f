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
from cinematch_assets.ml.ranking import RankingModel, fit_ranking_model, most_popular
from cinematch_assets.ml.rating import (
    RatingModel,
    cached,
    fit_biases,
    fit_rating_model,
    predict,
)
from cinematch_assets.ml.topn import recommend_unseen
from cinematch_assets.ml.tuning import concurrently

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
    return recommend_unseen(model, users, seen, k, item_bias="bias")


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
    parallelism: int = 3,
) -> Evaluation:
    """Score the models and baselines on `test`; `rating.params` and `ranking.params`
    (their tables' columns) say how to refit them for the baselines and the ablation.
    Independent fits and scorings run `parallelism` at a time."""
    params = rating.params
    bias_params = {
        "damping": params["bias_damping"],
        "decay_weighted": params["bias_decay_weighted"],
    }
    als_params = {name: params[name] for name in ("rank", "reg_param", "max_iter")}
    biases = cached(fit_biases(train, **bias_params))  # every model's fallback
    fits = {
        ARTICLE_VARIANT: lambda: fit_rating_model(
            train, variant="user_mean", seed=seed, **ARTICLE_PARAMS
        )
    }
    if ablation:
        fits |= ablation_fits(train, bias_params, als_params, ranking.params, seed)
    fitted = concurrently(fits, parallelism)

    predictions = test_predictions(
        test,
        {
            GLOBAL_MEAN: global_mean_model(train),
            BIAS_BASELINE: biases,
            RATING_MODEL: rating,
            ARTICLE_VARIANT: fitted[ARTICLE_VARIANT],
        },
        fallback=biases,
    ).cache()  # read by the metrics, the charts and the table write
    ablated_stars = {name: m for name, m in fitted.items() if name.startswith("rating model,")}

    seen = train.select("userId", "movieId").cache()
    users = test.select("userId").distinct().cache()
    relevant = relevant_rows(test).cache()
    catalog_size = train.select("movieId").distinct().count()
    recommendations = recommend_unseen(ranking, users, seen, k).cache()
    lists = {
        RANKING_MODEL: recommendations,
        MOST_POPULAR: most_popular(train, users, seen, k),
        BY_STARS: by_stars(rating, users, seen, k),
        f"{ARTICLE_VARIANT} by predicted stars": by_stars(fitted[ARTICLE_VARIANT], users, seen, k),
        **{name: by_stars(m, users, seen, k) for name, m in ablated_stars.items()},
        **{
            name: recommend_unseen(m, users, seen, k)
            for name, m in fitted.items()
            if name.startswith("ranking model,")
        },
    }
    scorings: dict[str, Callable[[], dict[str, Any]]] = {
        name: (lambda recs=recs: list_metrics(recs, relevant, k=k, catalog_size=catalog_size))
        for name, recs in lists.items()
    }
    scorings["stars"] = lambda: rating_metrics(predictions)
    if ablated_stars:
        scorings["ablated stars"] = lambda: rating_metrics(
            test_predictions(test, ablated_stars, fallback=biases)
        )
    scores = concurrently(scorings, parallelism)
    stars = scores["stars"] | scores.get("ablated stars", {})

    def row(name: str, role: str) -> dict[str, Any]:
        task = "stars" if name in stars else "lists"
        return {
            "name": name,
            "role": role,
            "task": task,
            **stars.get(name, {}),
            **scores.get(name, {}),
        }

    rows = [
        row(GLOBAL_MEAN, "baseline"),
        row(BIAS_BASELINE, "baseline"),
        row(RATING_MODEL, "model"),
        row(ARTICLE_VARIANT, "baseline"),
        row(RANKING_MODEL, "model"),
        row(MOST_POPULAR, "baseline"),
        row(BY_STARS, "baseline"),
        row(f"{ARTICLE_VARIANT} by predicted stars", "baseline"),
        *[row(name, "ablation") for name in fitted if name != ARTICLE_VARIANT],
    ]
    return Evaluation(predictions=predictions, recommendations=recommendations, rows=rows)


def ablation_fits(
    train: DataFrame,
    bias_params: dict[str, Any],
    als_params: dict[str, Any],
    ranking_params: dict[str, Any],
    seed: int,
) -> dict[str, Callable[[], RatingModel | RankingModel]]:
    """The chosen models with one choice flipped each, same hyperparameters otherwise."""
    decay = bias_params["decay_weighted"]
    confidence = ranking_params["confidence"]
    other = "binary" if confidence == "decay_weight" else "decay_weight"
    ranking_als = {
        name: ranking_params[name] for name in ("rank", "reg_param", "alpha", "max_iter")
    }

    def flipped_biases() -> RatingModel:
        biases = fit_biases(train, **(bias_params | {"decay_weighted": not decay}))
        return fit_rating_model(
            train, variant="bias_residual", seed=seed, biases=biases, **als_params
        )

    return {
        f"rating model, biases {'without' if decay else 'with'} decay weights": flipped_biases,
        "rating model, user-mean normalization instead of biases": lambda: fit_rating_model(
            train, variant="user_mean", seed=seed, nonnegative=False, **als_params
        ),
        "rating model, no normalization": lambda: fit_rating_model(
            train, variant="none", seed=seed, **als_params
        ),
        f"ranking model, {other} confidence": lambda: fit_ranking_model(
            train, confidence=other, seed=seed, **ranking_als
        ),
    }


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

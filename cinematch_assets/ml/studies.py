"""The studies: what judges the design rather than what is served, each downstream of the
product's models and never upstream of serving (`make studies`). Every one returns rows
of the evaluation table (`evaluation.METRICS_SCHEMA`):

- ablation: the article's variant and the chosen models refitted with one choice flipped
  (decay weights, normalization), the rating models' stars and their lists by stars;
- candidates: every candidate served order and the champion with a growing popularity
  penalty (the discovery curve) on the test split;
- the cold-movie protocol (`cold.cold_movie_evaluation`).

Stars cover every test row (a prediction per row is cheap). Lists of orders other than
the served one are scored on a fixed, seeded sample of test users (`tuning.user_sample`:
every user when there are fewer), each mean with its 95% interval over those users, so a
study at 33M costs what it costs at the sample's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pyspark.sql import DataFrame

from cinematch_assets.ml.artifacts import Trained
from cinematch_assets.ml.champion import score_policies
from cinematch_assets.ml.ease import EaseModel
from cinematch_assets.ml.evaluation import (
    RATING_MODEL,
    list_metrics,
    rating_metrics,
    test_predictions,
)
from cinematch_assets.ml.lists import ListPolicy
from cinematch_assets.ml.metrics import relevant_rows
from cinematch_assets.ml.ranking import RankingModel, fit_ranking_model
from cinematch_assets.ml.rating import RatingModel, cached, fit_biases, fit_rating_model
from cinematch_assets.ml.recommend import unseen_lists
from cinematch_assets.ml.tuning import concurrently

ARTICLE_VARIANT = "article's variant"
BY_STARS = "by predicted stars"
# The article's tuned model: user-mean normalized, nonnegative, rank 20, reg 0.05, 15 iterations.
ARTICLE_PARAMS = {"rank": 20, "reg_param": 0.05, "max_iter": 15}
# The popularity penalties of the discovery curve (the champion with each).
DISCOVERY_PENALTIES = (0.0, 0.1, 0.25, 0.5, 1.0)


def discovery_curve(champion: ListPolicy) -> list[ListPolicy]:
    """The champion with each of DISCOVERY_PENALTIES."""
    return [replace(champion, popularity_penalty=p) for p in DISCOVERY_PENALTIES]


def ablation_study(
    train: DataFrame,
    test: DataFrame,
    users: DataFrame,
    *,
    rating: Trained[RatingModel],
    ranking: Trained[RankingModel],
    k: int,
    seed: int,
    ablation: bool = True,
    parallelism: int = 3,
) -> list[dict[str, Any]]:
    """The article's variant beside the rating model, both as stars (every test row) and
    as lists by stars (`users`); with `ablation`, the chosen models refitted with one
    choice flipped each, scored the same way."""
    params = rating.model.params
    biases = cached(
        fit_biases(train, damping=params.bias_damping, decay_weighted=params.bias_decay_weighted)
    )
    refits = {
        ARTICLE_VARIANT: lambda: fit_rating_model(
            train, variant="user_mean", seed=seed, **ARTICLE_PARAMS
        ),
        **(ablation_fits(train, rating.model, ranking.model, seed) if ablation else {}),
    }
    fitted = concurrently(refits, parallelism)
    seen = train.select("userId", "movieId", "rating").cache()
    relevant = relevant_rows(test).join(users, "userId", "left_semi").cache()

    def by_stars(model: RatingModel) -> Callable[[], DataFrame]:
        return lambda: unseen_lists(model, users, seen, k, bias="bias")

    stars = {name: model for name, model in fitted.items() if isinstance(model, RatingModel)}
    lists = {
        f"{RATING_MODEL} {BY_STARS}": by_stars(rating.model),
        f"{ARTICLE_VARIANT} {BY_STARS}": by_stars(fitted[ARTICLE_VARIANT]),
    } | {
        name: by_stars(model)
        if isinstance(model, RatingModel)
        else (lambda m=model: unseen_lists(m, users, seen, k))
        for name, model in fitted.items()
        if name != ARTICLE_VARIANT
    }
    scorings: dict[str, Callable[[], Any]] = {
        name: (lambda make=make: list_metrics(make(), relevant, seen, k=k))
        for name, make in lists.items()
    }
    scorings["stars"] = lambda: rating_metrics(test_predictions(test, stars, fallback=biases))
    scores = concurrently(scorings, parallelism)
    star_scores = scores.pop("stars")
    for table in (seen, relevant, biases.users, biases.items):
        table.unpersist()

    ablated = [name for name in fitted if name != ARTICLE_VARIANT]
    rows = [{"name": ARTICLE_VARIANT, "role": "baseline", "task": "stars",
             **star_scores[ARTICLE_VARIANT]}]  # fmt: skip
    rows += [
        {"name": name, "role": "baseline", "task": "lists", **scores[name]}
        for name in (f"{RATING_MODEL} {BY_STARS}", f"{ARTICLE_VARIANT} {BY_STARS}")
    ]
    # An ablated rating model is one row: its stars and its lists by stars.
    return rows + [
        {"name": name, "role": "ablation",
         "task": "stars" if isinstance(fitted[name], RatingModel) else "lists",
         **star_scores.get(name, {}), **scores[name]}
        for name in ablated
    ]  # fmt: skip


def candidates_study(
    train: DataFrame,
    test: DataFrame,
    users: DataFrame,
    *,
    rating: RatingModel,
    ranking: RankingModel,
    ease: EaseModel | None,
    candidates: list[ListPolicy],
    champion: ListPolicy,
    k: int,
) -> list[dict[str, Any]]:
    """Every candidate served order (role `candidate`) and the champion's discovery curve
    (role `discovery`, the points that are not candidates) on the test split, for
    `users`, in one pass of the list builder."""
    curve = discovery_curve(champion)
    policies = {p.name: p for p in [*candidates, *curve]}
    roles = {p.name: "candidate" for p in candidates} | {
        p.name: "discovery" for p in curve if p.name not in {c.name for c in candidates}
    }
    seen = train.select("userId", "movieId", "rating")
    scores = score_policies(
        list(policies.values()),
        ranking=ranking,
        rating=rating,
        ease=ease,
        history=seen,
        users=users,
        relevant=relevant_rows(test).join(users, "userId", "left_semi"),
        k=k,
        interval=True,
    )
    return [
        {"name": name, "role": role, "task": "lists", "k": k, **scores[name]}
        for name, role in roles.items()
    ]


def ablation_fits(
    train: DataFrame, rating: RatingModel, ranking: RankingModel, seed: int
) -> dict[str, Callable[[], RatingModel | RankingModel]]:
    """The chosen models with one choice flipped each, same hyperparameters otherwise."""
    params = rating.params
    decay = params.bias_decay_weighted
    als = {"rank": params.rank, "reg_param": params.reg_param, "max_iter": params.max_iter}
    chosen = ranking.params
    other = "binary" if chosen.confidence == "decay_weight" else "decay_weight"

    def flipped_biases() -> RatingModel:
        biases = fit_biases(train, damping=params.bias_damping, decay_weighted=not decay)
        return fit_rating_model(train, variant="bias_residual", seed=seed, biases=biases, **als)

    return {
        f"rating model, biases {'without' if decay else 'with'} decay weights": flipped_biases,
        "rating model, user-mean normalization instead of biases": lambda: fit_rating_model(
            train, variant="user_mean", seed=seed, nonnegative=False, **als
        ),
        "rating model, no normalization": lambda: fit_rating_model(
            train, variant="none", seed=seed, **als
        ),
        f"ranking model, {other} confidence": lambda: fit_ranking_model(
            train,
            confidence=other,
            seed=seed,
            rank=chosen.rank,
            reg_param=chosen.reg_param,
            alpha=chosen.alpha,
            max_iter=chosen.max_iter,
        ),
    }

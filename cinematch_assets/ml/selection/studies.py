"""The studies: what judges the design rather than what is served, each downstream of the
product's models and never upstream of serving (`make studies`). Every one returns rows
of the evaluation table (`evaluation.METRICS_SCHEMA`):

- ablation: the article's variant and the chosen models refitted with one choice flipped
  (decay weights, normalization), the rating models' stars and their lists by stars;
- candidates: every candidate served order and the champion with a growing popularity
  penalty (the discovery curve) on the test split;
- the cold-movie protocol (`cold.cold_movie_evaluation`);
- the rating model's search by k-fold cross-validation (the product tunes on one
  validation split): would more folds have chosen other settings?
- the served order on every test user: the product's held-out evaluation scores a
  seeded sample of them, checked against this.

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
from pyspark.sql import functions as F

from cinematch_assets.ml.lists.build import ListPolicy
from cinematch_assets.ml.lists.new_movies import read_new_movie_ratings
from cinematch_assets.ml.lists.recommend import unseen_lists
from cinematch_assets.ml.models.artifacts import Read, Trained, TuningResult
from cinematch_assets.ml.models.ease import EaseModel
from cinematch_assets.ml.models.ranking import RankingModel, fit_ranking_model
from cinematch_assets.ml.models.rating import RatingModel, cached, fit_biases, fit_rating_model
from cinematch_assets.ml.selection.champion import score_policies
from cinematch_assets.ml.selection.evaluation import (
    RATING_MODEL,
    SERVED,
    Served,
    list_metrics,
    rating_metrics,
    served_model_items,
    served_test_lists,
    test_predictions,
)
from cinematch_assets.ml.selection.metrics import relevant_rows
from cinematch_assets.ml.selection.model_tuning import tune_biases, tune_rating_model
from cinematch_assets.ml.selection.tuning import concurrently, plan_tuning, tuning_splits

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
    ids = {label: row_id for row_id, label in ablation_labels(rating.model, ranking.model).items()}
    rows = [{"id": "article_variant", "name": ARTICLE_VARIANT, "role": "baseline",
             "task": "stars", **star_scores[ARTICLE_VARIANT]}]  # fmt: skip
    rows += [
        {"id": row_id, "name": name, "role": "baseline", "task": "lists", **scores[name]}
        for row_id, name in (
            ("rating_model_by_stars", f"{RATING_MODEL} {BY_STARS}"),
            ("article_variant_by_stars", f"{ARTICLE_VARIANT} {BY_STARS}"),
        )
    ]
    # An ablated rating model is one row: its stars and its lists by stars.
    return rows + [
        {"id": f"ablation:{ids[name]}", "name": name, "role": "ablation",
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
    movies: DataFrame | None = None,
) -> list[dict[str, Any]]:
    """Every candidate served order (role `candidate`) and the champion's discovery curve
    (role `discovery`, the points that are not candidates) on the test split, for
    `users`, in one pass of the list builder (`movies`: movieId, genres, for the genre
    taste)."""
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
        movies=movies,
        interval=True,
    )
    return [
        {"id": f"{role}:{policies[name].id}", "name": name, "role": role, "task": "lists",
         "k": k, **scores[name]}
        for name, role in roles.items()
    ]  # fmt: skip


def served_every_user_study(
    read: Read, served: Served, train: DataFrame, test: DataFrame, *, k: int
) -> list[dict[str, Any]]:
    """The served order's lists scored on every test user (role `every_user`), with 95%
    intervals: the product scores a seeded sample of them, and this is what the sample
    is checked against."""
    items = served_model_items(read, served, train)
    users = test.select("userId").distinct()
    lists = served_test_lists(
        items, served.ranking.model, served.rating.model, train, users, k,
        read_new_movie_ratings(read),
    ).filter(F.col("rank") <= k)  # fmt: skip
    seen = train.select("userId", "movieId", "rating")
    return [
        {"id": "served_every_user", "name": f"{SERVED}, every test user", "role": "every_user",
         "task": "lists", **list_metrics(lists, relevant_rows(test), seen, k=k)}
    ]  # fmt: skip


def ablation_labels(rating: RatingModel, ranking: RankingModel) -> dict[str, str]:
    """Each ablation's stable id and its label (which says what was flipped)."""
    decay = rating.params.bias_decay_weighted
    other = "binary" if ranking.params.confidence == "decay_weight" else "decay_weight"
    return {
        "bias_decay": f"rating model, biases {'without' if decay else 'with'} decay weights",
        "user_mean": "rating model, user-mean normalization instead of biases",
        "no_normalization": "rating model, no normalization",
        "confidence": f"ranking model, {other} confidence",
    }


def ablation_fits(
    train: DataFrame, rating: RatingModel, ranking: RankingModel, seed: int
) -> dict[str, Callable[[], RatingModel | RankingModel]]:
    """The chosen models with one choice flipped each, same hyperparameters otherwise, by
    label (`ablation_labels`)."""
    params = rating.params
    decay = params.bias_decay_weighted
    als = {"rank": params.rank, "reg_param": params.reg_param, "max_iter": params.max_iter}
    chosen = ranking.params
    other = "binary" if chosen.confidence == "decay_weight" else "decay_weight"
    label = ablation_labels(rating, ranking)

    def flipped_biases() -> RatingModel:
        biases = fit_biases(train, damping=params.bias_damping, decay_weighted=not decay)
        return fit_rating_model(train, variant="bias_residual", seed=seed, biases=biases, **als)

    return {
        label["bias_decay"]: flipped_biases,
        label["user_mean"]: lambda: fit_rating_model(
            train, variant="user_mean", seed=seed, nonnegative=False, **als
        ),
        label["no_normalization"]: lambda: fit_rating_model(
            train, variant="none", seed=seed, **als
        ),
        label["confidence"]: lambda: fit_ranking_model(
            train,
            confidence=other,
            seed=seed,
            rank=chosen.rank,
            reg_param=chosen.reg_param,
            alpha=chosen.alpha,
            max_iter=chosen.max_iter,
        ),
    }


def search_grid(search: TuningResult) -> list[dict[str, Any]]:
    """The combinations a search tried, in its order."""
    return [{name: row[name] for name in search.parameters} for row in search.rows]


def _label(params: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in params.items())


def rating_cv_study(
    train: DataFrame,
    rating: Trained[RatingModel],
    *,
    folds: int,
    max_rows: int,
    parallelism: int,
    log: Callable[[str], object] = print,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rating model's own search (the same bias and ALS settings, the same seed) again
    by `folds`-fold cross-validation of the training split, on a sample of users with about
    `max_rows` ratings when there are more: rows (role `cv`) of each setting's mean RMSE
    over the folds, and whether the folds choose what the product's split chose."""
    searches = rating.training.searches
    seed = rating.training.seed
    plan = plan_tuning(
        train.count(), method="cv", folds=folds, validation_fraction=0.0, cv_max_rows=0,
        max_rows=max_rows,
    )  # fmt: skip
    splits = [(fit.cache(), held.cache()) for fit, held in tuning_splits(train, plan, seed)]
    try:
        biases = tune_biases(splits, search_grid(searches["bias_search"]), log=log)
        als = tune_rating_model(
            splits, search_grid(searches["als_search"]), variant=rating.model.params.variant,
            bias_params=biases.best_params, seed=seed, parallelism=parallelism, log=log,
            tolerance=searches["als_search"].tolerance or 0.0,
        )  # fmt: skip
    finally:
        for fit, held in splits:
            fit.unpersist()
            held.unpersist()
    rows = [
        {"id": f"cv:{row_id}:{_label(params).replace(', ', ':').replace('=', '-')}",
         "name": f"{name}, {_label(params)}", "role": "cv", "task": "stars",
         "rmse": row[f"mean {search.metric}"]}
        for row_id, name, search in (
            ("bias_baseline", "damped bias baseline", biases), ("rating_model", RATING_MODEL, als)
        )
        for params, row in zip(search_grid(search), search.rows, strict=True)
    ]  # fmt: skip
    product = searches["bias_search"].best_params | searches["als_search"].best_params
    chosen = biases.best_params | als.best_params
    details = {
        "tuning": plan.describe(),
        "product_choice": _label(product),
        "cv_choice": _label(chosen),
        "agrees": product == chosen,
    }
    return rows, details

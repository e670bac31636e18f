"""The next period: the served lists judged as a deployed recommender meets them. A random
split trains on ratings made after the test ratings of the same user; here one global
time cutoff T (by default the time that leaves the last `share_after` of the ratings
after it) separates what is known from what comes next.

The served procedure is replayed on everything before T, as the product runs it: each
model's search with the product's grids and tolerances on a validation split, the final
fits, the champion's choice among the product's candidates with its coverage floor, and
the star floor. Its lists are scored on what each user rated after T, for the users with
ratings on both sides, beside most popular, recently popular (the most rated in the
`recent_days` before T: the strongest naive baseline under a time split), each model
alone, EASE with the other weighting of its Gram, EASE blended with implicit ALS,
RP3beta and the sequence model (`ml.models.sequence`), the last two tuned on the same
validation split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cinematch_assets.ml.lists.build import ListPolicy, Ranker
from cinematch_assets.ml.lists.recommend import (
    ease_ranker,
    model_items,
    most_popular,
    recommend,
    unseen_lists,
)
from cinematch_assets.ml.lists.sequence import SequenceRanker
from cinematch_assets.ml.models.artifacts import Trained
from cinematch_assets.ml.models.ease import EaseModel, EaseParams, refit_ease_model
from cinematch_assets.ml.models.ranking import RankingModel, RankingParams, fit_ranking_model
from cinematch_assets.ml.models.rating import RatingModel, RatingParams, refit_rating_model
from cinematch_assets.ml.models.rp3 import RP3Walk
from cinematch_assets.ml.models.sequence import SequenceGrams
from cinematch_assets.ml.selection.champion import choose, score_policies, validation_fits
from cinematch_assets.ml.selection.evaluation import list_metrics
from cinematch_assets.ml.selection.metrics import Z95, ndcg_per_user, ranking_metrics, relevant_rows
from cinematch_assets.ml.selection.model_tuning import (
    tune_biases,
    tune_ease,
    tune_ranking_model,
    tune_rating_model,
)
from cinematch_assets.ml.selection.studies import search_grid
from cinematch_assets.ml.selection.tuning import (
    Split,
    concurrently,
    plan_tuning,
    tuning_splits,
    user_sample,
)
from cinematch_assets.transforms.gold import DecayReference, training_features, user_stats

SERVED = "served order"
RECENTLY_POPULAR = "recently popular"
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Procedure:
    """The served procedure as the product ran it: what each search tried (grids and
    tolerances), the champion's candidates and coverage floor."""

    bias_grid: list[dict[str, Any]]
    rating_grid: list[dict[str, Any]]
    rating_tolerance: float
    rating_variant: str
    rating_nonnegative: bool
    ranking_grid: list[dict[str, Any]]
    ranking_tolerance: float
    ease_grid: list[dict[str, Any]]
    ease_max_items: int
    candidates: list[ListPolicy]
    min_coverage: float

    @classmethod
    def of(
        cls,
        rating: Trained[RatingModel],
        ranking: Trained[RankingModel],
        ease: Trained[EaseModel],
        candidates: list[ListPolicy],
        min_coverage: float,
    ) -> Procedure:
        rating_search = rating.training.searches["als_search"]
        ranking_search = ranking.training.searches["als_search"]
        ease_grid = search_grid(ease.training.searches["search"])
        # A search from before the Gram's weighting was searched tried binary only.
        ease_grid = [{"decay_weighted": False} | params for params in ease_grid]
        return cls(
            bias_grid=search_grid(rating.training.searches["bias_search"]),
            rating_grid=search_grid(rating_search),
            rating_tolerance=rating_search.tolerance or 0.0,
            rating_variant=rating.model.params.variant,
            rating_nonnegative=rating.model.params.nonnegative,
            ranking_grid=search_grid(ranking_search),
            ranking_tolerance=ranking_search.tolerance or 0.0,
            ease_grid=ease_grid,
            ease_max_items=ease.model.params.max_items,
            candidates=candidates,
            min_coverage=min_coverage,
        )


@dataclass(frozen=True)
class Settings:
    """The study's own settings (`studies/next_period`'s config): where T falls, the
    recent window, the replay's tuning split (as the product's), the list length, the
    user sample, fits in flight, and the candidates' grids."""

    share_after: float
    recent_days: int
    validation_fraction: float
    tuning_max_rows: int
    seed: int
    k: int
    sample_users: int
    parallel_fits: int
    rp3_betas: Sequence[float]
    sequence_regs: Sequence[float]
    sequence_window: int
    sequence_decay: float


def cutoff_time(ratings: DataFrame, share_after: float) -> int:
    """The time (unix seconds) that leaves about `share_after` of the ratings at or after
    it (an approximate quantile, 1e-4 of the rows at most off)."""
    if not 0 < share_after < 1:
        raise ValueError(f"share_after must be in (0, 1), not {share_after}")
    (cutoff,) = ratings.approxQuantile("timestamp", [1.0 - share_after], 1e-4)
    return int(cutoff)


def split_at(
    ratings: DataFrame, cutoff: int, *, half_life_days: float, reference: DecayReference
) -> tuple[DataFrame, DataFrame]:
    """(before, after): the ratings before `cutoff` with Gold's training features made
    from them alone (user means, time-decay weights), and those at or after it by users
    who rated before it."""
    rows = ratings.select("userId", "movieId", "rating", "timestamp", "rated_at")
    before = rows.filter(F.col("timestamp") < cutoff)
    features = training_features(
        before, user_stats(before), half_life_days=half_life_days, reference=reference
    )
    after = rows.filter(F.col("timestamp") >= cutoff).join(
        before.select("userId").distinct(), "userId", "left_semi"
    )
    return features, after


@dataclass(frozen=True)
class Replayed:
    """The served procedure's result on other rows: the final models, the order chosen
    on validation and why, and the validation split it was chosen on."""

    rating: RatingModel
    ranking: RankingModel
    ease: EaseModel
    policy: ListPolicy
    why: str
    split: Split


def replay(
    rows: DataFrame,
    procedure: Procedure,
    settings: Settings,
    *,
    movies: DataFrame,
    log: Callable[[str], object] = print,
) -> Replayed:
    """The served procedure on `rows` (Gold training rows): searches, final fits,
    champion."""
    plan = plan_tuning(
        rows.count(), method="validation", folds=0, cv_max_rows=0,
        validation_fraction=settings.validation_fraction, max_rows=settings.tuning_max_rows,
    )  # fmt: skip
    ((fit_on, validation),) = tuning_splits(rows, plan, settings.seed)
    split = (fit_on.cache(), validation.cache())
    seed, k, parallelism = settings.seed, settings.k, settings.parallel_fits
    biases = tune_biases([split], procedure.bias_grid, log=log)
    als = tune_rating_model(
        [split], procedure.rating_grid, variant=procedure.rating_variant,
        bias_params=biases.best_params, seed=seed, parallelism=parallelism, log=log,
        tolerance=procedure.rating_tolerance,
    )  # fmt: skip
    ranking_search, _ = tune_ranking_model(
        split, procedure.ranking_grid, k=k, seed=seed, parallelism=parallelism, log=log,
        tolerance=procedure.ranking_tolerance,
    )  # fmt: skip
    ease_search, _ = tune_ease(
        split, procedure.ease_grid, max_items=procedure.ease_max_items, k=k, log=log
    )
    rating_params = RatingParams(
        variant=procedure.rating_variant, nonnegative=procedure.rating_nonnegative,
        bias_damping=biases.best_params["damping"],
        bias_decay_weighted=biases.best_params["decay_weighted"], **als.best_params,
    )  # fmt: skip
    ranking_params = RankingParams(**ranking_search.best_params)
    ease_params = EaseParams(max_items=procedure.ease_max_items, **ease_search.best_params)
    final = concurrently(
        {
            "rating": lambda: refit_rating_model(rows, rating_params, seed=seed),
            "ranking": lambda: fit_ranking_model(rows, seed=seed, **ranking_search.best_params),
            "ease": lambda: refit_ease_model(rows, ease_params, log=log),
        },
        parallelism,
    )
    models = validation_fits(
        fit_on, rating=rating_params, ranking=ranking_params, ease=ease_params, seed=seed,
        parallelism=parallelism, log=log,
    )  # fmt: skip
    scores = score_policies(
        procedure.candidates, ranking=models.ranking, rating=models.rating, ease=models.ease,
        history=fit_on.select("userId", "movieId", "rating"), users=validation,
        relevant=relevant_rows(validation), k=k, movies=movies,
    )  # fmt: skip
    choice = choose(procedure.candidates, scores, procedure.min_coverage)
    log(f"Next period, served order on the rows before T: {choice.policy.name} ({choice.why})")
    return Replayed(
        final["rating"], final["ranking"], final["ease"], choice.policy, choice.why, split
    )


@dataclass(frozen=True)
class Tuned:
    """A candidate chosen on the replay's validation split and refitted on every row
    before T: its setting, its ranker, and each setting's validation NDCG@k, in order."""

    label: str
    ranker: Ranker
    validation: str


def _best_setting(
    settings: dict[str, float], ranker: Callable[[float], Ranker], split: Split, k: int
) -> tuple[str, str]:
    """The label of the setting (label -> value) whose ranker's lists, for the validation
    users with the training part's movies left out, score the best validation NDCG@k, and
    every setting's NDCG@k in order. One ranker is held at a time: each is a movies x
    movies matrix."""
    fit_on, validation = split
    relevant = relevant_rows(validation)
    users = _no_factors(relevant.select("userId").distinct())
    history = fit_on.select("userId", "movieId", "rating")
    found = {
        label: ranking_metrics(recommend(ranker(value), users, history, k), relevant, k=k)["ndcg"]
        for label, value in settings.items()
    }
    scores = ", ".join(f"{label} {value:.4f}" for label, value in found.items())
    return max(found, key=found.__getitem__), scores


def tune_candidates(
    replayed: Replayed, rows: DataFrame, settings: Settings, max_items: int
) -> tuple[Tuned, Tuned]:
    """RP3beta's beta and the sequence model's lambda on the replay's validation split
    (the walk, S^T S and S^T T made once for every value, as EASE's Gram), each refitted
    on `rows` (everything before T)."""
    window, decay, k = settings.sequence_window, settings.sequence_decay, settings.k
    fit_on = replayed.split[0]

    def sequences(of: DataFrame) -> SequenceGrams:
        return SequenceGrams.of(of, window=window, decay=decay, max_items=max_items)

    # Each search's walk or grams live only through the search (n x n float64 each).
    betas = {f"beta {beta:g}": beta for beta in settings.rp3_betas}
    rp3, rp3_scores = _best_setting(
        betas, partial(_rp3_ranker, RP3Walk.of(fit_on, max_items)), replayed.split, k
    )
    regs = {f"lambda {reg:g}": reg for reg in settings.sequence_regs}
    sequence, sequence_scores = _best_setting(
        regs, partial(_sequence_ranker, sequences(fit_on)), replayed.split, k
    )
    return (
        Tuned(rp3, _rp3_ranker(RP3Walk.of(rows, max_items), betas[rp3]), rp3_scores),
        Tuned(sequence, _sequence_ranker(sequences(rows), regs[sequence]), sequence_scores),
    )


def _rp3_ranker(walk: RP3Walk, beta: float) -> Ranker:
    return ease_ranker(walk.model(beta))


def _sequence_ranker(grams: SequenceGrams, reg: float) -> Ranker:
    """The sequence model with the profiles of the users it was fitted on."""
    return SequenceRanker.of(grams.model(reg), grams.histories)


def _no_factors(users: DataFrame) -> DataFrame:
    """`users` (userId) as the list builder's input for a ranker without user factors."""
    return users.select("userId").withColumn("features", F.array().cast("array<float>"))


WEIGHTING = {False: "binary Gram", True: "time-decay Gram"}


def _orders(
    replayed: Replayed,
    candidates: tuple[Tuned, Tuned],
    other_ease: EaseModel,
    before: DataFrame,
    users: DataFrame,
    *,
    cutoff: int,
    procedure: Procedure,
    settings: Settings,
    movies: DataFrame,
) -> dict[str, tuple[str, Callable[[], DataFrame]]]:
    """Every order the study scores, by row id: its name and how to make its lists for
    `users`, their ratings before T left out."""
    k = settings.k
    seen = before.select("userId", "movieId", "rating")
    chosen_ease = replayed.ease
    items = model_items(replayed.ranking, replayed.rating, before, ease=chosen_ease, movies=movies)
    ranking_users = replayed.ranking.users.join(users, "userId")
    anyone = _no_factors(users)

    def by_policy(policy: ListPolicy) -> Callable[[], DataFrame]:
        return lambda: recommend(
            items.ranker(policy), ranking_users, seen, k, stars=items.rating,
            star_users=replayed.rating.users,
        )  # fmt: skip

    def ease_alone(model: EaseModel, note: str = "") -> tuple[str, Callable[[], DataFrame]]:
        name = f"EASE alone, {WEIGHTING[model.params.decay_weighted]}{note}"
        return name, lambda: recommend(ease_ranker(model), anyone, seen, k)

    def ease_id(model: EaseModel) -> str:
        return f"ease_{'decay' if model.params.decay_weighted else 'binary'}"

    # EASE with implicit ALS as the champion's candidates blend them, nothing else added.
    als_weight = max((p.als_weight for p in procedure.candidates), default=0.0)
    blend = ListPolicy("ease", als_weight=als_weight or 0.5)
    recent = before.filter(F.col("timestamp") >= cutoff - settings.recent_days * SECONDS_PER_DAY)
    rp3, sequence = candidates
    return {
        "served": (f"{SERVED}: {replayed.policy.name}", by_policy(replayed.policy)),
        "most_popular": ("most popular", lambda: most_popular(before, users, seen, k)),
        "recently_popular": (
            f"{RECENTLY_POPULAR} (the {settings.recent_days} days before T)",
            lambda: most_popular(recent, users, seen, k),
        ),
        "als": ("implicit ALS alone", by_policy(ListPolicy("als"))),
        "rating_by_stars": (
            "rating model by predicted stars",
            lambda: unseen_lists(replayed.rating, users, seen, k, bias="bias"),
        ),
        ease_id(chosen_ease): ease_alone(chosen_ease),
        ease_id(other_ease): ease_alone(other_ease, " (candidate)"),
        "ease_als": (f"{blend.name} (candidate)", by_policy(blend)),
        "rp3beta": (
            f"RP3beta, {rp3.label} (candidate)",
            lambda: recommend(rp3.ranker, anyone, seen, k),
        ),
        "sequence": (
            f"sequence model, {sequence.label} (candidate)",
            lambda: recommend(sequence.ranker, anyone, seen, k),
        ),
    }


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The mean of a - b (paired by position) and its 95% interval's half-width."""
    difference = a - b
    if len(difference) < 2:
        return float(difference.mean()) if len(difference) else float("nan"), float("nan")
    spread = float(difference.std(ddof=1)) / math.sqrt(len(difference))
    return float(difference.mean()), Z95 * spread


def next_period_study(
    ratings: DataFrame,
    procedure: Procedure,
    settings: Settings,
    *,
    movies: DataFrame,
    half_life_days: float,
    reference: DecayReference,
    log: Callable[[str], object] = print,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows (role `next_period`) of every order's lists on the ratings after T, and the
    details: T, the rows on each side, the served order chosen before T, and the paired
    difference of its NDCG@k and recently popular's on the same users with its 95%
    interval. `ratings`: Gold's ratings (train and test: the time cut replaces the
    random split)."""
    k = settings.k
    cutoff = cutoff_time(ratings, settings.share_after)
    before, after = split_at(ratings, cutoff, half_life_days=half_life_days, reference=reference)
    before, after = before.cache(), after.cache()
    replayed = replay(before, procedure, settings, movies=movies, log=log)
    candidates = tune_candidates(replayed, before, settings, procedure.ease_max_items)
    for cached in replayed.split:
        cached.unpersist()
    chosen = replayed.ease.params
    other_ease = refit_ease_model(
        before, replace(chosen, decay_weighted=not chosen.decay_weighted), log=log
    )
    relevant_after = relevant_rows(after)
    users = user_sample(relevant_after, settings.sample_users, settings.seed).cache()
    relevant = relevant_after.join(users, "userId", "left_semi").cache()
    seen = before.select("userId", "movieId", "rating")
    orders = _orders(
        replayed, candidates, other_ease, before, users, cutoff=cutoff, procedure=procedure,
        settings=settings, movies=movies,
    )  # fmt: skip
    lists = {row_id: make().cache() for row_id, (_, make) in orders.items()}
    scores = concurrently(
        {row_id: (lambda made=made: list_metrics(made, relevant, seen, k=k))
         for row_id, made in lists.items()},
        settings.parallel_fits,
    )  # fmt: skip
    served = ndcg_per_user(lists["served"], relevant, k=k)
    baseline = ndcg_per_user(lists["recently_popular"], relevant, k=k)
    difference, half_width = paired_difference(served, baseline)
    rows = [
        {"id": f"next_period:{row_id}", "name": name, "role": "next_period", "task": "lists",
         "k": k, **scores[row_id]}
        for row_id, (name, _) in orders.items()
    ]  # fmt: skip
    details = {
        "cutoff": datetime.fromtimestamp(cutoff, UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "share_after": settings.share_after,
        "recent_days": settings.recent_days,
        "rows_before": before.count(),
        "ratings_after": ratings.filter(F.col("timestamp") >= cutoff).count(),
        "rows_after": after.count(),
        "users": len(served),
        "served_order": replayed.policy.name,
        "why": replayed.why,
        "ndcg_served": float(served.mean()) if len(served) else float("nan"),
        "ndcg_recently_popular": float(baseline.mean()) if len(baseline) else float("nan"),
        "ndcg_difference": difference,
        "ndcg_difference_ci": half_width,
        "rp3beta_validation": candidates[0].validation,
        "sequence_validation": candidates[1].validation,
    }
    for cached in (*lists.values(), before, after, users, relevant):
        cached.unpersist()
    return rows, details

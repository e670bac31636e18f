"""The served order, chosen on validation: every candidate `ListPolicy` (ranking model or
EASE blended with implicit ALS, weight of the predicted stars, popularity penalty, weight
of the genre taste; the star floor is a product rule)
scored on the same users in one pass of the list builder, and the champion picked.

The same scoring serves the held-out evaluation, with the final models and the test split.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from pyspark.sql import DataFrame

from cinematch_assets import keys
from cinematch_assets.ml.lists.build import ListPolicy
from cinematch_assets.ml.lists.recommend import model_items, recommend_candidates
from cinematch_assets.ml.models.artifacts import Read
from cinematch_assets.ml.models.ease import EaseModel, EaseParams, ease_key, refit_ease_model
from cinematch_assets.ml.models.fits import fit_key, is_kept, taken_or_fit
from cinematch_assets.ml.models.ranking import RankingModel, RankingParams, fit_ranking_model
from cinematch_assets.ml.models.rating import (
    RatingModel,
    RatingParams,
    rating_key,
    refit_rating_model,
)
from cinematch_assets.ml.selection.metrics import exposure_metrics_by, ranking_metrics_by
from cinematch_assets.ml.selection.tuning import concurrently


def candidate_policies(
    rankers: Sequence[str],
    stars_weights: Sequence[float],
    popularity_penalties: Sequence[float],
    star_floor: float,
    taste_weights: Sequence[float] = (0.0,),
    als_weights: Sequence[float] = (0.0,),
) -> list[ListPolicy]:
    """Every combination; `als_weights` (implicit ALS blended into EASE) for EASE only."""
    return [
        ListPolicy(ranker, weight, penalty, star_floor, taste, als)
        for ranker, als, weight, penalty, taste in itertools.product(
            rankers, als_weights, stars_weights, popularity_penalties, taste_weights
        )
        if ranker == "ease" or not als
    ]


@dataclass(frozen=True)
class ValidationFits:
    """The chosen models fitted on a validation split's training part, and which of them
    were the fits their own tuning made there earlier in the run."""

    rating: RatingModel
    ranking: RankingModel
    ease: EaseModel
    reused: list[str]


def validation_fits(
    fit_on: DataFrame,
    *,
    rating: RatingParams,
    ranking: RankingParams,
    ease: EaseParams,
    seed: int,
    parallelism: int,
    log: Callable[[str], object] = print,
) -> ValidationFits:
    """Each model as its asset chose it, fitted on `fit_on`: taken from its tuning when
    it tuned on these very rows with this seed (`fits.keep`), fitted here otherwise."""
    fitted_as = {
        "rating": rating_key(fit_on, rating, seed),
        "ranking": fit_key("ranking", fit_on, asdict(ranking), seed),
        "ease": ease_key(fit_on, ease),
    }
    reused = sorted(name for name, key in fitted_as.items() if is_kept(key))
    fits = {
        "rating": lambda: refit_rating_model(fit_on, rating, seed=seed),
        "ranking": lambda: fit_ranking_model(fit_on, seed=seed, **asdict(ranking)),
        "ease": lambda: refit_ease_model(fit_on, ease, log=log),
    }
    models = concurrently(
        {name: (lambda name=name: taken_or_fit(fitted_as[name], fits[name])) for name in fits},
        parallelism,
    )
    return ValidationFits(models["rating"], models["ranking"], models["ease"], reused)


def score_policies(
    policies: Sequence[ListPolicy],
    *,
    ranking: RankingModel,
    rating: RatingModel,
    ease: EaseModel | None,
    history: DataFrame,
    users: DataFrame,
    relevant: DataFrame,
    k: int,
    movies: DataFrame | None = None,
    interval: bool = False,
) -> dict[str, dict[str, Any]]:
    """NDCG, precision, recall, MAP, coverage, novelty, Gini and the share below the star
    floor of each policy's top-k lists for `users` (userId), their `history` (userId,
    movieId, rating: the ratings the models were fitted on) left out, against `relevant`
    (`movies`: movieId, genres, for the policies that weigh the genre taste). By name;
    with `interval`, each ranking metric's 95% interval (`ranking_metrics`)."""
    items = model_items(ranking, rating, history, ease=ease, movies=movies)
    rankers = items.rankers(policies)
    users = ranking.users.join(users.select("userId").distinct(), "userId")
    lists = recommend_candidates(
        rankers, users, history, k, stars=items.rating, star_users=rating.users, explain=False
    ).cache()
    accuracy = ranking_metrics_by(lists, relevant, k=k, by="candidate", interval=interval)
    exposure = exposure_metrics_by(
        lists, history, k=k, by="candidate", floor=policies[0].star_floor or 3.0
    )
    lists.unpersist()
    return {name: accuracy.get(name, {}) | exposure.get(name, {}) for name in rankers}


@dataclass(frozen=True)
class Choice:
    policy: ListPolicy
    why: str


def choose(
    policies: Sequence[ListPolicy], scores: dict[str, dict[str, Any]], min_coverage: float
) -> Choice:
    """The best validation NDCG among the policies whose lists cover at least
    `min_coverage` of the catalog (the best NDCG of all when none does)."""
    feasible = [p for p in policies if scores[p.name].get("coverage", 0.0) >= min_coverage]
    pool = feasible or list(policies)
    best = max(pool, key=lambda p: scores[p.name].get("ndcg", 0.0))
    values = scores[best.name]
    why = (
        f"best validation NDCG@k ({values.get('ndcg', 0.0):.4f}) of the "
        f"{len(feasible)} candidates covering at least {min_coverage:.0%} of the catalog "
        f"(coverage {values.get('coverage', 0.0):.3f})"
        if feasible
        else f"no candidate covered {min_coverage:.0%} of the catalog: best validation "
        f"NDCG@k ({values.get('ndcg', 0.0):.4f}) of all"
    )
    return Choice(best, why)


CHAMPION_COLUMNS = [f.name for f in fields(ListPolicy)]


def read_candidates(read: Read) -> tuple[list[ListPolicy], ListPolicy]:
    """Every candidate served order and the one chosen on validation
    (`ml/ranking_champion`), in the order they were tried."""
    rows = read(keys.RANKING_CHAMPION).toPandas()
    policies = [
        ListPolicy(**{name: row[name] for name in CHAMPION_COLUMNS}) for _, row in rows.iterrows()
    ]
    chosen = rows["chosen"].to_numpy().nonzero()[0]
    if len(chosen) != 1:
        raise ValueError(f"ml/ranking_champion marks {len(chosen)} rows chosen, not one")
    return policies, policies[chosen[0]]

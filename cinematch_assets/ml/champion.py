"""The served order, chosen on validation: every candidate `ListPolicy` (ranking model,
weight of the predicted stars, popularity penalty; the star floor is a product rule)
scored on the same users in one pass of the list builder, and the champion picked.

The same scoring serves the held-out evaluation, with the final models and the test split.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame

from cinematch_assets.ml.ease import EaseModel
from cinematch_assets.ml.lists import ListPolicy
from cinematch_assets.ml.metrics import exposure_metrics_by, ranking_metrics_by
from cinematch_assets.ml.ranking import RankingModel
from cinematch_assets.ml.rating import RatingModel
from cinematch_assets.ml.recommend import model_items, recommend_candidates


def candidate_policies(
    rankers: Sequence[str],
    stars_weights: Sequence[float],
    popularity_penalties: Sequence[float],
    star_floor: float,
) -> list[ListPolicy]:
    return [
        ListPolicy(ranker, weight, penalty, star_floor)
        for ranker, weight, penalty in itertools.product(
            rankers, stars_weights, popularity_penalties
        )
    ]


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
    interval: bool = False,
) -> dict[str, dict[str, Any]]:
    """NDCG, precision, recall, MAP, coverage, novelty, Gini and the share below the star
    floor of each policy's top-k lists for `users` (userId), their `history` (userId,
    movieId, rating: the ratings the models were fitted on) left out, against `relevant`.
    By name; with `interval`, each ranking metric's 95% interval (`ranking_metrics`)."""
    items = model_items(ranking, rating, history, ease=ease)
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

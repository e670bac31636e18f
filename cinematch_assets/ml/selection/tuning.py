"""Hyperparameter search on training data only: k-fold cross-validation or one validation
split, optionally on a sample of users, fits run a few at a time.

Folds and samples are seeded hashes of the keys (like the Gold split), so they never
depend on how the data is partitioned. The Gold test split is never passed in here.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cinematch_assets.ml.models.artifacts import TuningResult

BUCKETS = 1_000_000
Split = tuple[DataFrame, DataFrame]
Method = Literal["auto", "cv", "validation"]
S = TypeVar("S")  # whatever one split is to the evaluation (DataFrames, prepared data)
T = TypeVar("T")


def parameter_grid(**values: Sequence[Any]) -> list[dict[str, Any]]:
    """Every combination, in order: grid(rank=[1, 2], reg=[a]) -> [{rank:1, reg:a}, ...]."""
    names = list(values)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values.values())]


def _bucket(seed: int, *keys: str) -> Column:
    # Salted: Gold's split hashes the same keys with its own seed, and an unsalted hash
    # with the same seed would put every training row on one side (an empty validation).
    return F.pmod(F.xxhash64(*keys, F.lit("tuning"), F.lit(seed)), F.lit(BUCKETS))


def kfold_splits(df: DataFrame, k: int, seed: int) -> list[Split]:
    """k (train, validation) pairs; every row is in exactly one validation part."""
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, not {k}")
    fold = F.pmod(_bucket(seed, "userId", "movieId"), F.lit(k))
    return [(df.filter(fold != i), df.filter(fold == i)) for i in range(k)]


def validation_split(df: DataFrame, fraction: float, seed: int) -> Split:
    """(train, validation): about `fraction` of the rows held out, by a hash of the key."""
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be in (0, 1), not {fraction}")
    held_out = _bucket(seed, "userId", "movieId") < int(round(fraction * BUCKETS))
    return df.filter(~held_out), df.filter(held_out)


def sample_users(df: DataFrame, fraction: float, seed: int) -> DataFrame:
    """All the ratings of about `fraction` of the users (whole users, so each sampled
    user keeps a full history to learn and validate on)."""
    if fraction >= 1:
        return df
    return df.filter(_bucket(seed, "userId") < int(math.ceil(fraction * BUCKETS)))


def user_sample(df: DataFrame, size: int, seed: int) -> DataFrame:
    """`size` of the users of `df` (userId), every one when there are fewer: those first
    by the salted hash `sample_users` cuts at, so a sample holds the same users whatever
    else changes and lies inside any larger one."""
    users = df.select("userId").distinct()
    return users.orderBy(_bucket(seed, "userId"), "userId").limit(size)


@dataclass(frozen=True)
class TuningPlan:
    """k-fold CV or one validation split, on all users or a sample of them."""

    method: Literal["cv", "validation"]
    folds: int
    validation_fraction: float
    user_fraction: float

    def describe(self) -> str:
        how = (
            f"{self.folds}-fold cross-validation"
            if self.method == "cv"
            else f"one validation split ({self.validation_fraction:.0%} held out)"
        )
        if self.user_fraction < 1:
            how += f" on a {self.user_fraction:.1%} sample of the users"
        return how


def plan_tuning(
    rows: int,
    *,
    method: Method,
    folds: int,
    validation_fraction: float,
    cv_max_rows: int,
    max_rows: int,
) -> TuningPlan:
    """`auto`: cross-validation up to `cv_max_rows` training rows, one validation split
    above. Above `max_rows`, tuning sees a sample of the users with about that many rows:
    enough to rank hyperparameters, while its cost stops growing with the data."""
    chosen = method if method != "auto" else "cv" if rows <= cv_max_rows else "validation"
    fraction = min(1.0, max_rows / rows) if rows > 0 else 1.0
    return TuningPlan(chosen, folds, validation_fraction, fraction)


def tuning_splits(df: DataFrame, plan: TuningPlan, seed: int) -> list[Split]:
    sample = sample_users(df, plan.user_fraction, seed)
    if plan.method == "cv":
        return kfold_splits(sample, plan.folds, seed)
    return [validation_split(sample, plan.validation_fraction, seed)]


def concurrently(tasks: Mapping[str, Callable[[], T]], parallelism: int) -> dict[str, T]:
    """Run independent Spark-bound tasks `parallelism` at a time; results by name."""
    with ThreadPoolExecutor(max(1, parallelism)) as pool:
        futures = {name: pool.submit(task) for name, task in tasks.items()}
        return {name: future.result() for name, future in futures.items()}


@dataclass(frozen=True)
class Score:
    """A combination's validation metric on one split and, for paired comparisons, its
    value per unit (per row: squared error; per user: NDCG) in an order every
    combination shares."""

    value: float
    units: np.ndarray | None = None


@dataclass(frozen=True)
class Evidence:
    """When a costlier setting is worth it: a combination whose `cost` (a function of its
    parameters) is higher is chosen over the cheaper choice only when its metric is
    better by more than `tolerance` (relative) and its per-unit values beat the
    cheaper's by more than twice the standard error of their paired difference. With
    millions of validation rows every difference is significant; the tolerance keeps a
    fit three times dearer for a difference no user would notice."""

    cost: Callable[[dict[str, Any]], float]
    tolerance: float


def grid_search(
    grid: Sequence[dict[str, Any]],
    splits: Sequence[S],
    evaluate: Callable[[dict[str, Any], S], float | Score],
    *,
    metric: str,
    lower_is_better: bool,
    parallelism: int = 2,
    log: Callable[[str], object] = print,
    evidence: Evidence | None = None,
) -> TuningResult:
    """`evaluate(params, split)` for every combination and split, `parallelism`
    fits at a time (Spark runs concurrent jobs; small fits are latency-bound, so a few in
    flight use the cores better). Logs each fit as it finishes. With `evidence` (and
    scores with units), the chosen combination is the cheapest one unless a dearer one
    is better by the evidence rule; otherwise the best mean."""
    jobs = [(params, i, split) for params in grid for i, split in enumerate(splits)]
    finished = itertools.count(1)

    def run(job: tuple[dict[str, Any], int, S]) -> tuple[dict[str, Any], int, Score, float]:
        params, i, split = job
        started = time.perf_counter()
        score = evaluate(params, split)
        score = score if isinstance(score, Score) else Score(score)
        seconds = time.perf_counter() - started
        log(
            f"fit {next(finished)} of {len(jobs)}: {params} split {i + 1}/{len(splits)}: "
            f"{metric} {score.value:.4f} in {seconds:.1f} s"
        )
        return params, i, score, seconds

    with ThreadPoolExecutor(max(1, parallelism)) as pool:
        results = list(pool.map(run, jobs))
    values = [[0.0] * len(splits) for _ in grid]
    units: list[list[np.ndarray | None]] = [[None] * len(splits) for _ in grid]
    seconds = [0.0] * len(grid)
    for params, i, score, spent in results:
        at = next(n for n, p in enumerate(grid) if p is params)
        values[at][i], units[at][i] = score.value, score.units
        seconds[at] += spent
    paired = None
    if evidence is not None and all(u is not None for row in units for u in row):
        paired = [np.concatenate(row) for row in units]
    return tuning_result(
        grid, values, seconds, metric=metric, lower_is_better=lower_is_better,
        units=paired, evidence=evidence,
    )  # fmt: skip


def tuning_result(
    grid: Sequence[dict[str, Any]],
    values: Sequence[Sequence[float]],
    seconds: Sequence[float],
    *,
    metric: str,
    lower_is_better: bool,
    units: Sequence[np.ndarray] | None = None,
    evidence: Evidence | None = None,
) -> TuningResult:
    """The table of a search: `values[c][s]`, combination c's metric on split s, and the
    seconds each combination took; with `units` (per combination, paired) and
    `evidence`, each row's cost and its paired difference from the chosen row."""
    rows = [
        {
            **params,
            **{f"{metric} split {i + 1}": v for i, v in enumerate(split_values)},
            f"mean {metric}": sum(split_values) / len(split_values),
            "seconds": round(spent, 1),
        }
        for params, split_values, spent in zip(grid, values, seconds, strict=True)
    ]
    key = f"mean {metric}"
    better = min if lower_is_better else max
    if units is not None and evidence is not None and rows:
        chosen = choose_by_evidence(
            [row[key] for row in rows], units, [evidence.cost(p) for p in grid],
            evidence.tolerance, lower_is_better,
        )  # fmt: skip
        for row, params, own in zip(rows, grid, units, strict=True):
            difference = own - units[chosen]
            row["cost"] = round(evidence.cost(params), 2)
            row["paired difference"] = float(difference.mean()) if len(difference) else 0.0
            row["paired se"] = _standard_error(difference)
        best = rows[chosen]
    else:
        best = better(rows, key=lambda row: row[key])
    parameters = tuple(grid[0]) if grid else ()
    tolerance = evidence.tolerance if units is not None and evidence is not None else None
    return TuningResult(metric, parameters, rows, best, tolerance)


def _standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def choose_by_evidence(
    metrics: Sequence[float],
    units: Sequence[np.ndarray],
    costs: Sequence[float],
    tolerance: float,
    lower_is_better: bool,
) -> int:
    """The index of the combination to use: the best of the cheapest ones, replaced, cost
    level by cost level upward, by the best of a dearer level when that beats the
    current choice by more than `tolerance` (relative) and twice the standard error of
    the paired per-unit difference (`Evidence`)."""
    sign = 1.0 if lower_is_better else -1.0  # the per-unit values improve as they fall
    levels = sorted(set(costs))

    def best_of(level: float) -> int:
        members = [i for i, cost in enumerate(costs) if cost == level]
        return min(members, key=lambda i: sign * metrics[i])

    chosen = best_of(levels[0])
    for level in levels[1:]:
        candidate = best_of(level)
        gain = sign * (metrics[chosen] - metrics[candidate])  # > 0: the dearer is better
        improvement = sign * (units[chosen] - units[candidate])
        if gain > tolerance * abs(metrics[chosen]) and improvement.mean() > 2 * _standard_error(
            improvement
        ):
            chosen = candidate
    return chosen

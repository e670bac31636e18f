"""Fits: a fit is the costly step, and a function of (training rows, parameters, seed).

- `count_fit`/`fits_so_far`: how many models this process has fitted, by kind ("als",
  "ease"), which the benchmark reports and a test holds the product run to.
- `keep`/`taken_or_fit`: the best model a tuning search fitted on its validation split
  stays available for the run, so the later step that needs the same fit (the champion
  scores its candidates on that split) takes it instead of fitting it again.
  The rows are named by Spark's semantic hash of their plan: the same table version read
  and split the same way gives the same hash; anything else misses and fits anew.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pyspark.sql import DataFrame

T = TypeVar("T")
FitKey = tuple[str, int, tuple[tuple[str, Any], ...], int]

_lock = threading.Lock()
_fits: Counter[str] = Counter()
_kept: dict[FitKey, Any] = {}


def count_fit(kind: str) -> None:
    with _lock:  # tuning fits in several threads at once
        _fits[kind] += 1


def fits_so_far() -> dict[str, int]:
    with _lock:
        return dict(_fits)


def fits_since(before: Mapping[str, int]) -> int:
    """Fits of every kind made since `fits_so_far()` returned `before`."""
    return sum(fits_so_far().values()) - sum(before.values())


def fit_key(model: str, rows: DataFrame, params: Mapping[str, Any], seed: int) -> FitKey:
    """What makes a fit: the model kind, its training rows, its parameters, its seed."""
    return (model, rows.semanticHash(), tuple(sorted(params.items())), seed)


def keep(key: FitKey, model: Any) -> None:
    """Keep `model` for the run (one per model kind: a newer one replaces it)."""
    with _lock:
        for old in [k for k in _kept if k[0] == key[0]]:
            del _kept[old]
        _kept[key] = model


def is_kept(key: FitKey) -> bool:
    with _lock:
        return key in _kept


def taken_or_fit(key: FitKey, fit: Callable[[], T]) -> T:
    """The kept model fitted as `key` says, handed over once (the run no longer holds it:
    EASE's is a movies x movies matrix), or `fit()` when there is none."""
    with _lock:
        model = _kept.pop(key, None)
    return model if model is not None else fit()

"""Small NumPy helpers every layer of `ml` uses (ids to positions, unit rows)."""

from __future__ import annotations

import numpy as np


def position_of(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Position in `sorted_ids` of each of `ids`, -1 where absent (same length as ids)."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(sorted_ids) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    at = np.searchsorted(sorted_ids, ids).clip(0, len(sorted_ids) - 1)
    return np.where(sorted_ids[at] == ids, at, -1)


def positions_in(sorted_ids: np.ndarray, ids: np.ndarray | None) -> np.ndarray:
    """Positions in `sorted_ids` of those `ids` that are in it (unknown ids are skipped)."""
    if ids is None or len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    at = position_of(sorted_ids, ids)
    return at[at >= 0]


def unit_rows(factors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a row of zeros stays zeros)."""
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    return factors / np.where(norms > 0, norms, 1.0)

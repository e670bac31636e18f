"""Why a movie is on a list: "because you rated X highly". The one explainer, for the
served lists, the evaluation's and a new user's in the app.

A reason is one of the movies the user liked (`conventions.LIKED_STARS` or more), the one
most similar to the recommended movie in the space of the model that ranked it. No Spark.
"""

from __future__ import annotations

import numpy as np


def reasons_by_similarity(
    items: np.ndarray, recommended: np.ndarray, liked_at: np.ndarray, liked_by: np.ndarray
) -> np.ndarray:
    """For each user's recommended positions (users x n, -1 = none), the position among
    the user's liked ones (`liked_at`, owned by row `liked_by`, grouped by row) whose
    factor in `items` is most similar (cosine; the first such in the user's order); -1
    when the user liked none."""
    why = np.full(recommended.shape, -1, dtype=np.int64)
    if len(liked_at) == 0 or items.shape[1] == 0:
        return why
    norms = np.linalg.norm(items, axis=1, keepdims=True)
    unit = items / np.where(norms > 0, norms, 1.0)
    rows = np.unique(liked_by)
    starts = np.searchsorted(liked_by, rows)
    liked_unit = unit[liked_at]
    for column in range(recommended.shape[1]):
        similarity = np.einsum("ek,ek->e", liked_unit, unit[recommended[liked_by, column].clip(0)])
        best = np.maximum.reduceat(similarity, starts)
        # The first liked movie (in the user's order) that reaches the best similarity.
        hits = np.where(similarity >= best[np.searchsorted(rows, liked_by)],
                        np.arange(len(liked_at)), len(liked_at))  # fmt: skip
        why[rows, column] = liked_at[np.minimum.reduceat(hits, starts)]
    return np.where(recommended >= 0, why, -1)

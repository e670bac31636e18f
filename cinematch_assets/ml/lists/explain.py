"""Why a movie is on a list: "because you rated X highly". The one explainer, for the
served lists, the evaluation's and a new user's in the app.

A reason is one of the movies the user liked (`conventions.LIKED_STARS` or more), the one
most similar to the recommended movie in the space of the model that ranked it. No Spark.
"""

from __future__ import annotations

import numpy as np

from cinematch_assets.ml.arrays import unit_rows


def reasons_by_similarity(
    items: np.ndarray,
    recommended: np.ndarray,
    liked_at: np.ndarray,
    liked_by: np.ndarray,
    *,
    candidates: np.ndarray | None = None,
    centre: np.ndarray | None = None,
    most_uses: int | None = None,
) -> np.ndarray:
    """For each user's recommended positions (users x n, -1 = none) in `candidates`
    (default `items`: new movies have their own factor table), the position among the
    user's liked ones (`liked_at` in `items`, owned by row `liked_by`, grouped by row)
    whose factor is most similar (cosine, of the factors less `centre` when given; the
    first such in the user's order); -1 when the user liked none. With `most_uses`, a
    liked movie is the reason of at most that many of a user's movies (best first),
    while the user has other liked movies left: a row of ten reasons naming one film
    says little."""
    why = np.full(recommended.shape, -1, dtype=np.int64)
    if len(liked_at) == 0 or items.shape[1] == 0:
        return why
    candidates = items if candidates is None else candidates
    rows = np.unique(liked_by)
    starts = np.searchsorted(liked_by, rows)
    owner = np.searchsorted(rows, liked_by)  # each liked entry's index among `rows`
    # Only the rows compared are normalized, each once: not the whole catalog per call.
    centre = np.zeros(items.shape[1], np.float32) if centre is None else centre
    liked_unit = unit_rows(items[liked_at] - centre)
    shown_unit = unit_rows(candidates[recommended.clip(0)].reshape(-1, items.shape[1]) - centre)
    shown_unit = shown_unit.reshape(*recommended.shape, items.shape[1])
    uses = np.zeros(len(liked_at), dtype=np.int64)
    entries = np.arange(len(liked_at))
    for column in range(recommended.shape[1]):
        similarity = np.einsum("ek,ek->e", liked_unit, shown_unit[liked_by, column])
        if most_uses is not None:
            spent = uses >= most_uses
            # A user whose every liked movie is spent has the best again.
            fresh = np.logical_or.reduceat(~spent, starts)[owner]
            similarity = np.where(spent & fresh, -np.inf, similarity)
        best = np.maximum.reduceat(similarity, starts)
        # The first liked movie (in the user's order) that reaches the best similarity.
        hits = np.where(similarity >= best[owner], entries, len(liked_at))
        chosen = np.minimum.reduceat(hits, starts)
        why[rows, column] = liked_at[chosen]
        uses[chosen[recommended[rows, column] >= 0]] += 1
    return np.where(recommended >= 0, why, -1)

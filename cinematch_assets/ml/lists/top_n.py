"""Top-N in numpy: the n best movies of each user of a block, scores computed a few users
at a time into one buffer, what a user rated left out, ties broken by position.

No Spark: the list builder (`lists`) calls it for blocks of users, on the executors and in
the app alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np

# Users scored per matrix product: BLOCK_USERS x items float32 scores (32 x 86k = 11 MB,
# which stays in cache while the block is read again; 256 users took 1.9x as long).
BLOCK_USERS = 32
# Slices of a row whose maxima bound its top-n from below (see _candidates).
CHUNKS = 512
# score(start, stop, out): the scores of users start..stop-1 into `out` (users x items).
ScoreRows = Callable[[int, int, np.ndarray], object]
K = TypeVar("K")


def top_n(
    score: ScoreRows,
    n_users: int,
    n_items: int,
    n: int,
    *,
    exclude: Sequence[np.ndarray] | None = None,
    block_users: int = BLOCK_USERS,
) -> tuple[np.ndarray, np.ndarray]:
    """The `n` best items of each of `n_users` users by the scores `score` writes.

    `exclude[u]` lists the item positions user `u` must not get (what they already
    rated); a score of -inf excludes an item too. Returns `(positions, scores)`, both
    `n_users x n`, best first; a user with fewer than `n` candidates gets position -1
    and score -inf in the remaining places. Ties are broken by item position, so the
    result never depends on the block size.
    """
    return top_n_each({None: score}, n_users, n_items, n, exclude=exclude,
                      block_users=block_users)[None]  # fmt: skip


def top_n_each(
    scores: Mapping[K, ScoreRows],
    n_users: int,
    n_items: int,
    n: int,
    *,
    exclude: Sequence[np.ndarray] | None = None,
    block_users: int = BLOCK_USERS,
) -> dict[K, tuple[np.ndarray, np.ndarray]]:
    """`top_n` by each of several scores of the same users and items, by key. The users
    are taken a block at a time and every score is asked for that block in turn, so
    scores that share work (one model's scores under several blends) can compute it once
    per block."""
    out = {
        key: (np.full((n_users, n), -1, dtype=np.int64),
              np.full((n_users, n), -np.inf, dtype=np.float32))
        for key in scores
    }  # fmt: skip
    if n_items == 0 or n <= 0 or n_users == 0:
        return out
    take = min(n, n_items)
    # One score buffer for every block: a fresh 11 MB array per block costs as much as
    # the product itself (page faults).
    buffer = np.empty((min(block_users, n_users), n_items), dtype=np.float32)
    for start in range(0, n_users, block_users):
        stop = min(start + block_users, n_users)
        block = buffer[: stop - start]
        left_out = None
        if exclude is not None:
            rows = [np.full(len(exclude[u]), u - start) for u in range(start, stop)]
            cols = [np.asarray(exclude[u], dtype=np.int64) for u in range(start, stop)]
            if rows:
                left_out = np.concatenate(rows), np.concatenate(cols)
        for key, score in scores.items():
            score(start, stop, block)
            if left_out is not None:
                block[left_out] = -np.inf
            rows, cols, values = _best_in_block(block, take)
            positions, best = out[key]
            # Only finite scores come back (see _finite): the rest stay -1 / -inf.
            at = _rank_within_rows(rows)
            positions[start + rows, at] = cols
            best[start + rows, at] = values
    return out


def dot_scores(
    users: np.ndarray, items: np.ndarray, item_bias: np.ndarray | None = None
) -> ScoreRows:
    """Scores `users @ items.T + item_bias` (float32), for `top_n`."""
    users = np.asarray(users, dtype=np.float32)
    # The transposed view, not a copy: BLAS reads it as it is, as fast as a contiguous
    # copy for a block of users, and a copy would cost 30x the product for one user.
    items_t = np.asarray(items, dtype=np.float32).T
    bias = None if item_bias is None else np.asarray(item_bias, dtype=np.float32)

    def score(start: int, stop: int, out: np.ndarray) -> None:
        np.matmul(users[start:stop], items_t, out=out)
        if bias is not None:
            out += bias

    return score


def _best_in_block(block: np.ndarray, take: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, position, score) of each row's `take` best, ordered by row, score descending,
    position ascending. Every score above the row's take-th best is in; of those equal to
    it, the lowest positions are (a partition alone would pick arbitrary ones)."""
    n_items = block.shape[1]
    if n_items >= 4 * CHUNKS and take <= CHUNKS // 4:
        rows, cols = _candidates(block, take)
    else:
        # The take-th largest per row, in linear time (a partition, not a full sort).
        kth = np.partition(block, n_items - take, axis=1)[:, n_items - take]
        rows, cols = np.nonzero(block >= _finite(kth)[:, None])
    values = block[rows, cols]
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    keep = _rank_within_rows(rows) < take
    return rows[keep], cols[keep], values[keep]


def _candidates(block: np.ndarray, take: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, position) of a few dozen scores per row that include the row's `take` best.

    The row is cut into CHUNKS slices. The take-th largest slice maximum is a score that
    at least `take` scores reach, so every one of the take best is at least that bound
    and lies in a slice whose maximum is. Only those slices are read again: a max per
    slice and a partition of CHUNKS numbers cost a fraction of partitioning and scanning
    the whole row (86k movies)."""
    n_items = block.shape[1]
    width = -(-n_items // CHUNKS)
    starts = np.arange(0, n_items, width)
    maxima = np.maximum.reduceat(block, starts, axis=1)
    bound = _finite(np.partition(maxima, len(starts) - take, axis=1)[:, len(starts) - take])
    rows, hits = np.nonzero(maxima >= bound[:, None])
    cols = starts[hits][:, None] + np.arange(width)
    rows = np.broadcast_to(rows[:, None], cols.shape)
    inside = cols < n_items
    rows, cols = rows[inside], cols[inside]
    reached = block[rows, cols] >= bound[rows]
    return rows[reached], cols[reached]


def _finite(bound: np.ndarray) -> np.ndarray:
    """A row's bound, raised to the lowest finite score: -inf is never shown, and a row
    with fewer than n finite scores (new movies that clear no bar) would otherwise sort
    every one of its -inf entries."""
    return np.maximum(bound, np.finfo(bound.dtype).min)


def _rank_within_rows(rows: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal (sorted) row numbers."""
    starts = np.searchsorted(rows, rows, side="left")
    return np.arange(len(rows)) - starts

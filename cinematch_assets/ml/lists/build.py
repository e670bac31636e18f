"""The list builder: what every list shows, for a block of users, in numpy. One code path
for the held-out evaluation, the served lists (through the Spark adapter in `recommend`,
on the executors) and a new user in the app (a block of one); only what is excluded
differs: the training ratings for the evaluation, every known rating for serving.

For each user of a block: the ranker's top-n among the movies the user has not rated,
the rating model's predicted stars for each, and the reason (`explain`). No Spark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Protocol

import numpy as np
from scipy import sparse

from cinematch_assets.conventions import DISLIKED_BELOW_STARS, LIKED_STARS
from cinematch_assets.ml.lists.explain import reasons_by_similarity
from cinematch_assets.ml.lists.top_n import K, ScoreRows, dot_scores, top_n, top_n_each
from cinematch_assets.ml.models.foldin import RatingTerms
from cinematch_assets.ml.models.titles import TitleLinks


@dataclass(frozen=True)
class UserBlock:
    """Users and what lists need of them, as flat arrays: their factors in the ranking
    model (zeros for a user it does not know), their ratings (positions of the movies
    among the ranker's, with the stars, grouped by row) and, for stars, their bias and
    factors in the rating model."""

    user_ids: np.ndarray
    factors: np.ndarray
    rated_at: np.ndarray
    rated_stars: np.ndarray
    rated_by: np.ndarray
    star_bias: np.ndarray | None = None
    star_factors: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.user_ids)

    def rated(self) -> list[np.ndarray]:
        """Each user's rated positions: what their list leaves out."""
        counts = np.bincount(self.rated_by, minlength=len(self))
        return np.split(self.rated_at, np.cumsum(counts))[: len(self)]

    def liked(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, rows) of the movies each user liked: LIKED_STARS or more."""
        mask = self.rated_stars >= LIKED_STARS
        return self.rated_at[mask], self.rated_by[mask]


class Ranker(Protocol):
    """Orders a block's movies (the positions of `movie_ids`) and says why."""

    movie_ids: np.ndarray

    @property
    def rank(self) -> int:
        """The length of the user factors it reads from a block (0: none)."""
        ...

    def scores(self, block: UserBlock) -> ScoreRows: ...

    def explain(self, block: UserBlock, positions: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class FactorRanker:
    """Score = user factors . movie factors (+ a movie bias): the ranking model, a rating
    model by its stars (its movie bias included), most-popular (no factors, popularity as
    the bias). Reasons come from its own factors (none without factors)."""

    movie_ids: np.ndarray
    items: np.ndarray
    bias: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return self.items.shape[1]

    def scores(self, block: UserBlock) -> ScoreRows:
        return dot_scores(block.factors, self.items, self.bias)

    @cached_property
    def _with_bias(self) -> np.ndarray:
        """The movie factors with the bias as one more factor (1 for every user)."""
        return self.items if self.bias is None else np.column_stack([self.items, self.bias])

    @cached_property
    def scale(self) -> ScoreScale:
        """How its scores spread over the movies: computed once, not for every block (a
        new user in the app is a block)."""
        return ScoreScale.of(self._with_bias)

    def zscored(self, block: UserBlock) -> ScoreRows:
        """`scores` z-scored per user (as `zscore_rows` would), in closed form: a user's
        mean and spread over the movies come from the movies' mean and covariance
        (`scale`), so the z-scores are one product with rescaled user factors, not
        passes over every user's row of scores."""
        users = block.factors
        if self.bias is not None:
            users = np.column_stack([users, np.ones(len(users))])
        centre, spread = self.scale.moments(users)
        spread = np.where(spread > 0, spread, 1.0)  # no spread: every score is the mean, 0
        scaled = dot_scores(users / spread[:, None], self._with_bias)
        offset = (centre / spread).astype(np.float32)

        def score(start: int, stop: int, out: np.ndarray) -> None:
            scaled(start, stop, out)
            out -= offset[start:stop, None]

        return score

    def explain(self, block: UserBlock, positions: np.ndarray) -> np.ndarray:
        return reasons_by_similarity(self.items, positions, *block.liked())


def zscore_rows(scores: np.ndarray) -> None:
    """Each row of `scores` (users x movies, finite) to mean 0, deviation 1, in place (0
    for a row with no spread). In place and without temporaries: at 86k movies a row's
    passes cost more than the product that made it."""
    scores -= scores.mean(axis=1, keepdims=True, dtype=np.float64).astype(scores.dtype)
    spread = np.sqrt(np.einsum("ij,ij->i", scores, scores, dtype=np.float64) / scores.shape[1])
    scores /= np.where(spread > 0, spread, 1.0).astype(scores.dtype)[:, None]


# Users whose EASE sums are taken together, a column slice of B at a time: the slice
# (10k x 128 floats, 5 MB) stays in cache for all of them, where a user at a time reads
# each rated row of B whole from memory. 1,024 x 128 took half the time of row sums per
# user (10k movies, popularity-skewed histories), 256 users as long: copying the slices
# costs a pass over B, so fewer users sum their rows directly.
EASE_CHUNK_USERS = 1024
EASE_COLUMNS = 128


def ease_sums(rated: sparse.csr_matrix, weights: np.ndarray) -> np.ndarray:
    """`rated @ weights` (users x movies, float32): the rows of `weights` each user rated,
    summed in order (the same floats however the work is cut)."""
    if rated.shape[0] < EASE_CHUNK_USERS // 2:
        return rated @ weights
    sums = np.empty((rated.shape[0], weights.shape[1]), dtype=np.float32)
    for first in range(0, weights.shape[1], EASE_COLUMNS):
        columns = slice(first, first + EASE_COLUMNS)
        sums[:, columns] = rated @ np.ascontiguousarray(weights[:, columns])
    return sums


@dataclass(frozen=True, eq=False)
class EaseRanker:
    """EASE (`ml.models.ease`): score of movie j = sum of B[i, j] over the movies i the user
    rated 3 stars or more (a lower rating never counts for similar movies). B covers the
    `kept` positions of `movie_ids`; over the others the ranking model `fallback` ranks
    (both z-scored per user, so they share a scale). Reasons: the liked movie whose B
    weight toward the recommended one is largest (the fallback's own for its movies)."""

    movie_ids: np.ndarray
    kept: np.ndarray  # positions among movie_ids that B covers, ascending
    weights: np.ndarray  # B, len(kept) x len(kept)
    fallback: FactorRanker | None = None

    @property
    def rank(self) -> int:
        return 0 if self.fallback is None else self.fallback.rank

    def _index(self) -> np.ndarray:
        """Position among movie_ids -> row of B (-1: not kept)."""
        index = np.full(len(self.movie_ids), -1, dtype=np.int64)
        index[self.kept] = np.arange(len(self.kept))
        return index

    def scores(self, block: UserBlock) -> ScoreRows:
        index = self._index()
        keep = block.rated_stars >= DISLIKED_BELOW_STARS
        rows = index[block.rated_at[keep]]
        owners = block.rated_by[keep][rows >= 0]
        rows = rows[rows >= 0]
        starts = np.searchsorted(owners, np.arange(len(block) + 1))
        fallback = self.fallback.zscored(block) if self.fallback is not None else None
        every = len(self.kept) == len(self.movie_ids)

        # Each user's row of X: 1 at the rows of B they rated 3 stars or more.
        rated = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), rows, starts), shape=(len(block), len(self.kept))
        )
        chunk: dict[str, Any] = {"start": 0, "stop": 0, "ease": None}

        def score(start: int, stop: int, out: np.ndarray) -> None:
            if not chunk["start"] <= start < stop <= chunk["stop"]:
                chunk["start"], chunk["stop"] = start, min(start + EASE_CHUNK_USERS, len(block))
                chunk["ease"] = ease_sums(rated[chunk["start"] : chunk["stop"]], self.weights)
            ease = chunk["ease"][start - chunk["start"] : stop - chunk["start"]]
            if every:
                out[:] = ease
                return
            fallback(start, stop, out)
            ease = ease.copy()
            zscore_rows(ease)
            out[:, self.kept] = ease

        return score

    def zscored(self, block: UserBlock) -> ScoreRows:
        """`scores` z-scored per user."""
        scores = self.scores(block)

        def score(start: int, stop: int, out: np.ndarray) -> None:
            scores(start, stop, out)
            zscore_rows(out)

        return score

    def explain(self, block: UserBlock, positions: np.ndarray) -> np.ndarray:
        index = self._index()
        liked_at, liked_by = block.liked()
        starts = np.searchsorted(liked_by, np.arange(len(block) + 1))  # grouped by row
        why = np.full(positions.shape, -1, dtype=np.int64)
        for user in range(len(block)):
            mine = liked_at[starts[user] : starts[user + 1]]
            mine = mine[index[mine] >= 0]
            shown = positions[user]
            covered = (shown >= 0) & (index[shown.clip(0)] >= 0)
            if len(mine) and covered.any():
                pull = self.weights[np.ix_(index[mine], index[shown[covered]])]
                why[user, covered] = mine[np.argmax(pull, axis=0)]
        if self.fallback is not None:
            other = (positions >= 0) & (index[positions.clip(0)] < 0)
            if other.any():
                why = np.where(other, self.fallback.explain(block, positions), why)
        return why


@dataclass(frozen=True, eq=False)
class MixedRanker:
    """Two ranking models' z-scored scores summed, the `second` times `weight` (EASE with
    implicit ALS: co-occurrence and latent taste). Reasons are the first's."""

    first: EaseRanker
    second: FactorRanker
    weight: float
    shared: SharedSlices | None = None  # the parts' rows once per slice for every mix

    @property
    def movie_ids(self) -> np.ndarray:
        return self.first.movie_ids

    @property
    def rank(self) -> int:
        return max(self.first.rank, self.second.rank)

    def zscored(self, block: UserBlock) -> ScoreRows:
        """The blend; with `shared`, each part's rows once per slice for every mix."""
        shared = self.shared
        parts = [
            (part, part.zscored(block) if shared is None else shared.zscored(block, part))
            for part in (self.first, self.second)
        ]
        weight = np.float32(self.weight)

        def rows(start: int, stop: int, like: np.ndarray, part, fill) -> np.ndarray:
            if shared is None:
                values = np.empty_like(like)
                fill(start, stop, values)
                return values
            return shared.rows(block, start, stop, ("zscored", id(part)), fill, like)

        def score(start: int, stop: int, out: np.ndarray) -> None:
            (first, fill_first), (second, fill_second) = parts
            np.multiply(rows(start, stop, out, second, fill_second), weight, out=out)
            out += rows(start, stop, out, first, fill_first)

        return score

    def scores(self, block: UserBlock) -> ScoreRows:
        return self.zscored(block)

    def explain(self, block: UserBlock, positions: np.ndarray) -> np.ndarray:
        return self.first.explain(block, positions)


@dataclass(frozen=True)
class ListPolicy:
    """How the served order is made: which ranking model (`ranker`: "als" or "ease"),
    with EASE plus `als_weight` x implicit ALS (both z-scored), plus `stars_weight` x
    the rating model's predicted stars on its z-scored score, minus `popularity_penalty`
    x the movie's z-scored log popularity, plus `taste_weight` x how well its genres fit
    the user's (`GenreTaste`); a movie predicted below `star_floor` stars goes after
    every other."""

    ranker: str = "als"
    stars_weight: float = 0.0
    popularity_penalty: float = 0.0
    star_floor: float = 0.0
    taste_weight: float = 0.0
    als_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.als_weight and self.ranker != "ease":
            raise ValueError("only EASE blends in implicit ALS (als_weight)")

    @property
    def id(self) -> str:
        """Its stable id, from its parameters: "ease-stars0-pop0.35-floor3-taste0.2"."""
        taste = f"-taste{self.taste_weight:g}" if self.taste_weight else ""
        als = f"-als{self.als_weight:g}" if self.als_weight else ""
        return (
            f"{self.ranker}{als}-stars{self.stars_weight:g}-pop{self.popularity_penalty:g}"
            f"-floor{self.star_floor:g}{taste}"
        )

    @property
    def name(self) -> str:
        parts = [{"als": "implicit ALS", "ease": "EASE"}[self.ranker]]
        if self.als_weight:
            parts.append(f"+ {self.als_weight:g} x implicit ALS")
        if self.stars_weight:
            parts.append(f"+ {self.stars_weight:g} x stars")
        if self.popularity_penalty:
            parts.append(f"- {self.popularity_penalty:g} x popularity")
        if self.taste_weight:
            parts.append(f"+ {self.taste_weight:g} x genre taste")
        if self.star_floor:
            parts.append(f"floor {self.star_floor:g}")
        return " ".join(parts)


# How many liked movies' worth of everyone's genre shares a user's own are smoothed with:
# one, so that a dozen likes of one kind say so (measured on the 2016 archive: held-out
# NDCG@10 the same with 1, 2 or 5; a Pixar fan's list follows their taste more with 1).
TASTE_PRIOR_LIKES = 1.0


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class GenreTaste:
    """How well a movie's genres fit a user's taste: the log-likelihood ratio of its
    genres under the user's liked-genre profile against everyone's (one Bernoulli per
    genre: the user's share of liked movies with it, smoothed toward everyone's with
    TASTE_PRIOR_LIKES pseudo-likes), summed over the movie's genres. About 0 for a user
    whose likes look like everyone's; large for a clear taste (twelve animated films
    liked: animation, children's and their neighbours up, the rest down), so it moves
    the lists of the users whose taste is clear and barely the others'. Co-occurrence
    models alone rank what everyone watched: a Pixar fan got The Lord of the Rings."""

    genres: np.ndarray  # movies x genres: 1 where the movie has it (float32)
    base: np.ndarray  # per genre: the share of everyone's liked movies that have it

    def weights(self, block: UserBlock) -> np.ndarray:
        """Per user of the block, per genre: logit(user's share) - logit(everyone's)."""
        liked_at, liked_by = block.liked()
        owners = sparse.csr_matrix(
            (np.ones(len(liked_at), np.float32), (liked_by, np.arange(len(liked_at)))),
            shape=(len(block), len(liked_at)),
        )
        counts = owners @ self.genres[liked_at]
        liked = np.bincount(liked_by, minlength=len(block))[:, None]
        share = (counts + TASTE_PRIOR_LIKES * self.base) / (liked + TASTE_PRIOR_LIKES)
        return (_logit(share) - _logit(self.base)).astype(np.float32)

    def scores(self, block: UserBlock) -> ScoreRows:
        weights = self.weights(block)

        def score(start: int, stop: int, out: np.ndarray) -> None:
            np.matmul(weights[start:stop], self.genres.T, out=out)

        return score


# Below the floor: after every movie above it, whatever the scores.
FLOOR_PENALTY = 1e6


class SharedSlices:
    """What several blends of the same users share (a model's z-scored scores with the
    star floor applied, the predicted stars): computed for a slice of users by the first
    blend that asks and reused by the others, so that scoring 32 candidate orders costs
    each model's scores once plus 32 cheap blends. Only the latest block and slice are
    kept."""

    def __init__(self) -> None:
        self._users: np.ndarray | None = None  # the block's user_ids (held: ids stay unique)
        self._slice: tuple[int, int] | None = None
        self._values: dict[Any, np.ndarray] = {}
        self._scores: dict[int, ScoreRows] = {}
        self._buffers: dict[Any, np.ndarray] = {}  # reused: fresh arrays cost page faults

    def _begin(self, block: UserBlock) -> None:
        """Forget what was shared for another block."""
        if self._users is not block.user_ids:
            self._users, self._slice, self._values, self._scores = block.user_ids, None, {}, {}

    def value(self, block: UserBlock, start: int, stop: int, key: Any, compute) -> np.ndarray:
        self._begin(block)
        if self._slice != (start, stop):
            self._slice, self._values = (start, stop), {}
        if key not in self._values:
            self._values[key] = compute()
        return self._values[key]

    def rows(
        self, block: UserBlock, start: int, stop: int, key: Any, fill: ScoreRows, like: np.ndarray
    ) -> np.ndarray:
        """The rows `fill` writes for users start..stop (shaped like `like`), computed once
        per slice into a buffer kept for `key`. Read only: every blend reads them."""

        def compute() -> np.ndarray:
            buffer = self._buffers.get(key)
            if buffer is None or buffer.shape[0] < len(like) or buffer.shape[1:] != like.shape[1:]:
                buffer = self._buffers[key] = np.empty_like(like)
            values = buffer[: len(like)]
            fill(start, stop, values)
            return values

        return self.value(block, start, stop, key, compute)

    def zscored(self, block: UserBlock, base: FactorRanker | EaseRanker | MixedRanker) -> ScoreRows:
        """`base.zscored(block)`, made once per block."""
        self._begin(block)
        if id(base) not in self._scores:
            self._scores[id(base)] = base.zscored(block)
        return self._scores[id(base)]


@dataclass(frozen=True, eq=False)
class BlendedRanker:
    """A ranking model's score, z-scored per user, blended by a `ListPolicy` with the
    rating model's stars and the movies' popularity (`popularity`: z-scored log rating
    count, aligned). Reasons are the ranking model's. Blends with the same `shared`
    compute their model's scores and the stars once per slice of users."""

    base: FactorRanker | EaseRanker | MixedRanker
    stars: RatingTerms
    popularity: np.ndarray
    policy: ListPolicy
    shared: SharedSlices | None = None
    taste: GenreTaste | None = None

    def __post_init__(self) -> None:
        if self.policy.taste_weight and self.taste is None:
            raise ValueError("this policy weighs the genre taste, and there are no genres")

    @property
    def movie_ids(self) -> np.ndarray:
        return self.base.movie_ids

    @property
    def rank(self) -> int:
        return self.base.rank

    def _predicted(self, block: UserBlock, start: int, stop: int) -> np.ndarray:
        bias = None if block.star_bias is None else block.star_bias[start:stop]
        factors = None if block.star_factors is None else block.star_factors[start:stop]
        return self.stars.predict_all(bias, factors)

    def scores(self, block: UserBlock) -> ScoreRows:
        policy, shared = self.policy, self.shared
        weight, floor = np.float32(policy.stars_weight), policy.star_floor
        penalty = (policy.popularity_penalty * self.popularity).astype(np.float32)
        zscored = self.base.zscored(block) if shared is None else shared.zscored(block, self.base)
        taste_weight = np.float32(policy.taste_weight)
        taste = self.taste.scores(block) if taste_weight else None

        def fit(start: int, stop: int, like: np.ndarray) -> np.ndarray:
            """The genre taste's rows for users start..stop (once per slice when shared)."""
            if shared is None:
                rows = np.empty_like(like)
                taste(start, stop, rows)
                return rows
            return shared.rows(block, start, stop, ("taste", id(self.taste)), taste, like)

        def ranked(start: int, stop: int, out: np.ndarray, predicted: np.ndarray | None) -> None:
            """The model's z-scores with the genre taste, the movies predicted below the
            floor after the others."""
            zscored(start, stop, out)
            if floor:  # a mask product: `np.subtract(..., where=)` is 3x slower
                out -= (predicted < floor) * np.float32(FLOOR_PENALTY)
            if taste is not None:
                rows = fit(start, stop, out)
                out += rows * taste_weight

        def own(start: int, stop: int, out: np.ndarray) -> None:
            predicted = self._predicted(block, start, stop) if weight or floor else None
            ranked(start, stop, out, predicted)
            if weight:
                predicted *= weight  # this blend's own array
                out += predicted

        def blend(start: int, stop: int, out: np.ndarray) -> None:
            # In place, without temporaries: one pass per term over the shared rows.
            predicted = None
            if weight or floor:
                key = ("stars", id(self.stars))
                predicted = shared.value(
                    block, start, stop, key, lambda: self._predicted(block, start, stop)
                )
            # Shared by every blend with this floor and taste weight: the taste is added
            # once per weight and slice, not once per blend.
            key = ("ranked", id(self.base), id(self.stars), floor, policy.taste_weight)
            base = shared.rows(
                block, start, stop, key, lambda s, e, o: ranked(s, e, o, predicted), out
            )
            if weight:
                np.multiply(predicted, weight, out=out)
                out += base
            else:
                out[:] = base

        def score(start: int, stop: int, out: np.ndarray) -> None:
            (own if shared is None else blend)(start, stop, out)
            if policy.popularity_penalty:
                out -= penalty

        return score

    def explain(self, block: UserBlock, positions: np.ndarray) -> np.ndarray:
        return self.base.explain(block, positions)


@dataclass(frozen=True)
class Lists:
    """One row per user of the block, n columns, best first: movie positions (-1 where
    a list is short), scores, predicted stars (None without a rating model) and the
    position of the reason (-1: none)."""

    positions: np.ndarray
    scores: np.ndarray
    stars: np.ndarray | None
    reasons: np.ndarray
    new: np.ndarray | None = None  # users x n: a new movie (position - known movies)


def build_lists(
    block: UserBlock,
    ranker: Ranker,
    n: int,
    stars: RatingTerms | None = None,
    *,
    new: NewSlots | None = None,
    rated_new: list[np.ndarray] | None = None,
) -> Lists:
    """Every user's top-n by `ranker` among the movies they have not rated, with the
    stars `stars` predicts (aligned on the ranker's movies) and the reason; with `new`
    (and `stars`), up to its slots of new movies in the last shown places (`rated_new`:
    each user's rated new movies, left out)."""
    return build_lists_each(block, {None: ranker}, n, stars, new=new, rated_new=rated_new)[None]


def build_lists_each(
    block: UserBlock,
    rankers: Mapping[K, Ranker],
    n: int,
    stars: RatingTerms | None = None,
    *,
    new: NewSlots | None = None,
    rated_new: list[np.ndarray] | None = None,
    explain: bool = True,
) -> dict[K, Lists]:
    """`build_lists` for several rankers of the same movies, by key, in one pass over the
    block's users (blends that share their scores compute them once). Without `explain`
    the lists have no reasons (-1): what scoring them needs, at a fifth less cost."""
    # A ranker reads the first `rank` user factors; new movies, the ranking model's.
    ranked = {key: replace(block, factors=block.factors[:, : r.rank]) for key, r in rankers.items()}
    movies = len(next(iter(rankers.values())).movie_ids)
    found = top_n_each(
        {key: ranker.scores(ranked[key]) for key, ranker in rankers.items()},
        len(block),
        movies,
        n,
        exclude=block.rated(),
    )
    picks = None
    if new is not None and stars is not None and new.movies.slots > 0 and len(new.movies.movie_ids):
        picks = pick_new_movies(block, new, stars, rated_new)
    built = {}
    for key, ranker in rankers.items():
        positions, scores = found[key]
        predicted = None
        if stars is not None:
            predicted = stars.predict_block(block.star_bias, block.star_factors, positions)
        reasons = (
            ranker.explain(ranked[key], positions)
            if explain
            else np.full(positions.shape, -1, dtype=np.int64)
        )
        lists = Lists(positions, scores, predicted, reasons)
        built[key] = lists if picks is None else with_new_movies(lists, picks, new.shown, movies)
    return built


@dataclass(frozen=True)
class EaseItems:
    """EASE's part of the movie side: the positions it covers and its weights B."""

    kept: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class ModelItems:
    """Every model's movie side, aligned on `movie_ids` (sorted): the ranking model's
    factors (and what folding a new user into it takes), the rating model's terms, the
    movies' popularity, EASE's weights when it is part of the served order, the
    `ListPolicy` that makes the served order, and the new movies that lists make room
    for. What the served lists are built from, and what the app loads
    (model_factors.npz)."""

    movie_ids: np.ndarray
    ranking_items: np.ndarray
    ranking_reg_param: float
    ranking_alpha: float
    rating: RatingTerms
    popularity: np.ndarray  # z-scored log(1 + training ratings)
    policy: ListPolicy = ListPolicy()
    ease: EaseItems | None = None
    new: NewMovies | None = None
    taste: GenreTaste | None = None

    def new_slots(self, shown: int) -> NewSlots | None:
        """How a list of `shown` movies makes room for the new movies (None: it does not)."""
        if self.new is None or self.new.slots <= 0 or not len(self.new.movie_ids):
            return None
        floor = self.policy.star_floor
        return NewSlots(self.new, self._als, floor, shown)

    @cached_property
    def _als(self) -> FactorRanker:
        """The ranking model's ranker, built once (it keeps its score scale)."""
        return FactorRanker(self.movie_ids, self.ranking_items)

    def new_for_you(
        self,
        block: UserBlock,
        rated_new: list[np.ndarray] | None = None,
        new: NewMovies | None = None,
    ) -> NewPicks | None:
        """Each user's "New for you" row among `new` (default: every new movie; rated
        ones, `rated_new`, left out); None when the models have no row."""
        new = self.new if new is None else new
        if new is None or new.row is None or new.row.size <= 0 or not len(new.movie_ids):
            return None
        block = replace(block, factors=block.factors[:, : self._als.rank])
        return pick_new_for_you(
            block, new, self._als, self.rating, self.policy.star_floor, rated_new
        )

    @cached_property
    def _ease(self) -> EaseRanker:
        """EASE's ranker, built once: every mix with ALS reads the same one (its sums
        computed once per slice of users)."""
        if self.ease is None:
            raise ValueError("this policy ranks with EASE, and there are no EASE weights")
        everything = len(self.ease.kept) == len(self.movie_ids)
        return EaseRanker(
            self.movie_ids, self.ease.kept, self.ease.weights, None if everything else self._als
        )

    def _base(
        self, policy: ListPolicy, shared: SharedSlices | None = None
    ) -> FactorRanker | EaseRanker | MixedRanker:
        if policy.ranker != "ease":
            return self._als
        if policy.als_weight:
            return MixedRanker(self._ease, self._als, policy.als_weight, shared)
        return self._ease

    def ranker(self, policy: ListPolicy | None = None) -> BlendedRanker:
        """The served order (or the one `policy` asks for)."""
        policy = policy or self.policy
        return BlendedRanker(
            self._base(policy),
            self.rating,
            self.popularity,
            policy,
            taste=self.taste,
        )

    def rankers(self, policies: Sequence[ListPolicy]) -> dict[str, BlendedRanker]:
        """Several orders by name (the champion's candidates), sharing each model's scores
        and the stars (see `build_lists_each`)."""
        shared = SharedSlices()

        def model(p: ListPolicy) -> tuple[str, float]:
            return p.ranker, p.als_weight

        bases = {model(p): self._base(p, shared) for p in policies}
        return {
            p.name: BlendedRanker(
                bases[model(p)], self.rating, self.popularity, p, shared, self.taste
            )
            for p in policies
        }


@dataclass(frozen=True)
class NewMovies:
    """Movies the models do not know (too few ratings for Gold, or none), placed in the
    models' spaces from their content (`ml.selection.cold`): ids (sorted), ranking-model factors,
    rating-model bias and factors. A user gets up to `slots` of them in the shown list,
    those whose ranking score, z-scored against the user's scores of the known movies,
    reaches `threshold` and the movie's `audience` cut (the score of the share of users
    it suits best; None: no cut), and whose predicted stars reach the star floor."""

    movie_ids: np.ndarray
    ranking_items: np.ndarray
    rating_bias: np.ndarray
    rating_items: np.ndarray
    threshold: float
    slots: int
    audience: np.ndarray | None = None
    row: NewRow | None = None

    def bar(self) -> np.ndarray | float:
        """The score each new movie must reach."""
        if self.audience is None:
            return self.threshold
        return np.maximum(self.threshold, self.audience)

    def only(self, keep: np.ndarray) -> NewMovies:
        """The new movies `keep` marks (e.g. those of a user's favourite genres)."""
        return replace(
            self,
            movie_ids=self.movie_ids[keep],
            ranking_items=self.ranking_items[keep],
            rating_bias=self.rating_bias[keep],
            rating_items=self.rating_items[keep],
            audience=None if self.audience is None else self.audience[keep],
            row=None if self.row is None else self.row.only(keep),
        )


@dataclass(frozen=True)
class NewRow:
    """The "New for you" row: each user's best `size` new movies by their fit (the
    ranking model's z-score against the user's known movies, plus `title_weight` x the
    title similarity to a film the user rated highly: a sequel's fans find it), each new
    movie offered only to the users it fits best (`audience`: the fit its share of users
    reach, the exploration budget), the latest releases (`fresh`: released within a
    few years of the latest rating) before older movies the models do not know, and the
    star floor kept."""

    size: int
    audience: np.ndarray  # per new movie: the fit a user must reach
    fresh: np.ndarray  # per new movie: one of the latest releases
    links: TitleLinks  # new movies x known movies: title similarities
    title_weight: float

    def only(self, keep: np.ndarray) -> NewRow:
        return replace(
            self,
            audience=self.audience[keep],
            fresh=self.fresh[keep],
            links=TitleLinks(self.links.matrix[np.flatnonzero(keep)]),
        )


@dataclass(frozen=True)
class NewSlots:
    """How a list makes room for new movies: the candidates, the ranking model over the
    known movies (what a new movie's score is standardized against), the star floor,
    and how many movies the list shows (the new ones take its last places)."""

    movies: NewMovies
    known: FactorRanker
    star_floor: float
    shown: int


@dataclass(frozen=True)
class ScoreScale:
    """How a ranking model's scores spread for a user over the known movies, in closed
    form (no users x movies product): mean u . mean(V), variance u^T Cov(V) u. A new
    movie's score on this scale says how it compares with the user's known ones."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def of(cls, known_items: np.ndarray) -> ScoreScale:
        known_items = np.asarray(known_items, dtype=np.float64)
        mean = known_items.mean(axis=0)
        cov = np.cov(known_items, rowvar=False, bias=True).reshape(len(mean), len(mean))
        return cls(mean, cov)

    def moments(self, user_factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each user's (mean, deviation) of their scores over the known movies."""
        centre = user_factors @ self.mean
        variance = np.einsum("uk,kl,ul->u", user_factors, self.cov, user_factors)
        return centre, np.sqrt(variance.clip(0))

    def standardize(self, user_factors: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """`raw` scores (users x movies, or one per user) z-scored for each user."""
        centre, spread = self.moments(user_factors)
        # A user with no factor (nothing liked yet) has no scale: NaN, never a pick.
        spread = np.where(spread > 0, spread, np.nan)
        if raw.ndim == 2:
            return (raw - centre[:, None]) / spread[:, None]
        return (raw - centre) / spread


@dataclass(frozen=True)
class NewPicks:
    """For each user of a block, up to `NewMovies.slots` new movies, best first:
    positions among `NewMovies.movie_ids` (-1: none), z-scores, predicted stars, and the
    reason (the position among the known movies of a liked one, -1: none)."""

    positions: np.ndarray
    scores: np.ndarray
    stars: np.ndarray
    reasons: np.ndarray
    by_title: np.ndarray | None = None  # users x slots: the reason shares its title


def pick_new_movies(
    block: UserBlock,
    slots: NewSlots,
    rating: RatingTerms,
    rated: list[np.ndarray] | None = None,
) -> NewPicks:
    """Each user's best new movies by the ranking model (`block.factors` against the new
    movies' factors, z-scored against the known movies') that reach the threshold and
    their audience cut (`NewMovies.bar`) and whose predicted stars (the rating model's
    user terms with the new movies' terms) reach the star floor; `rated[u]` (positions
    among the new movies) are left out. The reason: of the user's liked movies, the
    closest to the new one in the ranking model's space (`new_movie_reasons`)."""
    new = slots.movies
    terms = replace(rating, item_bias=new.rating_bias, item_factors=new.rating_items)
    bias, factors = block.star_bias, block.star_factors
    scale = slots.known.scale
    bar = new.bar()

    def score(start: int, stop: int, out: np.ndarray) -> None:
        users = block.factors[start:stop]
        z = scale.standardize(users, users @ new.ranking_items.T)
        stars = terms.predict_all(
            None if bias is None else bias[start:stop],
            None if factors is None else factors[start:stop],
        )
        out[:] = np.where((z >= bar) & (stars >= slots.star_floor), z, -np.inf)

    positions, scores = top_n(
        score, len(block), len(new.movie_ids), max(new.slots, 0), exclude=rated
    )
    stars = terms.predict_block(bias, factors, positions)
    return NewPicks(positions, scores, stars, new_movie_reasons(slots.known, new, positions, block))


# How many of a user's new movies one liked movie may be the reason for.
NEW_REASON_USES = 2


def new_movie_reasons(
    known: FactorRanker, new: NewMovies, positions: np.ndarray, block: UserBlock
) -> np.ndarray:
    """For new movies at `positions` (users x n), the liked movie closest to each, with
    every factor taken from the known movies' mean first: content maps a new movie close
    to that mean (ridge shrinks), so by plain cosine one liked movie, the most typical,
    was the reason for a whole row; what sets a new movie apart is its departure. One
    liked movie is the reason for at most NEW_REASON_USES of them."""
    return reasons_by_similarity(
        known.items, positions, *block.liked(), candidates=new.ranking_items,
        centre=known.scale.mean.astype(np.float32), most_uses=NEW_REASON_USES,
    )  # fmt: skip


# Added to a fresh movie's fit in the row's ordering: every fresh one first.
FRESH_FIRST = np.float32(1e3)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indices starts[i] .. starts[i] + counts[i] - 1 of every i, one after another."""
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + offsets


@dataclass(frozen=True)
class TitleMatches:
    """For each (row of a block, new movie) whose title is like one the user rated
    highly, the highest such similarity and that known movie's position, sorted by row
    then new movie (`title_matches`)."""

    users: np.ndarray
    new: np.ndarray
    similarity: np.ndarray
    known: np.ndarray

    def dense(self, rows: np.ndarray, width: int) -> np.ndarray:
        """The similarities of the block's `rows` as a len(rows) x `width` matrix (0: no
        title alike)."""
        starts = np.searchsorted(self.users, rows)
        counts = np.searchsorted(self.users, rows, side="right") - starts
        at = _ranges(starts, counts)
        out = np.zeros((len(rows), width), np.float32)
        out[np.repeat(np.arange(len(rows)), counts), self.new[at]] = self.similarity[at]
        return out


def title_matches(links: TitleLinks, block: UserBlock) -> TitleMatches:
    """The block's users' title matches: for each (user, new movie) whose title is like
    one the user rated highly, the highest such similarity and that movie's position."""
    liked_at, liked_by = block.liked()
    by_known = links.by_known
    counts = np.diff(by_known.indptr)[liked_at]
    at = _ranges(by_known.indptr[liked_at], counts)
    users, new = np.repeat(liked_by, counts), by_known.indices[at].astype(np.int64)
    similarity = by_known.data[at].astype(np.float32)
    known = np.repeat(liked_at, counts)
    # The best last in each (user, movie): one sort of (user, movie, similarity) packed in
    # an int64, not a three-key lexsort (a third of the New for you rows' time at 33M).
    # A non-negative float32's bits order like the float.
    pair = users * links.matrix.shape[0] + new
    packed = (pair << 31) | similarity.clip(0).view(np.int32).astype(np.int64)
    order = np.argsort(packed, kind="stable")
    users, new, similarity, known = users[order], new[order], similarity[order], known[order]
    last = np.ones(len(users), dtype=bool)
    last[:-1] = (users[1:] != users[:-1]) | (new[1:] != new[:-1])
    return TitleMatches(users[last], new[last], similarity[last], known[last])


def row_fit(
    users: np.ndarray, new: NewMovies, scale: ScoreScale, title_match: np.ndarray
) -> np.ndarray:
    """The row's fit of the new movies for `users` (factors): the z-score on each user's
    own scale plus the row's weight x `title_match` (users x new movies: the title
    similarity to a movie the user rated highly)."""
    z = scale.standardize(users, users @ new.ranking_items.T)
    return (z + new.row.title_weight * title_match).astype(np.float32)


def pick_new_for_you(
    block: UserBlock,
    new: NewMovies,
    known: FactorRanker,
    rating: RatingTerms,
    star_floor: float,
    rated: list[np.ndarray] | None = None,
) -> NewPicks:
    """Each user's "New for you" row (`NewMovies.row`): the new movies whose fit reaches
    their audience cut and whose predicted stars reach the star floor, the fresh ones
    first, each part by fit; `rated[u]` (positions among the new movies) left out. The
    reason: a film whose title it shares, when the user rated one highly, else the liked
    movie closest in the ranking model's space."""
    row = new.row
    terms = replace(rating, item_bias=new.rating_bias, item_factors=new.rating_items)
    bias, factors = block.star_bias, block.star_factors
    matches = title_matches(row.links, block)
    width = len(new.movie_ids)
    fresh = row.fresh * FRESH_FIRST

    def score(start: int, stop: int, out: np.ndarray) -> None:
        title_match = matches.dense(np.arange(start, stop), width)
        fit = row_fit(block.factors[start:stop], new, known.scale, title_match)
        stars = terms.predict_all(
            None if bias is None else bias[start:stop],
            None if factors is None else factors[start:stop],
        )
        out[:] = np.where((fit >= row.audience) & (stars >= star_floor), fit + fresh, -np.inf)

    positions, scores = top_n(score, len(block), len(new.movie_ids), row.size, exclude=rated)
    scores = np.where(positions >= 0, scores - fresh[positions.clip(0)], scores)
    stars = terms.predict_block(bias, factors, positions)
    reasons = new_movie_reasons(known, new, positions, block)
    # A film whose title it shares, where there is one, is the reason.
    pairs = matches.users * width + matches.new  # sorted: by user, then new movie
    wanted = np.arange(len(block))[:, None] * width + positions.clip(0)
    titled = np.full(positions.shape, -1, dtype=np.int64)
    if len(pairs):
        at = np.searchsorted(pairs, wanted).clip(0, len(pairs) - 1)
        found = (positions >= 0) & (pairs[at] == wanted)
        titled[found] = matches.known[at[found]]
    by_title = titled >= 0
    return NewPicks(positions, scores, stars, np.where(by_title, titled, reasons), by_title)


def with_new_movies(lists: Lists, picks: NewPicks, shown: int, known: int) -> Lists:
    """`lists` with each user's picks in the last places of the `shown` ones, or of the
    list when it is shorter (the known movies they displace move down; the list keeps
    its length). Positions of new movies are `known` + their position among the new
    ones; `new` marks them."""
    users, n = lists.positions.shape
    shown = min(shown, n)
    positions = lists.positions.copy()
    scores = lists.scores.copy()
    stars = None if lists.stars is None else lists.stars.copy()
    reasons = lists.reasons.copy()
    new = np.zeros((users, n), dtype=bool)
    for user in range(users):
        picked = picks.positions[user] >= 0
        count = min(int(picked.sum()), shown)
        if not count:
            continue
        filled = int((lists.positions[user] >= 0).sum())
        at = min(shown, filled + count) - count  # right after the known movies when short
        rest = slice(at + count, n)
        moved = slice(at, n - count)
        positions[user, rest] = lists.positions[user, moved]
        scores[user, rest] = lists.scores[user, moved]
        reasons[user, rest] = lists.reasons[user, moved]
        if stars is not None:
            stars[user, rest] = lists.stars[user, moved]
        place = slice(at, at + count)
        positions[user, place] = known + picks.positions[user, :count]
        scores[user, place] = picks.scores[user, :count]
        reasons[user, place] = picks.reasons[user, :count]
        if stars is not None:
            stars[user, place] = picks.stars[user, :count]
        new[user, place] = True
    return Lists(positions, scores, stars, reasons, new)

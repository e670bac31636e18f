"""Synthetic MovieLens: GroupLens-format CSVs with a planted, learnable structure.

Writes ``ratings.csv``, ``movies.csv``, ``links.csv`` and ``tags.csv`` byte-compatible with
the GroupLens ``ml-latest`` family (same headers, ``4.0``-style ratings, 7-digit imdbIds,
minimal CSV quoting, ``\\n`` line endings, UTF-8), so the ingestion code cannot tell them
apart from a real download. Sizes run from a few thousand ratings (unit tests) to
beyond ml-latest (33M ratings) for benchmarks.

The data is shaped like MovieLens where downstream code cares:

* ratings = quantize(mu + b_u + b_i + <p_u, q_i> + noise) on the half-star grid, with
  skewed noise so that 4.0 is the mode and the mean is ~3.5; movie factors are partly
  built from genre vectors, so genre preferences are real and ALS has something to learn.
  :func:`planted_model` returns every generating parameter for tests to compare against;
* heavy-tailed activity (log-normal ratings per user, Zipf-like movie popularity), sparse
  movieIds, per-user activity windows between 1996 and 2023, half stars only after
  2003-02-12 (as on movielens.org), and awkward titles (trailing articles, alternate
  titles, year ranges, missing years, non-ASCII, quotes, trailing spaces, and real ones
  such as ``M*A*S*H`` and ``$1,000,000 Duck`` that Markdown would mangle).

Generation streams users in fixed blocks of :data:`BLOCK_USERS`, each with its own seeded
random stream: memory stays flat with size and the output does not depend on how many
blocks are buffered per write (``chunk_users``). The same spec gives byte-identical files.

numpy and pyarrow only (no Spark, no Dagster). CLI::

    python -m cinematch_assets.sources.synthetic --variant synthetic-1m --out DIR
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cinematch_assets.storage.atomic_files import replace_folder
from cinematch_assets.storage.leftovers import sweep, temp_prefix

__all__ = [
    "BLOCK_USERS",
    "GENERATOR_VERSION",
    "GENRES",
    "MANIFEST_NAME",
    "NO_GENRES",
    "SYNTHETIC_PRESETS",
    "PlantedModel",
    "PlantedParams",
    "SyntheticSpec",
    "generate_movielens",
    "main",
    "planted_model",
    "scaled_spec",
]

# Bump whenever the output for a given spec changes: it invalidates reused directories.
GENERATOR_VERSION = 2
MANIFEST_NAME = ".cinematch-synthetic.json"
# A temp folder whose writer cannot be checked (another host) is abandoned after this long.
BLOCK_USERS = 1000

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
NO_GENRES = "(no genres listed)"
# Share of ml-latest-small movies carrying each genre (same order as GENRES).
_GENRE_SHARE = np.array(
    [.168, .113, .039, .052, .340, .139, .040, .505, .065, .019, .097, .015, .040, .065,
     .173, .083, .212, .049, .023]
)  # fmt: skip
# How many genres a movie has: P(0), P(1), ... (0 means "(no genres listed)").
_GENRE_COUNT_P = np.array([0.02, 0.29, 0.33, 0.235, 0.095, 0.025, 0.005])

T_START = 820_454_400  # 1996-01-01 UTC
T_END = 1_696_118_400  # 2023-10-01 UTC
HALF_STARS_FROM = 1_045_008_000  # 2003-02-12 UTC: movielens.org offers half stars since then
_DAY = 86_400

RATING_HEADER = "userId,movieId,rating,timestamp"
MOVIE_HEADER = "movieId,title,genres"
LINK_HEADER = "movieId,imdbId,tmdbId"
TAG_HEADER = "userId,movieId,tag,timestamp"

# Independent random streams, so that e.g. asking for duplicates or more tags leaves the
# ratings untouched and title tweaks leave everything else untouched.
_S_MOVIES, _S_USERS, _S_TITLES, _S_LINKS, _S_RATINGS, _S_TAGS, _S_DUPLICATES = range(1, 8)
_S_AFFINITY = 8

_LARGE = pa.large_string()  # 64-bit offsets: a chunk may exceed 2 GiB of text
_RATING_TEXT = pa.array([f"{v / 2:.1f}" for v in range(1, 11)], _LARGE)  # "0.5" .. "5.0"


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Equal specs give byte-identical files.

    ``n_ratings`` is a target: per-user counts are scaled to hit it, so the total is within
    a fraction of a percent (exact when every user sits at the minimum).
    """

    n_users: int
    n_movies: int
    n_ratings: int
    seed: int = 42
    min_ratings_per_user: int = 1
    rank: int = 8
    n_duplicates: int = 0
    tags_per_1k_ratings: float = 30.0

    def __post_init__(self) -> None:
        if min(self.n_users, self.n_movies, self.n_ratings, self.rank) < 1:
            raise ValueError(f"sizes and rank must be positive: {self}")
        if not 1 <= self.min_ratings_per_user <= self.n_movies // 2:
            raise ValueError(f"min_ratings_per_user must be in 1..n_movies/2: {self}")
        if self.n_duplicates < 0 or self.tags_per_1k_ratings < 0:
            raise ValueError(f"n_duplicates and tags_per_1k_ratings must be >= 0: {self}")

    @classmethod
    def from_variant(cls, name: str, **overrides: Any) -> SyntheticSpec:
        """A preset (see :data:`SYNTHETIC_PRESETS`) or ``synthetic-<N>[k|m]`` scaled by
        :func:`scaled_spec`, e.g. ``synthetic-250k`` or ``synthetic-5m``; ``overrides``
        replace fields (``seed=7``)."""
        if name in SYNTHETIC_PRESETS:
            return replace(SYNTHETIC_PRESETS[name], **overrides)
        match = re.fullmatch(r"synthetic-(\d+(?:\.\d+)?)([km]?)", name.strip().lower())
        if not match:
            known = ", ".join(SYNTHETIC_PRESETS)
            raise ValueError(f"unknown variant {name!r}: use {known} or synthetic-<N>[k|m]")
        number, suffix = match.groups()
        n_ratings = round(float(number) * {"": 1, "k": 1e3, "m": 1e6}[suffix])
        return replace(scaled_spec(n_ratings), **overrides)


def scaled_spec(n_ratings: int, **overrides: Any) -> SyntheticSpec:
    """A spec with ml-latest proportions for ``n_ratings`` ratings.

    The rule: 100 ratings per user (ml-latest: 33M ratings, 330k users), and a catalog that
    grows like ``n_ratings ** 0.39``, the power that links ml-latest-small (100k ratings,
    9k movies) to ml-latest (33M ratings, 86k movies). ``synthetic-33m`` is ml-latest-sized.
    """
    n_users = max(round(n_ratings / 100), 1)
    n_movies = max(round(86_000 * (n_ratings / 33e6) ** 0.39), 10)
    return SyntheticSpec(n_users, n_movies, n_ratings, **overrides)


SYNTHETIC_PRESETS: dict[str, SyntheticSpec] = {
    "synthetic-tiny": SyntheticSpec(n_users=100, n_movies=400, n_ratings=5_000),
    "synthetic-small": SyntheticSpec(n_users=700, n_movies=9_000, n_ratings=100_000),
    "synthetic-1m": scaled_spec(1_000_000),
    "synthetic-33m": scaled_spec(33_000_000),
}


# --------------------------------------------------------------------------- planted model


@dataclass(frozen=True)
class PlantedParams:
    """Constants of the rating model. Calibrated so the rating histogram resembles
    ml-latest-small (4.0 ~26%, 3.0 ~22%, 5.0 ~14%, half stars rarer than whole stars, mean
    ~3.55, sd ~1.0) while the planted taste term is strong enough for ALS to beat a
    bias-only model clearly (~10% lower RMSE on synthetic-small)."""

    # mu; the mean rating ends ~0.05 lower (rounding, clipping)
    global_mean: float = 3.6
    user_bias_sd: float = 0.30
    item_bias_sd: float = 0.35
    interaction_sd: float = 0.75  # sd of <p_u, q_i>
    noise_sd: float = 0.55
    skew: float = -6.0  # skew-normal shape of item bias and noise: long tail of bad ratings
    genre_weight: float = 0.75  # share (in sd) of a movie vector explained by its genres
    half_star_rate: float = 0.75  # mean share of half-star-grid ratings after 2003-02-12
    activity_sigma: float = 1.5  # log-normal sd of ratings per user (ml-latest: ~1.5)
    # Popularity of the r-th most popular movie ~ (r + offset)^-exponent (Zipf-Mandelbrot),
    # the same law at every size: a bigger catalog adds obscure movies, as the real one
    # grows. Fitted to ml-latest-small (78% of movies under 10 ratings, top movie 0.3% of
    # ratings) and ml-latest (item Gini 0.95, top movie ~0.35%).
    zipf_exponent: float = 1.7
    zipf_offset: float = 200.0
    tagger_share: float = 0.1  # few users tag, heavily (as in MovieLens)
    # People choose movies of the genres they are drawn to: a popularity draw is kept with
    # probability sigmoid(genre_selection * a_u . g_i / sqrt(|g_i|)), a_u ~ N(0, I) a user's
    # genre affinity, g_i the movie's genres. So who-rated-what carries structure of its
    # own (what an implicit-feedback model learns), not popularity alone; a_u is
    # independent of the rating taste, so choosing leaves the rating model's signal alone.
    genre_selection: float = 5.0


@dataclass(frozen=True, eq=False)
class PlantedModel:
    """The generating parameters of a spec: everything except the per-rating draws.

    Users and movies are indexed from 0; ``movie_ids[i]`` is movie ``i``'s movieId and user
    ``u`` has userId ``u + 1``.
    """

    spec: SyntheticSpec
    params: PlantedParams
    movie_ids: np.ndarray  # (n_movies,) int64, increasing, with gaps
    genres: np.ndarray  # (n_movies, len(GENRES)) bool
    genre_factors: np.ndarray  # (len(GENRES), rank): a genre's direction in taste space
    item_factors: np.ndarray  # (n_movies, rank)
    item_bias: np.ndarray  # (n_movies,)
    popularity: np.ndarray  # (n_movies,) probabilities of being picked
    by_popularity: np.ndarray  # (n_movies,) movie indices, most popular first
    user_factors: np.ndarray  # (n_users, rank)
    user_bias: np.ndarray  # (n_users,)
    counts: np.ndarray  # (n_users,) ratings per user
    first_ts: np.ndarray  # (n_users,) start of the user's activity window
    span_s: np.ndarray  # (n_users,) length of the window, seconds
    half_star_rate: np.ndarray  # (n_users,) chance a rating is on the half-star grid
    tagger: np.ndarray  # (n_users,) bool
    genre_affinity: np.ndarray  # (n_users, len(GENRES)): drives which movies a user picks

    def draw_movies(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Movie indices drawn (with replacement) by popularity, in O(1) per draw."""
        ranks = _zipf_quantile(rng.random(size), self.spec.n_movies, self.params)
        return self.by_popularity[np.minimum(ranks.astype(np.int64), self.spec.n_movies - 1)]

    def expected_rating(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """mu + b_u + b_i + <p_u, q_i>: the noiseless, unquantized score."""
        taste = np.einsum("ij,ij->i", self.user_factors[users], self.item_factors[items])
        return self.params.global_mean + self.user_bias[users] + self.item_bias[items] + taste

    def genre_preference(self) -> np.ndarray:
        """(n_users, len(GENRES)): how much each user likes each genre (<p_u, genre vector>)."""
        return self.user_factors @ self.genre_factors.T

    def summary(self) -> dict[str, Any]:
        """The scalar parameters, JSON-ready."""
        return {
            **asdict(self.params),
            "rank": self.spec.rank,
            "half_stars_from": HALF_STARS_FROM,
            "max_ratings_per_user": _max_per_user(self.spec),
            "planned_ratings": int(self.counts.sum()),
        }


def planted_model(spec: SyntheticSpec, params: PlantedParams | None = None) -> PlantedModel:
    """Draw the movies and users of ``spec`` (cheap: no per-rating work)."""
    params = params or PlantedParams()
    movies = _draw_movies(spec, params)
    users = _draw_users(spec, params)
    return PlantedModel(spec=spec, params=params, **movies, **users)


def _draw_movies(spec: SyntheticSpec, params: PlantedParams) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([spec.seed, _S_MOVIES])
    n, k = spec.n_movies, spec.rank
    # Real movieIds have gaps (ml-latest: 86k movies up to id ~290k).
    movie_ids = np.sort(rng.choice(3 * n, size=n, replace=False)) + 1
    genres = _draw_genres(rng, n)
    # Movie vectors mix their genres' directions with an idiosyncratic part; unit variance
    # per dimension either way, scaled so that <p_u, q_i> has sd interaction_sd.
    genre_factors = rng.standard_normal((len(GENRES), k))
    n_genres = genres.sum(axis=1, keepdims=True)
    from_genres = (genres @ genre_factors) / np.sqrt(np.maximum(n_genres, 1))
    w = np.where(n_genres > 0, params.genre_weight, 0.0)
    unit = w * from_genres + np.sqrt(1 - w**2) * rng.standard_normal((n, k))
    scale = math.sqrt(params.interaction_sd) / k**0.25
    item_bias = params.item_bias_sd * _skew_normal(rng, params.skew, n)
    # Popularity ranks: a random order of the catalog.
    by_popularity = rng.permutation(n)
    rank_share = np.diff(_zipf_cdf(np.arange(n + 1), n, params))
    return {
        "movie_ids": movie_ids.astype(np.int64),
        "genres": genres,
        "genre_factors": genre_factors,
        "item_factors": scale * unit,
        "item_bias": item_bias,
        "popularity": rank_share[np.argsort(by_popularity)],
        "by_popularity": by_popularity,
    }


# Popularity follows a continuous Zipf-Mandelbrot law on [0, n], density ~ (x + offset)^-s,
# and the r-th most popular movie gets the mass of [r, r + 1): an invertible CDF, so draws
# cost O(1) instead of a binary search through the catalog.


def _zipf_cdf(x: np.ndarray, n: int, params: PlantedParams) -> np.ndarray:
    s, o = params.zipf_exponent, params.zipf_offset
    if s == 1:
        return np.log1p(x / o) / math.log1p(n / o)
    a, b = o ** (1 - s), (n + o) ** (1 - s)
    return ((x + o) ** (1 - s) - a) / (b - a)


def _zipf_quantile(u: np.ndarray, n: int, params: PlantedParams) -> np.ndarray:
    s, o = params.zipf_exponent, params.zipf_offset
    if s == 1:
        return o * np.expm1(u * math.log1p(n / o))
    a, b = o ** (1 - s), (n + o) ** (1 - s)
    return (a + u * (b - a)) ** (1 / (1 - s)) - o


def _draw_genres(rng: np.random.Generator, n: int) -> np.ndarray:
    """A (n, n_genres) membership matrix: genre counts and shares as in MovieLens."""
    how_many = rng.choice(len(_GENRE_COUNT_P), size=n, p=_GENRE_COUNT_P)
    how_many[rng.integers(n)] = 0  # "(no genres listed)" at least once, whatever the size
    # Weighted sampling without replacement, vectorized: the k largest Gumbel-perturbed
    # log-weights are a weighted sample of size k.
    keys = np.log(_GENRE_SHARE) + rng.gumbel(size=(n, len(GENRES)))
    order = np.argsort(-keys, axis=1)
    genres = np.zeros((n, len(GENRES)), dtype=bool)
    rows, cols = np.nonzero(np.arange(len(GENRES)) < how_many[:, None])
    genres[rows, order[rows, cols]] = True
    return genres


def _draw_users(spec: SyntheticSpec, params: PlantedParams) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([spec.seed, _S_USERS])
    n, k = spec.n_users, spec.rank
    scale = math.sqrt(params.interaction_sd) / k**0.25
    counts = _activity(rng, spec, params)
    # Activity windows: half the users rate in one sitting (~1 min per rating), the others
    # come back over a log-uniform 1 day .. 27 years, as in MovieLens.
    one_sitting = rng.random(n) < 0.5
    sitting = counts * rng.uniform(20, 120, n)
    returning = np.exp(rng.uniform(np.log(_DAY), np.log(T_END - T_START), n))
    span_s = np.minimum(np.where(one_sitting, sitting, returning), T_END - T_START - 1)
    first_ts = T_START + rng.random(n) * (T_END - T_START - span_s)
    # Half-star habit: some users never use them, most do often (mean = half_star_rate).
    a = 0.7 * params.half_star_rate / (1 - params.half_star_rate)
    tagger = rng.random(n) < params.tagger_share
    tagger[np.argmax(counts)] = True  # at least one tagger, however small the spec
    return {
        "user_factors": scale * rng.standard_normal((n, k)),
        "user_bias": params.user_bias_sd * rng.standard_normal(n),
        "counts": counts,
        "first_ts": first_ts.astype(np.int64),
        "span_s": span_s.astype(np.int64),
        "half_star_rate": rng.beta(a, 0.7, n),
        "tagger": tagger,
        # Its own stream: the draws above stay what they were.
        "genre_affinity": np.random.default_rng([spec.seed, _S_AFFINITY]).standard_normal(
            (n, len(GENRES))
        ),
    }


def _activity(rng: np.random.Generator, spec: SyntheticSpec, params: PlantedParams) -> np.ndarray:
    """Ratings per user: min + a log-normal share, scaled so the total is ~n_ratings."""
    raw = rng.lognormal(0.0, params.activity_sigma, spec.n_users)
    low, cap = spec.min_ratings_per_user, _max_per_user(spec)

    def counts(scale: float) -> np.ndarray:
        return np.minimum(low + np.floor(scale * raw), cap).astype(np.int64)

    lo, hi = 0.0, float(spec.n_ratings) / raw.min() + 1
    for _ in range(100):  # bisection on the scale: deterministic, and exact enough
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if counts(mid).sum() < spec.n_ratings else (lo, mid)
    return counts(hi)


def _max_per_user(spec: SyntheticSpec) -> int:
    """Heavy users rate at most half the catalog (ml-latest-small's top user: 5.7k of 10k)."""
    return max(spec.min_ratings_per_user, spec.n_movies // 2)


def _skew_normal(rng: np.random.Generator, shape: float, size: int) -> np.ndarray:
    """Skew-normal draws standardized to mean 0, sd 1 (negative shape: long left tail)."""
    delta = shape / math.sqrt(1 + shape**2)
    folded, plain = np.abs(rng.standard_normal(size)), rng.standard_normal(size)
    z = delta * folded + math.sqrt(1 - delta**2) * plain
    mean = delta * math.sqrt(2 / math.pi)
    return (z - mean) / math.sqrt(1 - mean**2)


# --------------------------------------------------------------------------- ratings & tags


@dataclass(frozen=True)
class _Ratings:
    """Ratings of consecutive users, sorted by (user, movie); ``codes`` 0..9 = 0.5..5.0."""

    users: np.ndarray
    items: np.ndarray
    codes: np.ndarray
    ts: np.ndarray

    def take(self, index: np.ndarray) -> _Ratings:
        return _Ratings(self.users[index], self.items[index], self.codes[index], self.ts[index])


@dataclass(frozen=True)
class _Tags:
    """Tags sorted by (user, movie); ``vocab_index`` points into the tag vocabulary."""

    users: np.ndarray
    items: np.ndarray
    vocab_index: np.ndarray
    ts: np.ndarray


def _block_ratings(model: PlantedModel, block: int) -> _Ratings:
    """The ratings of users ``block * BLOCK_USERS ...``: a pure function of (spec, block)."""
    spec, params = model.spec, model.params
    rng = np.random.default_rng([spec.seed, _S_RATINGS, block])
    first = block * BLOCK_USERS
    counts = model.counts[first : first + BLOCK_USERS]
    local, items = _sample_items(rng, model, counts, first)
    users = first + local
    ts = model.first_ts[users] + (rng.random(len(users)) * model.span_s[users]).astype(np.int64)
    noise = params.noise_sd * _skew_normal(rng, params.skew, len(users))
    score = model.expected_rating(users, items) + noise
    half = (ts >= HALF_STARS_FROM) & (rng.random(len(users)) < model.half_star_rate[users])
    return _Ratings(users, items, _quantize(score, half), ts)


def _sample_items(
    rng: np.random.Generator, model: PlantedModel, counts: np.ndarray, first: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``counts[u]`` distinct movies per user (user ``first + u``), drawn by popularity
    without replacement, each draw kept with the probability the user's genre affinity
    gives it (``genre_selection``).

    Draw with replacement and keep each user's first distinct kept draws (which is exactly
    sequential sampling without replacement); users left short draw again, with a growing
    margin. Returns (user, movie) index pairs sorted by user, then movie.
    """
    n_items = model.spec.n_movies
    kept = np.empty(0, dtype=np.int64)  # keys user * n_items + movie
    short = counts.astype(np.int64)
    for attempt in range(64):
        if not short.any():
            kept.sort()
            return kept // n_items, kept % n_items
        n_draws = short + np.ceil(short * 0.25 * 2**attempt).astype(np.int64) + (short > 0)
        users = np.repeat(np.arange(len(counts)), n_draws)
        movies = model.draw_movies(rng, len(users))
        liked = _selection_probability(model, first + users, movies) > rng.random(len(users))
        users, movies = users[liked], movies[liked]
        draws = users * n_items + movies
        # kept goes first, so what follows it is new to the user, in draw order.
        fresh = _first_occurrences(np.concatenate([kept, draws]))[len(kept) :]
        owner = fresh // n_items  # non-decreasing: draws are grouped by user
        rank = np.arange(len(fresh)) - np.searchsorted(owner, owner)  # within the user's run
        take = rank < short[owner]
        kept = np.concatenate([kept, fresh[take]])
        short -= np.bincount(owner[take], minlength=len(counts))
    raise RuntimeError("movie sampling did not converge; is min_ratings_per_user too large?")


def _selection_probability(model: PlantedModel, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    genres = model.genres[items]
    pull = np.einsum("ij,ij->i", model.genre_affinity[users], genres)
    pull /= np.sqrt(np.maximum(genres.sum(axis=1), 1))
    return 1.0 / (1.0 + np.exp(-model.params.genre_selection * pull))


def _first_occurrences(keys: np.ndarray) -> np.ndarray:
    """The distinct values of ``keys`` (non-negative), in order of first occurrence.

    One plain sort of (key, position) packed into an int64: much faster than a stable
    argsort, which is what ``np.unique(..., return_index=True)`` does.
    """
    shift = max(len(keys), 1).bit_length()
    if int(keys.max(initial=0)).bit_length() + shift > 62:
        raise ValueError("too many movies per block to pack sampling keys into int64")
    packed = (keys << shift) | np.arange(len(keys))
    packed.sort()
    value = packed >> shift
    first = np.ones(len(keys), dtype=bool)
    first[1:] = value[1:] != value[:-1]
    is_first = np.zeros(len(keys), dtype=bool)
    is_first[packed[first] & ((1 << shift) - 1)] = True
    return keys[is_first]


def _quantize(score: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Round to the half-star grid (0.5..5.0) or, without half stars, to whole stars (1..5).

    Returns codes 0..9 for 0.5, 1.0, ..., 5.0.
    """
    halves = np.where(half, np.rint(2 * score), 2 * np.rint(score))
    return np.clip(halves, np.where(half, 1, 2), 10).astype(np.int8) - 1


def _with_duplicates(ratings: _Ratings, global_rows: np.ndarray, offset: int) -> _Ratings:
    """Repeat the rows whose global index (from ``offset``) is in ``global_rows``."""
    local = global_rows[(global_rows >= offset) & (global_rows < offset + len(ratings.users))]
    if not len(local):
        return ratings
    repeats = np.ones(len(ratings.users), dtype=np.int64)
    repeats[local - offset] = 2
    return ratings.take(np.repeat(np.arange(len(ratings.users)), repeats))


def _block_tags(model: PlantedModel, block: int, ratings: _Ratings, tag_rate: float) -> _Tags:
    """Tags by the block's tagger users, on movies they rated, shortly after rating them."""
    rng = np.random.default_rng([model.spec.seed, _S_TAGS, block])
    n = len(ratings.users)
    tagged = model.tagger[ratings.users] & (rng.random(n) < tag_rate)
    rows = np.repeat(np.flatnonzero(tagged), rng.geometric(0.6, int(tagged.sum())))
    size = len(_TAG_VOCAB)
    words = np.minimum(np.searchsorted(_TAG_CDF, rng.random(len(rows)), side="right"), size - 1)
    keys = np.unique(rows * size + words)  # a user gives a movie the same tag once
    rows, words = keys // size, keys % size
    ts = np.minimum(ratings.ts[rows] + rng.integers(0, 3_600, len(rows)), T_END - 1)
    return _Tags(ratings.users[rows], ratings.items[rows], words, ts)


def _tag_rate(spec: SyntheticSpec, model: PlantedModel) -> float:
    """Chance that a tagger tags a movie they rated, for ~tags_per_1k_ratings overall."""
    wanted = spec.tags_per_1k_ratings * model.counts.sum() / 1_000
    tagger_ratings = model.counts[model.tagger].sum()
    return min(1.0, wanted / (tagger_ratings / 0.6))  # 1/0.6 tags per tagged movie


# --------------------------------------------------------------------------- catalog text

_ADJECTIVES = (
    "Silent", "Broken", "Golden", "Last", "Dark", "Lost", "Hidden", "Wild", "Crimson",
    "Frozen", "Electric", "Midnight", "Burning", "Little", "Secret", "Savage", "Endless",
    "Quiet", "Iron", "Velvet", "Lonely", "Distant", "Bright", "Hollow", "Scarlet", "Final",
    "Sweet", "Bitter", "Northern", "Eternal", "Restless", "Paper",
)  # fmt: skip
_NOUNS = (
    "River", "Heart", "City", "Road", "Kingdom", "Summer", "Garden", "Machine", "Storm",
    "Dream", "Island", "Night", "Mirror", "Empire", "Ghost", "Harbor", "Shadow", "Window",
    "Station", "Horizon", "Winter", "Letter", "Stranger", "Circus", "Frontier", "Promise",
    "Journey", "Valley", "Signal", "Crown", "Orchard", "Lighthouse",
)  # fmt: skip
_NAMES = (
    "Max", "Lucy", "Oscar", "Nina", "Frank", "Ruby", "Leo", "Vera", "Sam", "Iris", "Hugo",
    "Mona", "Jack", "Elsa", "Otto", "Zoe",
)  # fmt: skip
_PLACES = ("Paris", "Tokyo", "Brooklyn", "Texas", "Berlin", "Rome", "Alaska", "Havana")
# Foreign titles, used as main or alternate titles (MovieLens moves articles to the end).
_FOREIGN = (
    "Cité des ombres, La", "Große Stadt, Die", "Ciudad perdida, La", "Mañana sin fin",
    "Kôkaku no yoru", "Été dernier, L'", "Nuit blanche", "Søndag i august", "Vida é bela, A",
    "Ödemiş yolu", "Ángel caído, El", "Żywot ptaków", "Fräulein Sonne", "Cœur volé, Le",
    "Yoru no kōen", "Più bella del mondo, La", "Ärger im Paradies", "Elämältä kaiken sain",
)  # fmt: skip
# Real MovieLens titles full of Markdown syntax (emphasis, LaTeX dollars).
MARKDOWN_TITLES = ("M*A*S*H (a.k.a. MASH) (1970)", "B*A*P*S (1997)", "$1,000,000 Duck (1971)",
                   "Succe$s (1991)")  # fmt: skip
_NAME_KINDS = (
    "plain", "article", "of_the", "possessive", "in_place", "sequel", "subtitle", "foreign",
    "quoted",
)  # fmt: skip
_NAME_P = np.array([0.30, 0.17, 0.10, 0.08, 0.05, 0.08, 0.12, 0.08, 0.02])
_YEAR_KINDS = ("year", "trailing_space", "no_year", "range", "open_range")
_YEAR_P = np.array([0.986, 0.006, 0.004, 0.002, 0.002])


def _titles(spec: SyntheticSpec) -> list[str]:
    """Deterministic titles built from word lists, with MovieLens's quirks planted."""
    rng = np.random.default_rng([spec.seed, _S_TITLES])
    n = spec.n_movies
    name_kind = rng.choice(len(_NAME_KINDS), size=n, p=_NAME_P)
    year_kind = rng.choice(len(_YEAR_KINDS), size=n, p=_YEAR_P)
    alternate = rng.random(n) < 0.1
    # Every quirk at least once, whatever the size, so tests always meet them.
    planted = [(name_kind, _NAME_KINDS.index(k)) for k in ("article", "foreign", "quoted")]
    planted += [(year_kind, _YEAR_KINDS.index(k)) for k in _YEAR_KINDS[1:]]
    spots = rng.choice(n, size=min(n, len(planted) + 1), replace=False)
    for (kinds, kind), spot in zip(planted, spots, strict=False):
        kinds[spot] = kind
    alternate[spots[-1]] = True
    years = 1902 + np.rint(121 * rng.beta(4.0, 1.3, n)).astype(int)  # mostly recent
    words = rng.integers(0, 1 << 30, size=(n, 4))  # picks into the word lists
    return [
        _title(_NAME_KINDS[nk], _YEAR_KINDS[yk], alt, int(year), w)
        for nk, yk, alt, year, w in zip(name_kind, year_kind, alternate, years, words, strict=True)
    ]


def _title(name_kind: str, year_kind: str, alternate: bool, year: int, w: np.ndarray) -> str:
    """One title, e.g. ``Silent River, The (Große Stadt, Die) (1994)``."""
    adj, noun = _ADJECTIVES[w[0] % len(_ADJECTIVES)], _NOUNS[w[1] % len(_NOUNS)]
    noun2 = _NOUNS[(w[1] + 1 + w[2] % (len(_NOUNS) - 1)) % len(_NOUNS)]  # never noun again
    other = int(w[3])
    name = {
        "plain": f"{adj} {noun}",
        "article": f"{adj} {noun}, {('The', 'A', 'An')[other % 3]}",
        "of_the": f"{noun} of the {noun2}",
        "possessive": f"{_NAMES[other % len(_NAMES)]}'s {noun}",
        "in_place": f"{noun} in {_PLACES[other % len(_PLACES)]}, A",
        "sequel": f"{adj} {noun} {2 + other % 4}",
        "subtitle": f"{adj} {noun}: {noun2} of {_PLACES[other % len(_PLACES)]}",
        "foreign": _FOREIGN[other % len(_FOREIGN)],
        "quoted": f'"{adj} {noun}" {noun2}',
    }[name_kind]
    if name_kind == "article" and name.endswith(", An") and adj[0] not in "AEIOU":
        name = name[:-4] + ", A"  # "Silent River, An" reads wrong
    if alternate:
        alt = _FOREIGN[(other >> 8) % len(_FOREIGN)]
        name += f" (a.k.a. {noun2} {noun})" if other % 5 == 0 else f" ({alt})"
    suffix = {
        "year": f" ({year})",
        "trailing_space": f" ({year}) ",
        "no_year": "",
        "range": f" ({year}-{min(year + 1 + other % 8, 2023)})",
        "open_range": f" ({max(year, 1990)}-)",
    }
    return name + suffix[year_kind]


def _genre_strings(genres: np.ndarray) -> pa.Array:
    """``Action|Comedy`` per movie (alphabetical, as in MovieLens) via the distinct sets."""
    masks = genres.astype(np.int64) @ (1 << np.arange(len(GENRES), dtype=np.int64))
    distinct, index = np.unique(masks, return_inverse=True)
    texts = [
        "|".join(g for bit, g in enumerate(GENRES) if mask >> bit & 1) or NO_GENRES
        for mask in distinct.tolist()
    ]
    return pc.take(pa.array(texts, _LARGE), pa.array(index.ravel()))


def _links(spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct imdbIds (< 10^7, so 7 digits when zero-padded) and tmdbIds; a few tmdbIds
    are missing, as in MovieLens (at least one, so readers meet an empty field)."""
    rng = np.random.default_rng([spec.seed, _S_LINKS])
    n = spec.n_movies
    imdb = rng.choice(9_999_999, size=n, replace=False) + 1
    tmdb = rng.choice(1_200_000, size=n, replace=False) + 2
    missing = rng.random(n) < 0.002
    missing[rng.integers(n)] = True
    return imdb, tmdb, missing


_TAG_WORDS = (
    "funny", "quirky", "atmospheric", "twist ending", "dark comedy", "visually appealing",
    "based on a book", "slow", "predictable", "classic", "surreal", "bittersweet", "dystopia",
    "time travel", "great soundtrack", "boring", "cheesy", "thought-provoking", "violent",
    "romance", "sci-fi", "world war ii", "heist", "revenge", "friendship", "coming of age",
    "nonlinear", "cult film", "small town", "animation", "stylized", "tense", "aliens",
    "Oscar (Best Picture)", "USA film registry", "In Netflix queue", "Great Soundtrack",
    "Kid movie", "BD-R", "Not a movie", "It was melodramatic and kind of dumb",
    "funny, but too long", "dark, gritty", '"found footage"', 'Ray "The Hammer" Stone',
    "québécois", "Amélie-like", "2001", "20060407", "Criterion",
)  # fmt: skip
_FIRST = ("Nora", "José", "Zoë", "Malik", "Ingrid", "Kenji", "Ada", "Luca", "Priya", "Tom")
_LAST = ("Lindqvist", "Okafor", "Marchetti", "Dubois", "Novák", "Tanaka", "Reyes", "Walsh")


# Free-text tags: keywords plus people's names, picked Zipf-like (most popular first).
_TAG_VOCAB = _TAG_WORDS + tuple(f"{first} {last}" for last in _LAST for first in _FIRST)
_TAG_CDF = np.cumsum(1 / np.arange(1, len(_TAG_VOCAB) + 1))
_TAG_CDF /= _TAG_CDF[-1]


# --------------------------------------------------------------------------- CSV encoding


def _ints(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), _LARGE)


def _quoted(texts: pa.Array) -> pa.Array:
    """Minimal CSV quoting, like Python's csv module: quote fields containing a comma,
    a quote or a line break, and double the quotes inside."""
    needs = pc.match_substring_regex(texts, r'[",\r\n]')
    quote, empty = pa.scalar('"', _LARGE), pa.scalar("", _LARGE)
    wrapped = pc.binary_join_element_wise(
        quote, pc.replace_substring(texts, '"', '""'), quote, empty
    )
    return pc.if_else(needs, wrapped, texts)


def _encode(columns: Sequence[pa.Array]) -> memoryview:
    """CSV lines ``a,b,c\\n`` for the given text columns, as one contiguous buffer."""
    comma, newline = pa.scalar(",", _LARGE), pa.scalar("\n", _LARGE)
    joined = pc.binary_join_element_wise(*columns, comma)
    lines = pc.binary_join_element_wise(joined, pa.scalar("", _LARGE), newline)
    if len(lines) == 0:
        return memoryview(b"")
    _, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(data)[bounds[0] : bounds[-1]]


def _write_catalog(model: PlantedModel, folder: Path) -> None:
    """movies.csv and links.csv (small: one pass each)."""
    spec = model.spec
    movie_ids = _ints(model.movie_ids)
    names = _titles(spec)
    # Real MovieLens titles that Markdown would mangle, on popular movies (every model and
    # list knows them), so the app is always tested on them.
    for spot, title in zip(model.by_popularity[3:], MARKDOWN_TITLES, strict=False):
        names[spot] = title
    titles = _quoted(pa.array(names, _LARGE))
    with open(folder / "movies.csv", "wb") as f:
        f.write(f"{MOVIE_HEADER}\n".encode())
        f.write(_encode([movie_ids, titles, _genre_strings(model.genres)]))
    imdb, tmdb, missing = _links(spec)
    imdb_text = pc.utf8_lpad(_ints(imdb), 7, "0")
    tmdb_text = pc.if_else(pa.array(missing), pa.scalar("", _LARGE), _ints(tmdb))
    with open(folder / "links.csv", "wb") as f:
        f.write(f"{LINK_HEADER}\n".encode())
        f.write(_encode([movie_ids, imdb_text, tmdb_text]))


def _chunks(model: PlantedModel, chunk_users: int) -> Iterator[tuple[_Ratings, _Tags]]:
    """All ratings and tags, a few blocks of users at a time."""
    spec = model.spec
    planned = int(model.counts.sum())
    if spec.n_duplicates > planned:
        raise ValueError(f"n_duplicates={spec.n_duplicates} exceeds the {planned} ratings")
    rng = np.random.default_rng([spec.seed, _S_DUPLICATES])
    duplicates = np.sort(rng.choice(planned, size=spec.n_duplicates, replace=False))
    first_row = np.concatenate([[0], np.cumsum(model.counts)])  # of each user
    tag_rate = _tag_rate(spec, model)
    n_blocks = -(-spec.n_users // BLOCK_USERS)
    step = max(1, -(-chunk_users // BLOCK_USERS))
    for start in range(0, n_blocks, step):
        blocks = range(start, min(start + step, n_blocks))
        ratings = [_block_ratings(model, b) for b in blocks]
        tags = [_block_tags(model, b, r, tag_rate) for b, r in zip(blocks, ratings, strict=True)]
        offset = int(first_row[start * BLOCK_USERS])
        yield _with_duplicates(_concat(ratings), duplicates, offset), _concat(tags)


class _Writer:
    """Streams ratings.csv and tags.csv into ``folder``, keeping count of what it wrote."""

    def __init__(self, model: PlantedModel, folder: Path) -> None:
        self.movie_text = _ints(model.movie_ids)
        self.tag_text = _quoted(pa.array(_TAG_VOCAB, _LARGE))
        self.rated = np.zeros(model.spec.n_movies, dtype=bool)
        self.n_ratings = self.n_tags = self.twice_rating_sum = 0
        self.ratings = open(folder / "ratings.csv", "wb")  # noqa: SIM115 (closed in __exit__)
        self.tags = open(folder / "tags.csv", "wb")  # noqa: SIM115
        self.ratings.write(f"{RATING_HEADER}\n".encode())
        self.tags.write(f"{TAG_HEADER}\n".encode())

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.ratings.close()
        self.tags.close()

    def write(self, r: _Ratings, t: _Tags) -> None:
        # A chunk holds a short run of users: format each userId once.
        first = int(r.users[0]) if len(r.users) else 0
        user_ids = _ints(np.arange(first, int(r.users.max(initial=first)) + 1) + 1)
        user_text = pc.take(user_ids, pa.array(r.users - first))
        movie_text = pc.take(self.movie_text, pa.array(r.items))
        rating_text = pc.take(_RATING_TEXT, pa.array(r.codes))
        self.ratings.write(_encode([user_text, movie_text, rating_text, _ints(r.ts)]))
        movie_text = pc.take(self.movie_text, pa.array(t.items))
        tag_text = pc.take(self.tag_text, pa.array(t.vocab_index))
        self.tags.write(_encode([_ints(t.users + 1), movie_text, tag_text, _ints(t.ts)]))
        self.rated[r.items] = True
        self.n_ratings += len(r.codes)
        self.n_tags += len(t.users)
        self.twice_rating_sum += int(r.codes.sum(dtype=np.int64)) + len(r.codes)

    def stats(self) -> dict[str, Any]:
        return {
            "rating_mean": self.twice_rating_sum / 2 / max(self.n_ratings, 1),
            "rated_movies": int(self.rated.sum()),
        }


def _write_dataset(spec: SyntheticSpec, folder: Path, chunk_users: int) -> dict[str, Any]:
    """Write the four CSVs into ``folder``; return the summary."""
    model = planted_model(spec)
    _write_catalog(model, folder)
    with _Writer(model, folder) as writer:
        for ratings, tags in _chunks(model, chunk_users):
            writer.write(ratings, tags)
    rows = {"ratings": writer.n_ratings, "movies": spec.n_movies, "links": spec.n_movies}
    return {
        "generator_version": GENERATOR_VERSION,
        "spec": asdict(spec),
        "rows": {**rows, "tags": writer.n_tags},
        "params": model.summary(),
        "stats": {**writer.stats(), "max_movie_id": int(model.movie_ids[-1])},
    }


def _concat(parts: Sequence[Any]) -> Any:
    """Concatenate dataclasses of equally long arrays field by field."""
    cls = type(parts[0])
    return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


# --------------------------------------------------------------------------- output folder


def generate_movielens(
    spec: SyntheticSpec, out_dir: str | os.PathLike[str], *, chunk_users: int = BLOCK_USERS
) -> dict[str, Any]:
    """Write ratings.csv, movies.csv, links.csv and tags.csv of ``spec`` into ``out_dir``.

    The files are written into a temporary sibling folder that is renamed into place once
    complete, with a manifest (:data:`MANIFEST_NAME`) written last; if ``out_dir`` already
    holds the output of this spec it is reused as is. An ``out_dir`` holding the output
    of another spec is replaced; any other non-empty ``out_dir`` is refused.

    ``chunk_users`` sets how many users are generated and written per step (rounded up to
    whole blocks of :data:`BLOCK_USERS`); it trades memory for speed and never changes the
    output. Returns the summary: ``rows`` per file, the ``spec``, the generating ``params``
    (``global_mean``, ...), ``stats`` of the output, and ``reused``.
    """
    out_dir = Path(out_dir)
    if (summary := _read_manifest(out_dir, spec)) is not None:
        return {**summary, "reused": True}
    if out_dir.exists() and not (out_dir / MANIFEST_NAME).is_file() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty and holds no synthetic MovieLens data")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # A run removes its own temp folder even when it fails; only a killed one leaves it.
    sweep(out_dir.parent, _temp_kind(out_dir))
    tmp = out_dir.with_name(temp_prefix(_temp_kind(out_dir)) + uuid.uuid4().hex[:8])
    tmp.mkdir()
    try:
        summary = _write_dataset(spec, tmp, chunk_users)
        text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
        (tmp / MANIFEST_NAME).write_text(text, encoding="utf-8")
        try:
            replace_folder(tmp, out_dir, f"{tmp.name}.old-")
        except OSError:
            if _read_manifest(out_dir, spec) is None:
                raise
            return {**summary, "reused": True}  # a concurrent run got there first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename
    return {**summary, "reused": False}


def _temp_kind(out_dir: Path) -> str:
    """Temp folders of ``out_dir`` are ``.<name>.synthetic-tmp-<writer>`` siblings (their
    ``.old`` asides too)."""
    return f"{out_dir.name}.synthetic-tmp"


def _read_manifest(folder: Path, spec: SyntheticSpec) -> dict[str, Any] | None:
    """The stored summary if ``folder`` holds the output of ``spec`` by this generator."""
    try:
        summary = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    current = summary.get("spec") == asdict(spec)
    current = current and summary.get("generator_version") == GENERATOR_VERSION
    return summary if current else None


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cinematch_assets.sources.synthetic --variant synthetic-1m --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m cinematch_assets.sources.synthetic", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--variant", help=f"{', '.join(SYNTHETIC_PRESETS)} or synthetic-<N>[k|m]")
    parser.add_argument("--users", type=int)
    parser.add_argument("--movies", type=int)
    parser.add_argument("--ratings", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--min-ratings-per-user", type=int)
    parser.add_argument("--duplicates", type=int)
    parser.add_argument("--chunk-users", type=int, default=BLOCK_USERS)
    args = parser.parse_args(argv)
    spec = _spec_from_args(parser, args)
    started = time.perf_counter()
    summary = generate_movielens(spec, args.out, chunk_users=args.chunk_users)
    elapsed = time.perf_counter() - started
    summary["elapsed_s"] = round(elapsed, 2)
    if not summary["reused"]:
        summary["ratings_per_s"] = round(summary["rows"]["ratings"] / elapsed)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def _spec_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> SyntheticSpec:
    """``--variant`` (with explicit flags overriding it), or ``--users/--movies/--ratings``."""
    explicit = {
        "n_users": args.users,
        "n_movies": args.movies,
        "n_ratings": args.ratings,
        "seed": args.seed,
        "min_ratings_per_user": args.min_ratings_per_user,
        "n_duplicates": args.duplicates,
    }
    explicit = {k: v for k, v in explicit.items() if v is not None}
    try:
        if args.variant:
            return SyntheticSpec.from_variant(args.variant, **explicit)
        if args.ratings is None:
            parser.error("give --variant or at least --ratings")
        return replace(scaled_spec(args.ratings), **explicit)
    except ValueError as exc:
        parser.error(str(exc))
    raise AssertionError("unreachable")  # parser.error exits


if __name__ == "__main__":
    sys.exit(main())

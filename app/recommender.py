"""Everything the app answers, without Streamlit, Spark or a JVM: it loads the serving
artifacts (`cinematch_assets.resources.serving_files` has the layout) and answers user
lookups, title search, new-user fold-in and "why". The Streamlit pages in `app.py` only
draw what this returns, so all of it is tested directly."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cinematch_assets.conventions import ARTICLES
from cinematch_assets.ml.foldin import (
    RatingTerms,
    implicit_gram,
    liked,
    reasons,
    solve_implicit,
)
from cinematch_assets.ml.scoring import position_of, top_n
from cinematch_assets.resources import serving_files as files

# A new user's list leans on popularity until they have rated a few movies: the personal
# score's weight is ratings / (ratings + BLEND_PRIOR), so 1 rating -> 1/3, 3 -> 3/5.
BLEND_PRIOR = 2.0
_LEADING_ARTICLE = re.compile(
    r"^(?:" + "|".join(re.escape(a.lower().rstrip("'")) for a in ARTICLES) + r")\s+"
)


class ArtifactsMissing(RuntimeError):
    """The serving artifacts have not been materialized (yet) under this home."""


def search_key(text: str) -> str:
    """Lower case, no accents, punctuation as spaces, no leading article: "The Matrix",
    "matrix" and "Matrix, The" all give "matrix"; "Amélie" gives "amelie"."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    words = re.sub(r"[\W_]+", " ", plain).strip()
    return _LEADING_ARTICLE.sub("", words)


def parse_user_id(text: str | None) -> tuple[int | None, str | None]:
    """(user id, None) or (None, what is wrong with `text`) for a typed user id."""
    text = (text or "").strip()
    if not text:
        return None, "Enter a user id to see their recommendations."
    if not re.fullmatch(r"\d{1,10}", text):
        return None, f"“{text}” is not a user id: ids are whole numbers, such as 510."
    return int(text), None


# ------------------------------------------------------------------------------ catalog


@dataclass(frozen=True)
class Catalog:
    """Every movie, indexed by movieId, with a search key and the genre list."""

    movies: pd.DataFrame

    @classmethod
    def load(cls, path: Path) -> Catalog:
        movies = pq.read_table(path).to_pandas().set_index("movieId", drop=False)
        movies.index.name = None  # movieId is a column too: an unnamed index is unambiguous
        movies["genres"] = movies["genres"].map(lambda g: [] if g is None else list(g))
        movies["tags"] = movies["tags"].map(lambda t: [] if t is None else list(t))
        movies["search_key"] = [
            f"{search_key(display)} | {search_key(title)}"
            for display, title in zip(movies["display_title"], movies["title"], strict=True)
        ]
        return cls(movies)

    @property
    def genres(self) -> list[str]:
        return sorted({g for genres in self.movies["genres"] for g in genres})

    def rows(self, movie_ids: list[int]) -> list[dict[str, Any]]:
        """Catalog rows of the ids that are in it, in the given order."""
        known = [m for m in movie_ids if m in self.movies.index]
        return self.movies.loc[known].to_dict("records")

    def search(self, query: str = "", genres: list[str] | None = None, n: int = 10) -> pd.DataFrame:
        """Movies whose title contains `query` (case, accents and a leading article
        ignored) and that have any of `genres`, best Bayesian average first."""
        found = self.movies
        key = search_key(query)
        if key:
            found = found[found["search_key"].str.contains(key, regex=False)]
        if genres:
            wanted = set(genres)
            found = found[found["genres"].map(lambda g: bool(wanted.intersection(g)))]
        return found.sort_values(
            ["bayesian_avg", "rating_count", "movieId"], ascending=[False, False, True]
        ).head(n)


# ---------------------------------------------------------------------- known users


@dataclass(frozen=True)
class Recommendations:
    """The precomputed lists: a manifest naming the version and its JSON shards."""

    home: Path
    manifest: dict[str, Any]

    @classmethod
    def load(cls, home: Path) -> Recommendations:
        path = files.manifest_path(home)
        if not path.exists():
            raise ArtifactsMissing(f"no recommendations at {path}")
        return cls(home, json.loads(path.read_text()))

    @property
    def users(self) -> int:
        return int(self.manifest["users"])

    def lookup(self, user_id: int) -> list[dict[str, Any]] | None:
        """The user's ordered list, or None when the models do not know the user."""
        shard = files.shard_path(self.home, self.manifest, user_id)
        return load_shard(str(shard), shard.stat().st_mtime_ns).get(str(user_id))


@lru_cache(maxsize=64)
def load_shard(path: str, mtime_ns: int) -> dict[str, list[dict[str, Any]]]:
    """A parsed shard; the modification time in the key drops a replaced file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_profiles(path: Path) -> pd.DataFrame:
    """user_profiles.parquet indexed by userId."""
    return pq.read_table(path).to_pandas().set_index("userId")


def user_favourites(profiles: pd.DataFrame, user_id: int) -> pd.DataFrame:
    if user_id not in profiles.index:
        return profiles.iloc[0:0]
    return profiles.loc[[user_id]].sort_values("rank")


# ------------------------------------------------------------------------- new users


@dataclass(frozen=True)
class FoldIn:
    """Both models' item factors (aligned on `movie_ids`), ready to place a new user."""

    movie_ids: np.ndarray
    ranking_items: np.ndarray
    gram: np.ndarray
    ranking_reg_param: float
    ranking_alpha: float
    rating: RatingTerms
    popularity: np.ndarray  # z-scored log rating count, aligned on movie_ids
    genres: dict[str, np.ndarray]  # genre -> which of movie_ids have it

    @classmethod
    def load(cls, path: Path, catalog: Catalog) -> FoldIn:
        with np.load(path) as npz:
            ids = npz["movie_ids"].astype(np.int64)
            ranking_items = npz["ranking_items"].astype(np.float64)
            rating = RatingTerms(
                global_mean=float(npz["rating_global_mean"]),
                item_bias=npz["rating_item_bias"].astype(np.float64),
                item_factors=npz["rating_items"].astype(np.float64),
                reg_param=float(npz["rating_reg_param"]),
                variant=str(npz["rating_variant"]),
                bias_damping=float(npz["rating_bias_damping"]),
                nonnegative=bool(npz["rating_nonnegative"]),
            )
            reg, alpha = float(npz["ranking_reg_param"]), float(npz["ranking_alpha"])
        counts = catalog.movies["rating_count"].reindex(ids).fillna(0).to_numpy(np.float64)
        movie_genres = [
            g if isinstance(g, list) else [] for g in catalog.movies["genres"].reindex(ids)
        ]
        genres = {
            genre: np.array([genre in g for g in movie_genres], dtype=bool)
            for genre in catalog.genres
        }
        return cls(
            ids, ranking_items, implicit_gram(ranking_items), reg, alpha, rating,
            _zscore(np.log1p(counts)), genres,
        )  # fmt: skip

    def positions(self, movie_ids: list[int]) -> np.ndarray:
        """Positions of the ids the models know (-1 for the others)."""
        return position_of(self.movie_ids, movie_ids)

    def ranking_factor(self, positions: np.ndarray) -> np.ndarray:
        """The ranking model's factor for a user who rated the movies at `positions`: each
        a positive preference of confidence 1 + alpha (a new user's ratings are recent,
        so their decay weight is 1)."""
        return solve_implicit(
            self.ranking_items[positions],
            np.ones(len(positions)),
            self.gram,
            self.ranking_reg_param,
            self.ranking_alpha,
        )

    def recommend(
        self,
        ratings: dict[int, float],
        *,
        genres: list[str] | None = None,
        n: int = 10,
    ) -> list[dict[str, Any]]:
        """Top-n for a brand-new user from their `ratings` (movieId -> stars) and/or
        favourite `genres` (only movies of those): ranking-model fold-in blended toward
        popularity while there are few ratings, never a movie they rated; stars from the
        rating model's fold-in; the reason, as for known users."""
        known = {m: s for m, s in ratings.items() if self.positions([m])[0] >= 0}
        positions = self.positions(list(known))
        stars = np.asarray(list(known.values()), dtype=np.float64)
        weight = len(positions) / (len(positions) + BLEND_PRIOR)
        score = (1.0 - weight) * self.popularity
        if len(positions):
            score = score + weight * _zscore(self.ranking_items @ self.ranking_factor(positions))
        excluded = positions
        if genres:
            wanted = np.zeros(len(self.movie_ids), dtype=bool)
            for genre in genres:
                wanted |= self.genres.get(genre, wanted)
            excluded = np.union1d(positions, np.flatnonzero(~wanted))
        # top_n of one "user" with factor [1] against the scores as 1-d item factors.
        best, best_scores = top_n(np.ones((1, 1)), score[:, None], n, exclude=[excluded])
        chosen = best[0][best[0] >= 0]
        bias, factor = self.rating.fold_in(positions, stars)
        predicted = self.rating.predict(bias, factor, chosen)
        why = reasons(self.ranking_items, chosen, liked(positions, stars))
        return [
            {
                "movieId": int(self.movie_ids[p]),
                "pred_rating": round(float(s), 2),
                "score": round(float(v), 4),
                "reason": int(self.movie_ids[r]) if r >= 0 else None,
            }
            for p, s, v, r in zip(chosen, predicted, best_scores[0], why, strict=False)
        ]


def _zscore(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)

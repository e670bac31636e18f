"""The movie catalog the app and the API show: every movie with its genres and search
keys (`movie_catalog.parquet`), title search and genre filters."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cinematch_assets.conventions import ARTICLES
from cinematch_assets.serving.loading import LOADED, reading
from cinematch_assets.storage import serving_files as files

_LEADING_ARTICLE = re.compile(
    r"^(?:" + "|".join(re.escape(a.lower().rstrip("'")) for a in ARTICLES) + r")\s+"
)


def search_key(text: str) -> str:
    """Lower case, no accents, punctuation as spaces, no leading article: "The Matrix",
    "matrix" and "Matrix, The" all give "matrix"; "Amélie" gives "amelie"."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    words = re.sub(r"[\W_]+", " ", plain).strip()
    return _LEADING_ARTICLE.sub("", words)


CATALOG_COLUMNS = {
    "movieId", "display_title", "title", "release_year", "genres", "tmdbId", "tags",
    "rating_count", "avg_rating", "bayesian_avg",
}  # fmt: skip


@dataclass(frozen=True)
class Catalog:
    """Every movie, indexed by movieId, with its genre list and search keys."""

    movies: pd.DataFrame

    @classmethod
    def load(cls, path: Path) -> Catalog:
        table = pq.read_table(path)
        if missing := CATALOG_COLUMNS - set(table.column_names):
            raise ValueError(f"no column {', '.join(sorted(missing))}")
        movies = table.to_pandas().set_index("movieId", drop=False)
        movies.index.name = None  # movieId is a column too: an unnamed index is unambiguous
        movies["genres"] = movies["genres"].map(lambda g: [] if g is None else list(g))
        movies["tags"] = movies["tags"].map(lambda t: [] if t is None else list(t))
        return cls(movies)

    @cached_property
    def best_first(self) -> pd.DataFrame:
        """The catalog in search order (best Bayesian average first), sorted once."""
        return self.movies.sort_values(
            ["bayesian_avg", "rating_count", "movieId"], ascending=[False, False, True]
        )

    @cached_property
    def _search_keys(self) -> list[str]:
        """Each movie's display title and title as one search key, in search order: made
        at the first search, not at start-up (half a second at 86k movies)."""
        movies = self.best_first
        return [
            f"{search_key(display)} | {search_key(title)}"
            for display, title in zip(movies["display_title"], movies["title"], strict=True)
        ]

    @cached_property
    def _genre_masks(self) -> dict[str, np.ndarray]:
        """Per genre, which movies (in search order) have it."""
        genres = self.best_first["genres"]
        return {genre: np.array([genre in g for g in genres], bool) for genre in self.genres}

    @cached_property
    def genres(self) -> list[str]:
        """Every genre of the catalog, made once (a scan of every movie's genres)."""
        return sorted({g for genres in self.movies["genres"] for g in genres})

    @cached_property
    def _records(self) -> dict[int, dict[str, Any]]:
        """Each movie's row as a dict, made once: a lookup then costs no pandas call."""
        return {int(row["movieId"]): row for row in self.movies.to_dict("records")}

    def make_lookups(self) -> None:
        """Make now what is otherwise made at its first use (a server's start)."""
        self._records, self._search_keys, self._genre_masks  # noqa: B018 (cached properties)

    def __contains__(self, movie_id: object) -> bool:
        return movie_id in self._records

    def label(self, movie_id: int) -> str:
        """A movie as a picker names it: "Hamlet (1948)", so remakes tell apart."""
        row = self._records.get(int(movie_id))
        if row is None:  # dropped by a newer catalog
            return f"Movie {int(movie_id)}"
        year = row.get("release_year")
        known = year is not None and not pd.isna(year)
        return f"{row['display_title']} ({int(year)})" if known else str(row["display_title"])

    def rows(self, movie_ids: list[int]) -> list[dict[str, Any]]:
        """Catalog rows of the ids that are in it, in the given order (shared: read only)."""
        records = self._records
        return [records[int(m)] for m in movie_ids if int(m) in records]

    def matches(self, query: str = "", genres: Sequence[str] | None = None) -> np.ndarray:
        """Positions in `best_first` of the movies whose title contains `query` (case,
        accents and a leading article ignored) and that have any of `genres`."""
        found = np.ones(len(self.movies), dtype=bool)
        if key := search_key(query):
            found = np.fromiter((key in k for k in self._search_keys), bool, len(found))
        if genres:
            found &= np.logical_or.reduce([self._genre_masks.get(g, False) for g in genres])
        return np.flatnonzero(found)

    def search(self, query: str = "", genres: list[str] | None = None, n: int = 10) -> pd.DataFrame:
        """The first n `matches`, best Bayesian average first."""
        return self.best_first.iloc[self.matches(query, genres)[:n]]


def with_genres(catalog: Catalog, items: list[dict], genres: Sequence[str]) -> list[dict]:
    """The entries whose movie has any of `genres` (all of them when none is given)."""
    if not genres:
        return items
    wanted = set(genres)
    rows = {m["movieId"]: m for m in catalog.rows([int(i["movieId"]) for i in items])}
    return [
        i for i in items if wanted.intersection(rows.get(int(i["movieId"]), {}).get("genres", []))
    ]


def open_catalog(home: Path) -> Catalog:
    path = files.catalog_path(home)
    with reading("The movie catalog", path):
        return LOADED.get([path], lambda: Catalog.load(path))

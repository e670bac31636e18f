"""Titles as content: what makes a sequel findable before anyone rates it. "Toy Story 4"
shares "toy", "story" and "toy story" with the films before it; "The Lego Batman Movie"
shares "lego" with "The Lego Movie".

A title's phrases are its words and adjacent word pairs, lower-cased, with the release
year (already out of Silver's `title_clean`), articles and sequel numbers ("2", "III")
removed: the number tells a sequel from its franchise, not what the franchise is. Each
phrase weighs its inverse document frequency, log(movies / movies with the phrase), so a
rare shared phrase counts and a common word barely does; a title's vector has unit
length over all its phrases, so a title that is mostly its own words stays far from
every other. Only
phrases of two movies or more are kept as columns (a phrase of one movie links nothing).

Two titles' cosine is their similarity; `title_links` keeps, for each new movie, the known
movies whose titles start with the same word, are at least `min_similarity` alike and
whose films share most of their genres: a sequel's earlier films, a remake's original. A
franchise leads its titles ("Shrek Forever After", "The Lego Batman Movie"); a word
shared further in is a coincidence ("Brothers" and "The Blues Brothers" are 0.52 alike,
"Shrek Forever After" and "Shrek" 0.45).
No Spark.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import sparse

from cinematch_assets.conventions import ARTICLES
from cinematch_assets.ml.arrays import position_of

# Articles and the two joiners whose spelling varies ("Pride and Prejudice", "Pride &
# Prejudice"): words no title is known by.
STOP_WORDS = frozenset({a.lower().rstrip("'") for a in ARTICLES} | {"and", "of", "&"})
_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"\d+|[ivx]+")  # 2, 3, 10; ii, iii, iv, vi (a lone "v" too)


# What MovieLens adds after a title in parentheses: "Shrek Forever After (a.k.a. Shrek:
# The Final Chapter)", "Amélie (Fabuleux destin d'Amélie Poulain, Le)".
_ALSO_KNOWN_AS = re.compile(r"\s*\([^()]*\)\s*$")


def main_title(title: str | None) -> str:
    """A clean title without the other titles MovieLens adds in parentheses after it (a
    title that is nothing else is kept whole)."""
    title = title or ""
    main = title
    while (shorter := _ALSO_KNOWN_AS.sub("", main)) != main:
        main = shorter
    return main if main.strip() else title


def _words(title: str | None) -> list[str]:
    """A clean title's words, lower-cased, articles and numbers removed, from its main
    title only: the other titles would dilute what a sequel shares. MovieLens puts an
    article last ("Lego Movie, The"): it is removed wherever it stands."""
    return [
        w
        for w in _WORD.findall(main_title(title).lower())
        if w not in STOP_WORDS and not _NUMBER.fullmatch(w)
    ]


def title_phrases(title: str | None) -> set[str]:
    """The words and adjacent word pairs of a clean title, articles and numbers removed."""
    words = _words(title)
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}


@dataclass(frozen=True)
class TitleVectors:
    """One unit-length TF-IDF row per movie (`movie_ids`, ascending; a row of zeros for a
    title that shares no phrase), one column per phrase of two movies or more, each
    title's first word (a code; -1: none) and, when given, each movie's genres (a 0/1
    row per movie)."""

    movie_ids: np.ndarray
    matrix: sparse.csr_matrix
    phrases: list[str]
    leads: np.ndarray
    genres: sparse.csr_matrix | None = None

    def _pick(self, movie_ids: np.ndarray) -> sparse.csr_matrix:
        at = position_of(self.movie_ids, movie_ids)
        found = at >= 0
        return sparse.csr_matrix(
            (np.ones(found.sum(), np.float32), (np.flatnonzero(found), at[found])),
            shape=(len(movie_ids), len(self.movie_ids)),
        )

    def rows(self, movie_ids: np.ndarray) -> sparse.csr_matrix:
        """The rows of `movie_ids` (zeros for a movie without a title here)."""
        return (self._pick(movie_ids) @ self.matrix).tocsr()

    def genre_rows(self, movie_ids: np.ndarray) -> sparse.csr_matrix:
        """The genres of `movie_ids` (zeros for a movie without genres here)."""
        return (self._pick(movie_ids) @ self.genres).tocsr()

    def lead_of(self, movie_ids: np.ndarray) -> np.ndarray:
        """The first words' codes of `movie_ids` (-1: none, or no such movie)."""
        at = position_of(self.movie_ids, movie_ids)
        return np.where(at >= 0, self.leads[at.clip(0)], -1)


def title_vectors(
    movie_ids: Sequence[int] | np.ndarray,
    titles: Iterable[str | None],
    genres: Iterable[Sequence[str] | None] | None = None,
) -> TitleVectors:
    """TF-IDF title vectors of the movies (ids, titles and `genres` aligned; ids need not
    be sorted)."""
    ids = np.asarray(movie_ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    words = [_words(t) for t in titles]
    words = [words[i] for i in order]
    phrases = [title_phrases(" ".join(w)) for w in words]
    codes: dict[str, int] = {}
    leads = np.array([codes.setdefault(w[0], len(codes)) if w else -1 for w in words], np.int64)
    ids = ids[order]
    counts = Counter(p for movie in phrases for p in movie)
    idf = {p: float(np.log(len(ids) / c)) for p, c in counts.items()}
    kept = sorted(p for p, c in counts.items() if c >= 2)
    column = {p: i for i, p in enumerate(kept)}
    rows, cols, values = [], [], []
    for row, movie in enumerate(phrases):
        norm = np.sqrt(sum(idf[p] ** 2 for p in movie))
        for p in movie:
            if p in column and norm > 0:
                rows.append(row)
                cols.append(column[p])
                values.append(idf[p] / norm)
    matrix = sparse.csr_matrix(
        (np.asarray(values, np.float32), (rows, cols)), shape=(len(ids), len(kept))
    )
    return TitleVectors(
        ids, matrix, kept, leads, None if genres is None else _genres(genres, order)
    )


def _genres(genres: Iterable[Sequence[str] | None], order: np.ndarray) -> sparse.csr_matrix:
    """Each movie's genres as a 0/1 row, in `order`."""
    listed = [list(g) if g is not None else [] for g in genres]
    listed = [listed[i] for i in order]
    names = sorted({g for movie in listed for g in movie})
    code = {g: i for i, g in enumerate(names)}
    rows = np.repeat(np.arange(len(listed)), [len(movie) for movie in listed])
    cols = np.array([code[g] for movie in listed for g in movie], np.int64)
    return sparse.csr_matrix(
        (np.ones(len(cols), np.float32), (rows, cols)), shape=(len(listed), len(names))
    )


@dataclass(frozen=True)
class TitleLinks:
    """For each of `rows` movies (e.g. the new ones), the `columns` movies (the known ones)
    whose titles are alike: a sparse rows x columns matrix of cosines, each at least the
    threshold it was made with."""

    matrix: sparse.csr_matrix

    @cached_property
    def by_known(self) -> sparse.csc_matrix:
        """The same similarities by column: what a user's liked movies link to."""
        return self.matrix.tocsc()


def title_links(
    titles: TitleVectors,
    rows: np.ndarray,
    columns: np.ndarray,
    min_similarity: float,
    min_shared_genres: float = 0.0,
) -> TitleLinks:
    """The title similarities of `rows` movies to `columns` movies whose titles start
    with the same word and whose films share at least `min_shared_genres` of the fewer
    genres of the two (when the titles' genres are known and both films have some),
    those below `min_similarity` dropped. Both ways in time: a franchise's fans like its
    earlier films as they like its later ones. The genres tell a sequel from a namesake:
    "Game Night" (action, comedy, crime) does not follow "The Game" (drama, mystery,
    thriller); "Shrek Forever After" and "Shrek 2" share four of their six."""
    similarity = (titles.rows(rows) @ titles.rows(columns).T).tocoo()
    same_lead = titles.lead_of(rows)[similarity.row] == titles.lead_of(columns)[similarity.col]
    keep = (similarity.data >= min_similarity) & same_lead
    if titles.genres is not None and min_shared_genres > 0:
        pairs = np.flatnonzero(keep)
        mine = titles.genre_rows(rows)[similarity.row[pairs]]
        theirs = titles.genre_rows(columns)[similarity.col[pairs]]
        shared = mine.multiply(theirs).sum(axis=1).A1
        fewer = np.minimum(mine.sum(axis=1).A1, theirs.sum(axis=1).A1)
        keep[pairs[(fewer > 0) & (shared < min_shared_genres * fewer)]] = False
    kept = sparse.csr_matrix(
        (similarity.data[keep].astype(np.float32), (similarity.row[keep], similarity.col[keep])),
        shape=similarity.shape,
    )
    return TitleLinks(kept)

"""Everything the app answers, without Streamlit, Spark or a JVM: it loads the serving
artifacts (`cinematch_assets.storage.serving_files` has the layout) and answers user
lookups, title search, new-user fold-in and "why". The Streamlit pages in `app.py` only
draw what this returns, so all of it is tested directly.

A serving file that is missing or unreadable raises `ArtifactProblem`, whose message is
one plain sentence for the page: what is wrong and what rebuilds it (the details go to
the log). Loaded files are kept for their current version only (`LatestFiles`).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cinematch_assets.conventions import ARTICLES, SHOWN
from cinematch_assets.ml.arrays import position_of, unit_rows
from cinematch_assets.ml.lists.build import ModelItems, Ranker, UserBlock, build_lists
from cinematch_assets.ml.lists.top_n import ScoreRows
from cinematch_assets.ml.models.foldin import implicit_gram, preference_values, solve_implicit
from cinematch_assets.storage import model_factors
from cinematch_assets.storage import serving_files as files
from cinematch_assets.storage.app_ratings import APP_USERS_FROM, INT32_MAX

log = logging.getLogger(__name__)
T = TypeVar("T")

# A new user's list leans on popularity until they have rated a few movies: the personal
# score's weight is ratings / (ratings + BLEND_PRIOR), so 1 rating -> 1/3, 3 -> 3/5.
BLEND_PRIOR = 2.0
# The stars a "Not interested" counts as: a dislike, which counts against similar movies.
NOT_INTERESTED = 1.0
_LEADING_ARTICLE = re.compile(
    r"^(?:" + "|".join(re.escape(a.lower().rstrip("'")) for a in ARTICLES) + r")\s+"
)


# Markdown (and Streamlit's extensions: LaTeX between dollars, :colour[...] directives)
# gives these characters a meaning; a backslash makes each one literal.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")
# Where GitHub-flavoured Markdown's bare-link finder starts: before "://", after "www",
# before "@".
WORD_JOINER = "\u2060"
_BARE_LINK = re.compile(r"(?i)(?<=[a-z])(?=\\:)|(?<=\bwww)(?=\\\.)|(?=@)")


class ArtifactProblem(RuntimeError):
    """A serving file is missing or unreadable; the message says which one and what
    rebuilds it, in words for the page."""


def plain(text: object) -> str:
    """`text` for a widget that renders Markdown, shown as written: a title such as
    `M*A*S*H` or `$1,000,000 Duck`, or a crafted `[link](https://...)`, stays text.
    Streamlit also turns bare addresses (https://..., www..., a@b.c) into links after
    parsing, which no escape prevents: an invisible word joiner breaks each one."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")
    return _BARE_LINK.sub(WORD_JOINER, escaped)


def community_line(average: float | None, count: int) -> str:
    """What the community thinks of a movie, in words: "Community 3.91 (232 ratings)",
    "Community 4.00 (1 rating)", or "Not rated yet"."""
    if not count:
        return "Not rated yet"
    return f"Community {average:.2f} ({count:,} rating{'' if count == 1 else 's'})"


@contextmanager
def reading(what: str, path: Path) -> Iterator[None]:
    """Any failure to read `path` (`what` it holds) as an ArtifactProblem that names the
    file and the asset that writes it; the full error goes to the log."""
    try:
        yield
    except ArtifactProblem:
        raise
    except Exception as exc:  # a damaged file can fail in any library's own way
        log.warning("cannot read %s", path, exc_info=True)
        state = "is missing" if isinstance(exc, FileNotFoundError) else "cannot be read"
        raise ArtifactProblem(
            f"{what} {state}: `{path}`. Rebuild it with `make materialize` (or materialize "
            f"`{files.written_by(path)}` in Dagster), then reload this page."
        ) from exc


class LatestFiles:
    """What was loaded from some files, kept for their current version only: loaded again
    when a file's modification time or size changes, and the old copy dropped, so memory
    stays bounded however often the pipeline re-materializes. Safe across sessions."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, ...], tuple[tuple[int, ...], Any]] = {}
        self._lock = threading.Lock()

    def get(self, paths: Sequence[Path], load: Callable[[], T]) -> T:
        key = tuple(str(p) for p in paths)
        stamp = tuple(n for p in paths for n in _stamp(p))
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        value = load()
        with self._lock:
            self._entries[key] = (stamp, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)


def _stamp(path: Path) -> tuple[int, int]:
    """What changes when `path` is replaced; a missing file has a stamp too (loading it
    is what fails, or finds an optional file absent)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return 0, -1
    return stat.st_mtime_ns, stat.st_size


LOADED = LatestFiles()


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
    # Not echoed: the text may come from a crafted link (?user=...).
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None, "That is not a user id: ids are whole numbers, such as 510."
    if text.startswith("-") or not text.strip("+0"):
        return None, "That is not a user id: ids start at 1."
    if len(text.lstrip("+0")) > len(str(INT32_MAX)) or int(text) > INT32_MAX:
        return None, f"That is not a user id: ids go up to {INT32_MAX:,}."
    return int(text), None


class SaveLimit:
    """At most `saves` saves in any `seconds`: a session's bound on writing ratings."""

    def __init__(self, saves: int = 30, seconds: float = 60.0) -> None:
        self.saves, self.seconds = saves, seconds
        self._times: list[float] = []

    def allow(self, now: float | None = None) -> bool:
        """Count a save at `now` (monotonic seconds) if the bound allows it."""
        now = time.monotonic() if now is None else now
        self._times = [t for t in self._times if now - t < self.seconds]
        if len(self._times) >= self.saves:
            return False
        self._times.append(now)
        return True


# ------------------------------------------------------------------------------ catalog


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


# ---------------------------------------------------------------------- known users


@dataclass(frozen=True)
class Recommendations:
    """The precomputed lists: a manifest naming the version and its JSON shards."""

    home: Path
    manifest: dict[str, Any]

    @classmethod
    def load(cls, home: Path) -> Recommendations:
        path = files.manifest_path(home)
        with reading("The list of every user's recommendations", path):
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if not (
                isinstance(manifest, dict)
                and isinstance(manifest.get("version"), str)
                and isinstance(manifest.get("shards"), int)
                and manifest["shards"] > 0
                and isinstance(manifest.get("users"), int)
            ):
                raise ValueError(f"not a manifest: {str(manifest)[:200]}")
        return cls(home, manifest)

    @property
    def users(self) -> int:
        return int(self.manifest["users"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def lookup(self, user_id: int) -> list[dict[str, Any]] | None:
        """The user's ordered list, or None when the models do not know the user."""
        return self.find(user_id)[1]

    def find(self, user_id: int) -> tuple[str, list[dict[str, Any]] | None]:
        """(the version read, the user's list or None). A version replaced since the
        manifest was read is followed to the new one, which the answer then names."""
        return self._read(user_id, "recommendations", files.read_user_list)

    def ratings(self, user_id: int) -> dict[int, float] | None:
        """The user's ratings (movieId -> stars) that their served list leaves out: all
        of them, what a re-ranked list starts from. None when the user is not served."""
        return self._read(user_id, "ratings", files.read_user_ratings)[1]

    def _read(self, user_id: int, what: str, read: Callable[[Path, np.ndarray, int], T]):
        shard = files.shard_path(self.home, self.manifest, user_id)
        if not shard.exists():
            newer = Recommendations.load(self.home)
            if newer.version != self.version:
                return newer._read(user_id, what, read)
        with reading(f"The {what} of user {user_id}", shard):
            index_file = files.index_path(shard)
            index = load_shard_index(str(index_file), *_stamp(index_file))
            return self.version, read(shard, index, user_id)


@lru_cache(maxsize=1024)
def load_shard_index(path: str, mtime_ns: int, size: int) -> np.ndarray:
    """A shard's index (48 KB a shard); the modification time and size in the key drop a
    replaced file."""
    return files.read_shard_index(Path(path))


def load_profiles(path: Path, app_path: Path | None = None) -> pd.DataFrame:
    """user_profiles.parquet indexed by userId; once `app_path` exists, the app's
    visitors' profiles come from it (the ratings they saved, as they stand now)."""
    columns = ["userId", "rank", "movieId", "rating"]
    profiles = pq.read_table(path, columns=columns).to_pandas()
    if app_path is not None and app_path.exists():
        visitors = pq.read_table(app_path, columns=columns).to_pandas()
        kept = profiles[profiles["userId"] < APP_USERS_FROM]
        profiles = pd.concat([kept, visitors.astype(kept.dtypes)], ignore_index=True)
    return profiles.set_index("userId")


def user_favourites(profiles: pd.DataFrame, user_id: int) -> pd.DataFrame:
    if user_id not in profiles.index:
        return profiles.iloc[0:0]
    return profiles.loc[[user_id]].sort_values("rank")


# ------------------------------------------------------------------------- new users


@dataclass(frozen=True, eq=False)
class OnlyMovies:
    """A ranker that leaves out every movie but the `allowed` ones (favourite genres)."""

    ranker: Ranker
    allowed: np.ndarray

    @property
    def movie_ids(self) -> np.ndarray:
        return self.ranker.movie_ids

    @property
    def rank(self) -> int:
        return self.ranker.rank

    def scores(self, block: UserBlock) -> ScoreRows:
        base = self.ranker.scores(block)

        def score(start: int, stop: int, out: np.ndarray) -> None:
            base(start, stop, out)
            out[:, ~self.allowed] = -np.inf

        return score

    def explain(self, block: UserBlock, positions: np.ndarray) -> np.ndarray:
        return self.ranker.explain(block, positions)


def with_discovery(
    items: ModelItems, entries: list[dict[str, Any]], discovery: float, n: int
) -> list[dict[str, Any]]:
    """A served list (best first, with scores) as the served order ranks it with
    `discovery` more popularity penalty: the score is linear in the penalty, so each entry
    moves by -discovery x its movie's popularity; the best n."""
    if not discovery:
        return entries[:n]
    # New movies keep their places: their scores are on another scale, and no
    # popularity to penalize.
    known = [e for e in entries if not e.get("new")]
    at = position_of(items.movie_ids, [int(e["movieId"]) for e in known])
    popularity = np.where(at >= 0, items.popularity[at.clip(0)], 0.0)
    moved = iter(sorted(
        ({**entry, "score": round(float(entry["score"]) - discovery * float(pop), 4)}
         for entry, pop in zip(known, popularity, strict=True)),
        key=lambda e: -e["score"],
    ))  # fmt: skip
    return [entry if entry.get("new") else next(moved) for entry in entries][:n]


def with_genres(catalog: Catalog, items: list[dict], genres: Sequence[str]) -> list[dict]:
    """The entries whose movie has any of `genres` (all of them when none is given)."""
    if not genres:
        return items
    wanted = set(genres)
    rows = {m["movieId"]: m for m in catalog.rows([int(i["movieId"]) for i in items])}
    return [
        i for i in items if wanted.intersection(rows.get(int(i["movieId"]), {}).get("genres", []))
    ]


def known_user_list(
    recommendations: Recommendations,
    catalog: Catalog,
    items: ModelItems | None,
    user_id: int,
    *,
    n: int = SHOWN,
    discovery: float = 0.0,
    genres: Sequence[str] = (),
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]] | None:
    """A known user's list as the app shows it, their "New for you" row, and the
    published version both come from: the served list re-ranked with `discovery` more
    popularity penalty (needs the models' movie side, `items`), only movies of `genres`,
    the best n; the row's movies of `genres`. None when the models do not know the user."""
    version, entries = recommendations.find(user_id)
    if entries is None:
        return None
    top, row = files.split_rows(entries)
    if items is not None:
        top = with_discovery(items, top, discovery, len(top))
    return version, with_genres(catalog, top, genres)[:n], with_genres(catalog, row, genres)


@dataclass(frozen=True)
class FoldIn:
    """Every model's movie side (`ModelItems`, with the served order), ready to place a
    new user."""

    items: ModelItems
    gram: np.ndarray
    genres: dict[str, np.ndarray]  # genre -> which of movie_ids have it
    new_genres: dict[str, np.ndarray]  # genre -> which of the new movies have it

    @classmethod
    def load(cls, path: Path, catalog: Catalog) -> FoldIn:
        items = model_factors.read_model_factors(path)

        def masks(ids: np.ndarray) -> dict[str, np.ndarray]:
            movie_genres = [
                g if isinstance(g, list) else [] for g in catalog.movies["genres"].reindex(ids)
            ]
            return {
                genre: np.array([genre in g for g in movie_genres], dtype=bool)
                for genre in catalog.genres
            }

        new_ids = items.new.movie_ids if items.new is not None else np.zeros(0, np.int64)
        return cls(items, implicit_gram(items.ranking_items), masks(items.movie_ids),
                   masks(new_ids))  # fmt: skip

    @property
    def movie_ids(self) -> np.ndarray:
        return self.items.movie_ids

    @cached_property
    def _unit_ranking_items(self) -> np.ndarray:
        """The ranking model's movie factors at unit length, made once per loaded file."""
        return unit_rows(self.items.ranking_items.astype(np.float64))

    def similar(self, movie_id: int, n: int) -> list[dict[str, Any]]:
        """The n movies closest to `movie_id` in the served order's item space: EASE's
        weights from it when the order ranks with EASE (and EASE kept it), else the cosine
        of the ranking model's factors. Empty when the models do not know the movie."""
        items = self.items
        at = int(self.positions([movie_id])[0])
        if at < 0:
            return []
        ease = items.ease if items.policy.ranker == "ease" else None
        row = np.flatnonzero(ease.kept == at) if ease is not None else np.zeros(0, np.int64)
        if len(row):
            scores = np.full(len(items.movie_ids), -np.inf)
            scores[ease.kept] = ease.weights[row[0]]
        else:
            unit = self._unit_ranking_items
            scores = unit @ unit[at]
        scores[at] = -np.inf
        best = np.argsort(-scores, kind="stable")[:n]
        return [
            {"movieId": int(items.movie_ids[i]), "score": round(float(scores[i]), 4)}
            for i in best
            if np.isfinite(scores[i])
        ]

    def positions(self, movie_ids: list[int]) -> np.ndarray:
        """Positions of the ids the models know (-1 for the others)."""
        return position_of(self.movie_ids, movie_ids)

    @property
    def _new_ids(self) -> np.ndarray:
        return self.items.new.movie_ids if self.items.new is not None else np.zeros(0, np.int64)

    def can_take(self, movie_ids: list[int]) -> np.ndarray:
        """Which of `movie_ids` a rating can count for: the movies the models know, and
        the new ones they place from their content."""
        return (self.positions(movie_ids) >= 0) | (position_of(self._new_ids, movie_ids) >= 0)

    def placed_by_content(self, movie_id: int) -> bool:
        """A movie the models place from its content (too few ratings to know it)."""
        return bool(position_of(self._new_ids, [movie_id])[0] >= 0)

    def ranking_factor(self, positions: np.ndarray, stars: np.ndarray) -> np.ndarray:
        """The ranking model's factor for a user who gave `stars` to the movies at
        `positions` (see `_ranking_factor`)."""
        return self._ranking_factor(self.items.ranking_items[positions], stars)

    def _ranking_factor(self, movies: np.ndarray, stars: np.ndarray) -> np.ndarray:
        """The ranking model's factor for a user who gave `stars` to movies of these
        factors: a liked-enough movie is a preference, a disliked one counts against
        (`preference_values`); confidence 1 + alpha (a new user's ratings are recent, so
        their decay weight is 1)."""
        return solve_implicit(
            movies,
            preference_values(stars),
            self.gram,
            self.items.ranking_reg_param,
            self.items.ranking_alpha,
        )

    def _block(self, ratings: dict[int, float]) -> tuple[UserBlock, int]:
        """A brand-new user as a block of one, folded into the models from `ratings`
        (movieId -> stars), and how many of them say "more like this". A rating of a
        movie the models place from its content counts through its placed terms; the
        block's rated movies (left out of the list, the reasons' source) are the known
        ones."""
        ids = list(ratings)
        given = np.asarray(list(ratings.values()), dtype=np.float64)
        at = self.positions(ids)
        known = at >= 0
        positions, stars = at[known], given[known]
        items, rating = self.items, self.items.rating
        ranking_rows, bias_rows, factor_rows = (
            items.ranking_items[positions], rating.item_bias[positions],
            rating.item_factors[positions],
        )  # fmt: skip
        if (new := items.new) is not None:
            placed = position_of(new.movie_ids, ids)
            used = ~known & (placed >= 0)
            rows = placed[used]
            ranking_rows = np.concatenate([ranking_rows, new.ranking_items[rows]])
            bias_rows = np.concatenate([bias_rows, new.rating_bias[rows]])
            factor_rows = np.concatenate([factor_rows, new.rating_items[rows]])
            given = np.concatenate([stars, given[used]])
        else:
            given = stars
        # Only movies the user wanted more of make the list personal.
        wanted = int((preference_values(given) > 0).sum())
        rank = items.ranking_items.shape[1]
        factor = self._ranking_factor(ranking_rows, given) if wanted else np.zeros(rank)
        bias, star_factor = rating.fold_in_on(bias_rows, factor_rows, given)
        block = UserBlock(
            user_ids=np.zeros(1, dtype=np.int64),
            factors=factor[None, :].astype(np.float32),
            rated_at=positions,
            rated_stars=stars,
            rated_by=np.zeros(len(positions), dtype=np.int64),
            star_bias=np.array([bias]),
            star_factors=star_factor[None, :],
        )
        return block, wanted

    def _of_genres(self, genres: Sequence[str], *, new: bool = False) -> np.ndarray:
        """Which known movies (or, with `new`, which new movies) have one of `genres`."""
        new_ids = self._new_ids
        masks, size = (self.new_genres, len(new_ids)) if new else (self.genres, len(self.movie_ids))
        of_genres = np.zeros(size, dtype=bool)
        for genre in genres:
            of_genres |= masks.get(genre, of_genres)
        return of_genres

    def new_for_you(
        self, ratings: dict[int, float], *, genres: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The "New for you" row of a user who gave `ratings` (movieId -> stars), only
        new movies of `genres` when given: what the served rows hold for known users
        (`ModelItems.new_for_you`), on a block of one. Empty when the models have no row
        or no new movie reaches the user."""
        new = self.items.new
        if new is None or new.row is None:
            return []
        if genres:
            new = new.only(self._of_genres(genres, new=True))
        block, _ = self._block(ratings)
        rated = position_of(new.movie_ids, list(ratings))
        picks = self.items.new_for_you(block, [rated[rated >= 0]], new)
        if picks is None:
            return []
        found = picks.positions[0] >= 0
        return [
            {
                "movieId": int(new.movie_ids[p]),
                "pred_rating": round(float(s), 2),
                "score": round(float(v), 4),
                "reason": int(self.movie_ids[r]) if r >= 0 else None,
                "new": True,
                "row": files.NEW_FOR_YOU,
                **({"by_title": True} if by_title else {}),
                **({"fresh": True} if new.row.fresh[p] else {}),
            }
            for p, s, v, r, by_title in zip(
                picks.positions[0][found],
                picks.stars[0][found],
                picks.scores[0][found],
                picks.reasons[0][found],
                picks.by_title[0][found],
                strict=True,
            )
        ]

    def recommend(
        self,
        ratings: dict[int, float],
        *,
        genres: list[str] | None = None,
        n: int = 10,
        discovery: float = 0.0,
    ) -> list[dict[str, Any]]:
        """Top-n for a brand-new user from their `ratings` (movieId -> stars) and/or
        favourite `genres` (only movies of those), in the served order (`discovery` adds
        to its popularity penalty): the models folded in (the ranking model's factor, the
        rating model's bias and factor), leaning on popularity while there are few
        ratings; the list builder of every served list, on a block of one user."""
        block, wanted = self._block(ratings)
        # The personal score's share is wanted / (wanted + BLEND_PRIOR). On the z-scored
        # personal score, that is a popularity bonus of (1 - share) / share; with none,
        # popularity alone.
        bonus = BLEND_PRIOR / wanted if wanted else 1.0
        policy = self.items.policy
        policy = replace(policy, popularity_penalty=policy.popularity_penalty + discovery - bonus)
        ranker: Ranker = self.items.ranker(policy)
        new = self.items.new_slots(n)
        if genres:
            of_genres = self._of_genres(genres)
            ranker = OnlyMovies(ranker, of_genres)
            if new is not None:
                new = replace(new, movies=new.movies.only(self._of_genres(genres, new=True)))
        # A rated new movie is left out of the new picks (the models cannot use its stars).
        new_ids = new.movies.movie_ids if new is not None else np.zeros(0, np.int64)
        rated_new = position_of(new_ids, list(ratings))
        lists = build_lists(
            block, ranker, n, stars=self.items.rating, new=new,
            rated_new=[rated_new[rated_new >= 0]],
        )  # fmt: skip
        every_id = np.concatenate([self.movie_ids, new_ids])
        is_new = lists.new[0] if lists.new is not None else np.zeros(n, dtype=bool)
        found = lists.positions[0] >= 0
        return [
            {
                "movieId": int(every_id[p]),
                "pred_rating": round(float(s), 2),
                "score": round(float(v), 4),
                "reason": int(self.movie_ids[r]) if r >= 0 else None,
                **({"new": True} if fresh else {}),
            }
            for p, s, v, r, fresh in zip(
                lists.positions[0][found],
                lists.stars[0][found],
                lists.scores[0][found],
                lists.reasons[0][found],
                is_new[found],
                strict=True,
            )
        ]


# ------------------------------------------------------------------------------ opening


def open_catalog(home: Path) -> Catalog:
    path = files.catalog_path(home)
    with reading("The movie catalog", path):
        return LOADED.get([path], lambda: Catalog.load(path))


def open_profiles(home: Path) -> pd.DataFrame:
    path, app_path = files.profiles_path(home), files.app_profiles_path(home)
    with reading("The users' favourite movies", path):
        return LOADED.get([path, app_path], lambda: load_profiles(path, app_path))


def open_foldin(home: Path) -> FoldIn:
    """The fold-in model (it reads the catalog too, for popularity and genres)."""
    path, catalog_path = files.factors_path(home), files.catalog_path(home)
    catalog = open_catalog(home)
    with reading("The model factors for new users", path):
        return LOADED.get([path, catalog_path], lambda: FoldIn.load(path, catalog))

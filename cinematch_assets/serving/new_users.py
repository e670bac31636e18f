"""A brand-new user's list from a few ratings or favourite genres: every model's movie
side (`model_factors.npz`) with the served order, the user folded into the models (the
ranking model's factor, the rating model's bias and factor), and the list builder of
every served list on a block of one user."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cinematch_assets.ml.arrays import position_of, unit_rows
from cinematch_assets.ml.lists.build import ModelItems, Ranker, UserBlock, build_lists
from cinematch_assets.ml.lists.top_n import ScoreRows
from cinematch_assets.ml.models.foldin import implicit_gram, preference_values, solve_implicit
from cinematch_assets.serving import model_factors
from cinematch_assets.serving.catalog import Catalog, open_catalog
from cinematch_assets.serving.loading import LOADED, reading
from cinematch_assets.storage import serving_files as files

# A new user's list leans on popularity until they have rated a few movies: the personal
# score's weight is ratings / (ratings + BLEND_PRIOR), so 1 rating -> 1/3, 3 -> 3/5.
BLEND_PRIOR = 2.0
# The stars a "Not interested" counts as: a dislike, which counts against similar movies.
NOT_INTERESTED = 1.0


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


def open_foldin(home: Path) -> FoldIn:
    """The fold-in model (it reads the catalog too, for popularity and genres)."""
    path, catalog_path = files.factors_path(home), files.catalog_path(home)
    catalog = open_catalog(home)
    with reading("The model factors for new users", path):
        return LOADED.get([path, catalog_path], lambda: FoldIn.load(path, catalog))

"""Exploratory data analysis of the Silver ratings: the numbers, from Spark.

`compute_eda` aggregates in Spark and collects only small histograms (a few thousand rows
at most, whatever the number of ratings). Everything else -- retention at any threshold,
quantiles, and the figures, Markdown and files of `reports.eda` -- is derived from those
histograms on the driver, so the same data always gives the same numbers and files.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

DEFAULT_THRESHOLDS = (1, 5, 10, 15, 20, 50, 100)
DEFAULT_USER_THRESHOLD = 15
DEFAULT_MOVIE_THRESHOLD = 10
HALF_STARS = tuple(k / 2 for k in range(1, 11))


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class CountDistribution:
    """Ratings per user (or per movie) as a count of counts: `entities[i]` users (movies)
    have exactly `counts[i]` ratings, `counts` ascending.

    Exact and always small: k distinct counts need at least 1 + 2 + ... + k ratings, so
    there are at most sqrt(2 * ratings) of them (about 8,100 for 33M ratings).
    """

    counts: list[int]
    entities: list[int]

    @property
    def total(self) -> int:
        """Number of users (movies)."""
        return sum(self.entities)

    @property
    def ratings(self) -> int:
        return sum(c * e for c, e in zip(self.counts, self.entities, strict=True))

    @property
    def min(self) -> int:
        return self.counts[0]

    @property
    def max(self) -> int:
        return self.counts[-1]

    @property
    def mean(self) -> float:
        return self.ratings / self.total

    @property
    def median(self) -> float:
        return self.quantile(0.5)

    def quantile(self, q: float) -> float:
        """Linear interpolation between order statistics, like numpy's and pandas' default."""
        position = q * (self.total - 1)
        rank = math.floor(position)
        low, high = self._at_rank(rank), self._at_rank(min(rank + 1, self.total - 1))
        return low + (high - low) * (position - rank)

    def _at_rank(self, rank: int) -> int:
        """The number of ratings of the rank-th smallest user (movie), 0-based."""
        return self.counts[bisect_right(list(accumulate(self.entities)), rank)]

    def retained(self, threshold: int) -> int:
        """Users (movies) with at least `threshold` ratings."""
        return sum(e for c, e in zip(self.counts, self.entities, strict=True) if c >= threshold)

    def retained_share(self, threshold: int) -> float:
        return self.retained(threshold) / self.total

    def ratings_retained_share(self, threshold: int) -> float:
        """Share of all ratings that belong to users (movies) kept at `threshold`."""
        pairs = zip(self.counts, self.entities, strict=True)
        return sum(c * e for c, e in pairs if c >= threshold) / self.ratings

    def summary(self, thresholds: Sequence[int]) -> dict[str, Any]:
        """JSON-ready: the histogram, its quantiles and the retention at each threshold."""
        return {
            "counts": self.counts,
            "entities": self.entities,
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "quantiles": {
                f"p{round(q * 100)}": self.quantile(q) for q in (0.25, 0.5, 0.75, 0.9, 0.99)
            },
            "retention": [
                {
                    "threshold": t,
                    "retained": self.retained(t),
                    "share": self.retained_share(t),
                    "ratings_share": self.ratings_retained_share(t),
                }
                for t in thresholds
            ],
        }


@dataclass(frozen=True)
class EdaStats:
    """Everything the EDA report shows, as plain Python numbers and lists."""

    rating_values: list[float]  # the half-star grid (plus any off-grid value seen)
    rating_counts: list[int]
    per_user: CountDistribution
    per_movie: CountDistribution
    months: list[str]  # "YYYY-MM", UTC, every month from the first rating to the last
    month_counts: list[int]
    first_rated_at: str  # ISO 8601, UTC
    last_rated_at: str
    thresholds: list[int] = field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    genres: list[str] = field(default_factory=list)  # by ratings, descending
    genre_movies: list[int] = field(default_factory=list)
    genre_ratings: list[int] = field(default_factory=list)

    @property
    def n_ratings(self) -> int:
        return sum(self.rating_counts)

    @property
    def n_users(self) -> int:
        return self.per_user.total

    @property
    def n_movies(self) -> int:
        """Movies with at least one rating."""
        return self.per_movie.total

    @property
    def rating_shares(self) -> list[float]:
        return [c / self.n_ratings for c in self.rating_counts]

    @property
    def mean_rating(self) -> float:
        # From the histogram rather than Spark's avg(): half stars are exact binary
        # fractions, so this is exact and does not depend on how the data is partitioned.
        pairs = zip(self.rating_values, self.rating_counts, strict=True)
        return sum(v * c for v, c in pairs) / self.n_ratings

    @property
    def mode_rating(self) -> float:
        """The most common rating (the lowest one on a tie)."""
        return self.rating_values[self.rating_counts.index(max(self.rating_counts))]

    @property
    def mode_share(self) -> float:
        return max(self.rating_counts) / self.n_ratings

    @property
    def density(self) -> float:
        """Filled share of the user x movie matrix (Silver has one row per pair)."""
        return self.n_ratings / (self.n_users * self.n_movies)

    @property
    def sparsity(self) -> float:
        return 1 - self.density

    @property
    def years(self) -> list[int]:
        return sorted({int(m[:4]) for m in self.months})

    @property
    def year_counts(self) -> list[int]:
        totals = dict.fromkeys(self.years, 0)
        for month, count in zip(self.months, self.month_counts, strict=True):
            totals[int(month[:4])] += count
        return list(totals.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the raw histograms plus every derived number."""
        return {
            "n_ratings": self.n_ratings,
            "n_users": self.n_users,
            "n_movies": self.n_movies,
            "mean_rating": self.mean_rating,
            "mode_rating": self.mode_rating,
            "mode_share": self.mode_share,
            "density": self.density,
            "sparsity": self.sparsity,
            "first_rated_at": self.first_rated_at,
            "last_rated_at": self.last_rated_at,
            "thresholds": self.thresholds,
            "rating_histogram": [
                {"rating": v, "count": c, "share": s}
                for v, c, s in zip(
                    self.rating_values, self.rating_counts, self.rating_shares, strict=True
                )
            ],
            "ratings_per_user": self.per_user.summary(self.thresholds),
            "ratings_per_movie": self.per_movie.summary(self.thresholds),
            "ratings_per_year": [
                {"year": y, "count": c} for y, c in zip(self.years, self.year_counts, strict=True)
            ],
            "ratings_per_month": [
                {"month": m, "count": c}
                for m, c in zip(self.months, self.month_counts, strict=True)
            ],
            "genres": [
                {"genre": g, "movies": m, "ratings": r}
                for g, m, r in zip(self.genres, self.genre_movies, self.genre_ratings, strict=True)
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EdaStats:
        """Inverse of `to_dict` (e.g. to redraw the figures from a stored eda_stats.json)."""

        def dist(key: str) -> CountDistribution:
            return CountDistribution(list(data[key]["counts"]), list(data[key]["entities"]))

        return cls(
            rating_values=[h["rating"] for h in data["rating_histogram"]],
            rating_counts=[h["count"] for h in data["rating_histogram"]],
            per_user=dist("ratings_per_user"),
            per_movie=dist("ratings_per_movie"),
            months=[m["month"] for m in data["ratings_per_month"]],
            month_counts=[m["count"] for m in data["ratings_per_month"]],
            first_rated_at=data["first_rated_at"],
            last_rated_at=data["last_rated_at"],
            thresholds=list(data["thresholds"]),
            genres=[g["genre"] for g in data["genres"]],
            genre_movies=[g["movies"] for g in data["genres"]],
            genre_ratings=[g["ratings"] for g in data["genres"]],
        )


def _utc_date(unix_seconds: Column) -> Column:
    # Via the day number rather than a timestamp: year() and month() of a timestamp
    # follow the session time zone, a day number since the epoch is UTC everywhere.
    return F.date_from_unix_date(F.floor(unix_seconds / 86400).cast("int"))


def _count_of_counts(per_entity: DataFrame) -> CountDistribution:
    """Collapse (key, n) rows into how many keys have each n."""
    rows = per_entity.groupBy("n").agg(F.count(F.lit(1)).alias("entities")).collect()
    rows = sorted((r["n"], r["entities"]) for r in rows)
    return CountDistribution([n for n, _ in rows], [e for _, e in rows])


def _month_range(first: str, last: str) -> list[str]:
    """Every "YYYY-MM" from `first` to `last`, inclusive."""
    start, end = int(first[:4]) * 12 + int(first[5:]) - 1, int(last[:4]) * 12 + int(last[5:]) - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(start, end + 1)]


def _iso_utc(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, tz=UTC).isoformat()


def compute_eda(
    ratings: DataFrame,
    movies: DataFrame | None = None,
    *,
    thresholds: Sequence[int] = DEFAULT_THRESHOLDS,
) -> EdaStats:
    """Aggregate the Silver ratings (userId, movieId, rating, timestamp; one row per user and
    movie; other columns are ignored) and optionally the movies' genres.

    Three Spark jobs (four with movies); only small histograms reach the driver.
    Raises ValueError when there are no ratings (every share would be 0/0).
    """
    day = _utc_date(F.col("timestamp"))
    # One scan gives the rating histogram, the monthly counts and the date range:
    # at most 10 ratings x a few hundred months rows.
    cells = (
        ratings.groupBy("rating", F.year(day).alias("year"), F.month(day).alias("month"))
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.min("timestamp").alias("first"),
            F.max("timestamp").alias("last"),
        )
        .collect()
    )
    if not cells:
        raise ValueError("compute_eda: the ratings DataFrame is empty")

    by_rating: dict[float, int] = dict.fromkeys(HALF_STARS, 0)
    by_month: dict[str, int] = {}
    for cell in cells:
        by_rating[cell["rating"]] = by_rating.get(cell["rating"], 0) + cell["n"]
        month = f"{cell['year']:04d}-{cell['month']:02d}"
        by_month[month] = by_month.get(month, 0) + cell["n"]
    months = _month_range(min(by_month), max(by_month))

    per_movie = ratings.groupBy("movieId").agg(F.count(F.lit(1)).alias("n"))
    per_user = ratings.groupBy("userId").agg(F.count(F.lit(1)).alias("n"))

    genres: list[tuple[str, int, int]] = []
    if movies is not None:
        rows = (
            movies.select("movieId", F.explode("genres").alias("genre"))
            .join(per_movie, "movieId", "left")
            .groupBy("genre")
            .agg(
                F.count(F.lit(1)).alias("movies"),
                F.coalesce(F.sum("n"), F.lit(0)).alias("ratings"),
            )
            .collect()
        )
        genres = sorted(
            ((r["genre"], r["movies"], r["ratings"]) for r in rows),
            key=lambda g: (-g[2], -g[1], g[0]),
        )

    return EdaStats(
        rating_values=sorted(by_rating),
        rating_counts=[by_rating[v] for v in sorted(by_rating)],
        per_user=_count_of_counts(per_user),
        per_movie=_count_of_counts(per_movie),
        months=months,
        month_counts=[by_month.get(m, 0) for m in months],
        first_rated_at=_iso_utc(min(c["first"] for c in cells)),
        last_rated_at=_iso_utc(max(c["last"] for c in cells)),
        thresholds=sorted(set(thresholds)),
        genres=[g for g, _, _ in genres],
        genre_movies=[m for _, m, _ in genres],
        genre_ratings=[r for _, _, r in genres],
    )

"""Exploratory data analysis of the Silver ratings: numbers from Spark, charts from Plotly.

`compute_eda` aggregates in Spark and collects only small histograms (a few thousand rows
at most, whatever the number of ratings). Everything else -- retention at any threshold,
quantiles, figures, Markdown -- is derived from those histograms on the driver, so the
same data always gives the same numbers, the same JSON and the same files.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

DEFAULT_THRESHOLDS = (1, 5, 10, 15, 20, 50, 100)
DEFAULT_USER_THRESHOLD = 15
DEFAULT_MOVIE_THRESHOLD = 10
HALF_STARS = tuple(k / 2 for k in range(1, 11))

TEMPLATE = "plotly_dark"
BACKGROUND = "#111111"  # plotly_dark's paper colour, so the HTML pages blend in
BLUE, GREEN, ORANGE, GREY = "#636efa", "#00cc96", "#ffa15a", "#8c8c8c"
PLOTLY_JS = "plotly.min.js"


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


# --------------------------------------------------------------------------- figures


def _style(fig: go.Figure, title: str, subtitle: str, height: int) -> go.Figure:
    fig.update_layout(
        template=TEMPLATE,
        title={"text": f"<b>{title}</b>", "subtitle": {"text": subtitle}, "x": 0.01},
        height=height,
        margin={"t": 110, "l": 80, "r": 80, "b": 70},
        font={"size": 13},
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
        hoverlabel={"font_size": 13},
    )
    return fig


def _rating_figure(stats: EdaStats) -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    shares = stats.rating_shares
    fig.add_bar(
        x=stats.rating_values,
        y=shares,
        width=0.4,
        name="share of ratings",
        marker_color=BLUE,
        text=[f"{s:.1%}" for s in shares],
        textposition="outside",
        customdata=stats.rating_counts,
        hovertemplate="%{x:.1f} stars: %{customdata:,} ratings (%{y:.1%})<extra></extra>",
    )
    fig.add_scatter(
        x=stats.rating_values,
        y=list(accumulate(shares)),
        name="cumulative share (right axis)",
        mode="lines+markers",
        line={"color": GREEN, "width": 2},
        hovertemplate="up to %{x:.1f} stars: %{y:.1%}<extra></extra>",
        secondary_y=True,
    )
    mean = stats.mean_rating
    fig.add_vline(x=mean, line={"color": ORANGE, "dash": "dot", "width": 2})
    fig.add_annotation(
        x=mean,
        y=1,
        yref="paper",
        text=f"mean {mean:.2f}",
        showarrow=False,
        xanchor="left",
        yanchor="top",
        xshift=4,
        font={"color": ORANGE},
    )
    fig.update_xaxes(
        title="Rating (stars)",
        tickvals=stats.rating_values,
        ticktext=[f"{v:.1f}" for v in stats.rating_values],
    )
    top = max(shares) * 1.18  # headroom for the labels above the bars
    fig.update_yaxes(title="Share of all ratings", tickformat=".0%", range=[0, top])
    fig.update_yaxes(
        title="Cumulative share",
        tickformat=".0%",
        range=[0, 1.05],
        dtick=0.2,
        showgrid=False,
        secondary_y=True,
    )
    subtitle = (
        f"{stats.mode_rating:.1f} stars is the most common rating ({stats.mode_share:.1%}); "
        f"mean {mean:.2f} over {stats.n_ratings:,} ratings"
    )
    return _style(fig, "Rating distribution", subtitle, 520)


def _log_bins(dist: CountDistribution, per_decade: int = 8) -> list[tuple[int, int, int]]:
    """(low, high, entities) for log-spaced integer bins [low, high) covering the counts."""
    edges = sorted({round(10 ** (i / per_decade)) for i in range(per_decade * 12)})
    edges = [e for e in edges if e <= dist.max] + [next(e for e in edges if e > dist.max)]
    bins = []
    for low, high in zip(edges, edges[1:], strict=False):
        n = sum(e for c, e in zip(dist.counts, dist.entities, strict=True) if low <= c < high)
        if n:
            bins.append((low, high, n))
    return bins


def _count_figure(
    dist: CountDistribution, thresholds: Sequence[int], threshold: int, noun: str
) -> go.Figure:
    """The long tail of ratings per user (movie) and the share kept at each minimum."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        row_heights=[0.55, 0.45],
        subplot_titles=(
            f"{noun.capitalize()}s with exactly N ratings (averaged over log-spaced bins)",
            f"Share kept by a minimum of N ratings per {noun}",
        ),
    )
    bins = _log_bins(dist)
    fig.add_bar(
        # On a log axis a bar of width high - low centred on the middle spans [low, high).
        x=[(lo + hi) / 2 for lo, hi, _ in bins],
        width=[hi - lo for lo, hi, _ in bins],
        # Per value of N, not per bin: a bin holds 1 to hundreds of values of N, and raw
        # bin totals would make the tail look jagged where the bin widths jump.
        y=[n / (hi - lo) for lo, hi, n in bins],
        customdata=[[lo, hi - 1, n] for lo, hi, n in bins],
        name=f"{noun}s",
        marker={"color": BLUE, "line": {"color": BACKGROUND, "width": 1}},
        hovertemplate=f"N = %{{customdata[0]:,}}–%{{customdata[1]:,}}: %{{customdata[2]:,}} "
        f"{noun}s, %{{y:,.3g}} per value of N<extra></extra>",
        showlegend=False,
        row=1,
        col=1,
    )
    # Share kept at a minimum t is a step function of t, constant between observed counts.
    xs = ([1] if dist.min > 1 else []) + dist.counts
    fig.add_scatter(
        x=xs,
        y=[dist.retained_share(x) for x in xs],
        name=f"{noun}s kept",
        mode="lines",
        line={"color": GREEN, "width": 2.5, "shape": "vh"},
        hovertemplate=f"≥ %{{x:,}} ratings: %{{y:.1%}} of {noun}s<extra></extra>",
        row=2,
        col=1,
    )
    fig.add_scatter(
        x=xs,
        y=[dist.ratings_retained_share(x) for x in xs],
        name="ratings kept",
        mode="lines",
        line={"color": GREY, "width": 2, "dash": "dot", "shape": "vh"},
        hovertemplate="≥ %{x:,} ratings: %{y:.1%} of ratings<extra></extra>",
        row=2,
        col=1,
    )
    marks = [t for t in thresholds if t <= dist.max]
    fig.add_scatter(
        x=marks,
        y=[dist.retained_share(t) for t in marks],
        name="reported thresholds",
        mode="markers",
        marker={"color": GREEN, "size": 8, "line": {"color": "white", "width": 1}},
        hovertemplate=f"≥ %{{x:,}} ratings: %{{y:.1%}} of {noun}s<extra></extra>",
        row=2,
        col=1,
    )
    fig.add_vline(x=threshold, line={"color": ORANGE, "dash": "dash", "width": 2}, row="all", col=1)
    kept = dist.retained_share(threshold)
    fig.add_annotation(
        # Annotations on a log axis are placed in log10 units (shapes are not).
        x=math.log10(threshold),
        y=kept,
        xref="x2",
        yref="y2",
        text=f"<b>≥ {threshold} ratings: {kept:.1%} of {noun}s kept</b><br>"
        f"({dist.retained(threshold):,} of {dist.total:,}, "
        f"{dist.ratings_retained_share(threshold):.1%} of ratings)",
        # Retention falls from 100% at the left: above-right of the point is empty when
        # little is kept, below-left when nearly everything is.
        showarrow=True,
        arrowcolor=ORANGE,
        ax=50 if kept < 0.5 else -50,
        ay=-45 if kept < 0.5 else 55,
        xanchor="left" if kept < 0.5 else "right",
        align="left",
        font={"color": ORANGE},
        bgcolor="rgba(17,17,17,0.85)",
    )
    # Log axes take their range in log10 units: from 1 rating to the last bin (or the
    # threshold, should it lie beyond the data).
    span = [0, math.log10(max(bins[-1][1], threshold * 1.5, 10))]
    fig.update_xaxes(type="log", range=span, row=1, col=1)
    fig.update_xaxes(
        type="log", range=span, title=f"N = ratings per {noun} (log scale)", row=2, col=1
    )
    fig.update_yaxes(
        type="log", dtick=1, title=f"{noun.capitalize()}s per N (log scale)", row=1, col=1
    )
    fig.update_yaxes(title="Share kept", tickformat=".0%", range=[0, 1.05], row=2, col=1)
    subtitle = (
        f"{dist.total:,} {noun}s; median {dist.median:,.4g}, mean {dist.mean:,.1f}, "
        f"max {dist.max:,} ratings per {noun}"
    )
    _style(fig, f"Ratings per {noun}: a long tail", subtitle, 720)
    # The legend goes inside the lower panel's top-right corner, which the falling curves
    # leave empty (above the plot it would collide with the subplot title).
    return fig.update_layout(
        legend={
            "orientation": "v",
            "x": 0.99,
            "xanchor": "right",
            "y": 0.4,
            "yanchor": "top",
            "bgcolor": "rgba(17,17,17,0.8)",
        }
    )


def _sparsity_figure(stats: EdaStats) -> go.Figure:
    cells = stats.n_users * stats.n_movies
    fig = make_subplots(
        rows=2,
        cols=1,
        specs=[[{"type": "domain"}], [{"type": "xy"}]],
        row_heights=[0.55, 0.45],
    )
    fig.add_trace(
        go.Indicator(
            mode="number",
            value=stats.sparsity * 100,
            number={"suffix": "%", "valueformat": ".2f", "font": {"size": 64}},
            title={"text": "of the user × movie matrix is empty"},
        ),
        row=1,
        col=1,
    )
    for name, value, color in (("rated", stats.density, BLUE), ("empty", stats.sparsity, GREY)):
        fig.add_bar(
            x=[value],
            y=["cells"],
            orientation="h",
            name=f"{name} ({value:.2%})",
            marker_color=color,
            hovertemplate=f"{name}: %{{x:.3%}}<extra></extra>",
            row=2,
            col=1,
        )
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title="Share of user × movie cells", tickformat=".0%", range=[0, 1])
    fig.update_yaxes(showticklabels=False)
    typical = stats.per_user.median / stats.n_movies
    subtitle = (
        f"{stats.n_users:,} users × {stats.n_movies:,} movies = {cells:,} cells, "
        f"{stats.n_ratings:,} rated; the median user rated {typical:.2%} of the movies"
    )
    return _style(fig, "User-item matrix sparsity", subtitle, 440)


def _time_figure(stats: EdaStats) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=stats.years,
            y=stats.year_counts,
            name="ratings",
            marker_color=BLUE,
            hovertemplate="%{x}: %{y:,} ratings<extra></extra>",
        )
    )
    fig.update_xaxes(title="Year (UTC)", dtick=1 if len(stats.years) <= 25 else None)
    fig.update_yaxes(title="Ratings")
    first, last = stats.first_rated_at[:10], stats.last_rated_at[:10]
    peak = stats.years[stats.year_counts.index(max(stats.year_counts))]
    subtitle = f"{first} to {last}; busiest year {peak} ({max(stats.year_counts):,} ratings)"
    return _style(fig, "Ratings per year", subtitle, 460)


def _genre_figure(stats: EdaStats) -> go.Figure:
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=("Ratings", "Movies"),
    )
    order = stats.genres[::-1]  # horizontal bars draw bottom-up: put the largest on top
    fig.add_bar(
        y=order,
        x=stats.genre_ratings[::-1],
        orientation="h",
        marker_color=BLUE,
        name="ratings",
        hovertemplate="%{y}: %{x:,} ratings<extra></extra>",
        row=1,
        col=1,
    )
    fig.add_bar(
        y=order,
        x=stats.genre_movies[::-1],
        orientation="h",
        marker_color=GREEN,
        name="movies",
        hovertemplate="%{y}: %{x:,} movies<extra></extra>",
        row=1,
        col=2,
    )
    fig.update_layout(showlegend=False)
    fig.update_yaxes(dtick=1, ticklabelstandoff=8)
    subtitle = "A movie counts once for each of its genres"
    return _style(fig, "Genres", subtitle, max(420, 140 + 24 * len(order)))


def eda_figures(
    stats: EdaStats,
    *,
    user_threshold: int = DEFAULT_USER_THRESHOLD,
    movie_threshold: int = DEFAULT_MOVIE_THRESHOLD,
) -> dict[str, go.Figure]:
    """The report's charts, by name, drawn from the statistics alone (no Spark)."""
    figures = {
        "rating_distribution": _rating_figure(stats),
        "ratings_per_user": _count_figure(stats.per_user, stats.thresholds, user_threshold, "user"),
        "ratings_per_movie": _count_figure(
            stats.per_movie, stats.thresholds, movie_threshold, "movie"
        ),
        "sparsity": _sparsity_figure(stats),
        "ratings_over_time": _time_figure(stats),
    }
    if stats.genres:
        figures["genres"] = _genre_figure(stats)
    return figures


# --------------------------------------------------------------------------- report files


def _summary_rows(
    stats: EdaStats, user_threshold: int, movie_threshold: int
) -> list[tuple[str, str]]:
    users, movies = stats.per_user, stats.per_movie
    return [
        ("Ratings", f"{stats.n_ratings:,}"),
        ("Users", f"{stats.n_users:,}"),
        ("Movies (rated)", f"{stats.n_movies:,}"),
        ("Mean rating", f"{stats.mean_rating:.2f}"),
        ("Most common rating", f"{stats.mode_rating:.1f} ({stats.mode_share:.1%})"),
        ("Matrix sparsity", f"{stats.sparsity:.2%} empty (density {stats.density:.2%})"),
        ("Ratings per user", f"median {users.median:,.4g}, max {users.max:,}"),
        ("Ratings per movie", f"median {movies.median:,.4g}, max {movies.max:,}"),
        (
            f"Users with ≥ {user_threshold} ratings",
            f"{users.retained(user_threshold):,} ({users.retained_share(user_threshold):.1%})",
        ),
        (
            f"Movies with ≥ {movie_threshold} ratings",
            f"{movies.retained(movie_threshold):,} ({movies.retained_share(movie_threshold):.1%})",
        ),
        ("Date range (UTC)", f"{stats.first_rated_at[:10]} to {stats.last_rated_at[:10]}"),
    ]


def eda_markdown(
    stats: EdaStats,
    *,
    user_threshold: int = DEFAULT_USER_THRESHOLD,
    movie_threshold: int = DEFAULT_MOVIE_THRESHOLD,
) -> str:
    """A Markdown summary (key numbers, then retention per threshold) for Dagster metadata."""
    lines = ["| Metric | Value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in _summary_rows(stats, user_threshold, movie_threshold)]
    # The rating histogram as text bars: the distribution is visible in Dagster's UI itself.
    lines += ["", "| Stars | Share | |", "| ---: | ---: | :--- |"]
    top = max(stats.rating_shares)
    for value, share in zip(stats.rating_values, stats.rating_shares, strict=True):
        lines.append(f"| {value:.1f} | {share:.1%} | {'█' * round(30 * share / top)} |")
    lines += ["", "| Min. ratings | Users kept | Movies kept |", "| ---: | ---: | ---: |"]
    for t in sorted({*stats.thresholds, user_threshold, movie_threshold}):
        lines.append(
            f"| {t} | {stats.per_user.retained_share(t):.1%} "
            f"| {stats.per_movie.retained_share(t):.1%} |"
        )
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, data: str | bytes) -> Path:
    """Write beside `path`, then rename: a reader sees the old file or the new, never half."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the report from a static file server
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
  body {{ background: {BACKGROUND}; color: #e6e6e6; margin: 0 auto; max-width: 1280px;
         padding: 16px 24px; font-family: "Open Sans", Verdana, Arial, sans-serif; }}
  h1 {{ font-weight: 600; }}
  table {{ border-collapse: collapse; margin-bottom: 24px; }}
  td {{ padding: 4px 16px 4px 0; border-bottom: 1px solid #333; }}
  .chart {{ margin-bottom: 32px; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


def write_eda_report(
    figures: dict[str, go.Figure],
    stats: EdaStats,
    out_dir: Path,
    *,
    user_threshold: int = DEFAULT_USER_THRESHOLD,
    movie_threshold: int = DEFAULT_MOVIE_THRESHOLD,
) -> dict[str, Path]:
    """Write one HTML and one JSON file per chart, index.html, eda_stats.json and the
    plotly.min.js they all load (so the pages render offline). Returns paths by file name."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # plotly.js first and index.html last, so no page ever points at a missing file.
    written = [_write_atomic(out_dir / PLOTLY_JS, get_plotlyjs())]
    charts = []
    for name, fig in figures.items():
        written.append(_write_atomic(out_dir / f"{name}.json", fig.to_json()))
        # A fixed div id keeps the HTML byte-for-byte reproducible (plotly's default is random).
        chart = fig.to_html(full_html=False, include_plotlyjs="directory", div_id=name)
        page = _page(f"CineMatch EDA: {name.replace('_', ' ')}", chart)
        written.append(_write_atomic(out_dir / f"{name}.html", page))
        charts.append(
            f'<div class="chart">'
            f"{fig.to_html(full_html=False, include_plotlyjs=False, div_id=f'{name}-chart')}</div>"
        )
    stats_json = json.dumps(stats.to_dict(), indent=2, ensure_ascii=False) + "\n"
    written.append(_write_atomic(out_dir / "eda_stats.json", stats_json))
    rows = "\n".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
        for k, v in _summary_rows(stats, user_threshold, movie_threshold)
    )
    body = (
        f'<script charset="utf-8" src="{PLOTLY_JS}"></script>\n'
        "<h1>CineMatch: exploratory data analysis of the ratings</h1>\n"
        f"<table>\n{rows}\n</table>\n" + "\n".join(charts)
    )
    index = _page("CineMatch EDA", body)
    written.append(_write_atomic(out_dir / "index.html", index))
    return {path.name: path for path in written}

"""The EDA report: the article's findings about the Silver ratings as plotly charts.

Drawn from `EdaStats` alone (no Spark): the same statistics always give the same
figures, Markdown and files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cinematch_assets.reports.charts import (
    BACKGROUND,
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    html_table,
    style,
    write_report,
)
from cinematch_assets.transforms.eda import (
    DEFAULT_MOVIE_THRESHOLD,
    DEFAULT_USER_THRESHOLD,
    CountDistribution,
    EdaStats,
)


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
    return style(fig, "Rating distribution", subtitle, 520)


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
    style(fig, f"Ratings per {noun}: a long tail", subtitle, 720)
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
    return style(fig, "User-item matrix sparsity", subtitle, 440)


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
    return style(fig, "Ratings per year", subtitle, 460)


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
    return style(fig, "Genres", subtitle, max(420, 140 + 24 * len(order)))


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


# --------------------------------------------------------------------------- report


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
    return write_report(
        out_dir,
        title="CineMatch EDA",
        figures=figures,
        intro_html=html_table(_summary_rows(stats, user_threshold, movie_threshold)),
        data_files={
            "eda_stats.json": json.dumps(stats.to_dict(), indent=2, ensure_ascii=False) + "\n"
        },
    )

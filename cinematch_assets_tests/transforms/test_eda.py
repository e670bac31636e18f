"""EDA: exact numbers on a hand-built table, the figures, the report files, the real data."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from datetime import datetime

import numpy as np
import plotly.io as pio
import pytest
from plotly.offline import get_plotlyjs
from pyspark.sql import functions as F

from cinematch_assets.reports import charts
from cinematch_assets.reports.eda import eda_figures, eda_markdown, write_eda_report
from cinematch_assets.storage import atomic_files, report_files
from cinematch_assets.transforms.eda import CountDistribution, EdaStats, compute_eda

RATINGS_SCHEMA = (
    "userId int, movieId int, rating double, timestamp long, rated_at timestamp, batch_id string"
)
MOVIES_SCHEMA = (
    "movieId int, title string, title_clean string, release_year int, genres array<string>"
)

# User 1 rated 4 movies, user 2 rated 2, user 3 rated 1; movie 10 has 3 ratings, movie 20
# has 2, movies 30 and 40 one each. Nothing in 2021; the first rating is late on New Year's
# Eve 2019 in UTC, already 2020 in Tokyo.
RATINGS = [
    (1, 10, 4.0, "2019-12-31T23:30:00"),
    (1, 20, 3.5, "2020-03-01T12:00:00"),
    (1, 30, 5.0, "2020-03-02T12:00:00"),
    (1, 40, 4.0, "2020-07-01T00:00:00"),
    (2, 10, 4.0, "2019-06-15T08:00:00"),
    (2, 20, 0.5, "2022-01-01T00:00:00"),
    (3, 10, 2.0, "2022-01-01T00:30:00"),
]
MOVIES = [
    (10, "A (2000)", "A", 2000, ["Comedy", "Drama"]),
    (20, "B", "B", None, ["Drama"]),
    (30, "C (1999)", "C", 1999, []),
    (40, "D", "D", None, ["Comedy"]),
    (50, "E (2001)", "E", 2001, ["Horror"]),  # never rated
]
THRESHOLDS = (1, 2, 3, 5)
USER_T, MOVIE_T = 2, 3


def utc(iso: str) -> datetime:
    return datetime.fromisoformat(iso + "+00:00")


@pytest.fixture(scope="module")
def ratings(spark):
    rows = [(u, m, r, int(utc(t).timestamp()), utc(t), "b1") for u, m, r, t in RATINGS]
    return spark.createDataFrame(rows, RATINGS_SCHEMA)


@pytest.fixture(scope="module")
def stats(spark, ratings) -> EdaStats:
    return compute_eda(ratings, spark.createDataFrame(MOVIES, MOVIES_SCHEMA), thresholds=THRESHOLDS)


@pytest.fixture(scope="module")
def figures(stats):
    return eda_figures(stats, user_threshold=USER_T, movie_threshold=MOVIE_T)


# --------------------------------------------------------------------------- numbers


def test_rating_histogram_mean_and_mode(stats):
    assert stats.rating_values == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    assert stats.rating_counts == [1, 0, 0, 1, 0, 0, 1, 3, 0, 1]  # empty half stars included
    assert stats.rating_shares == [c / 7 for c in stats.rating_counts]
    assert stats.mean_rating == 23 / 7
    assert (stats.mode_rating, stats.mode_share) == (4.0, 3 / 7)


def test_totals_and_sparsity(stats):
    assert (stats.n_ratings, stats.n_users, stats.n_movies) == (7, 3, 4)
    assert stats.density == 7 / 12
    assert stats.sparsity == 1 - 7 / 12


def test_ratings_per_user_and_movie(stats):
    assert stats.per_user == CountDistribution(counts=[1, 2, 4], entities=[1, 1, 1])
    assert stats.per_movie == CountDistribution(counts=[1, 2, 3], entities=[2, 1, 1])
    assert (stats.per_user.min, stats.per_user.max, stats.per_user.mean) == (1, 4, 7 / 3)
    assert (stats.per_movie.median, stats.per_movie.quantile(0.75)) == (1.5, 2.25)
    # Quantiles from the count of counts agree with numpy on the expanded values.
    for dist, values in ((stats.per_user, [1, 2, 4]), (stats.per_movie, [1, 1, 2, 3])):
        for q in (0, 0.1, 0.25, 0.5, 0.9, 1):
            assert dist.quantile(q) == pytest.approx(np.quantile(values, q))


def retention(summary: dict) -> list[tuple]:
    return [(r["threshold"], r["retained"], r["share"], r["ratings_share"]) for r in summary]


def test_retention_at_thresholds(stats):
    summary = stats.to_dict()
    assert retention(summary["ratings_per_user"]["retention"]) == [
        (1, 3, 1.0, 1.0),
        (2, 2, 2 / 3, 6 / 7),
        (3, 1, 1 / 3, 4 / 7),
        (5, 0, 0.0, 0.0),
    ]
    assert retention(summary["ratings_per_movie"]["retention"]) == [
        (1, 4, 1.0, 1.0),
        (2, 2, 0.5, 5 / 7),
        (3, 1, 0.25, 3 / 7),
        (5, 0, 0.0, 0.0),
    ]


def test_ratings_over_time_in_utc(stats):
    assert (stats.years, stats.year_counts) == ([2019, 2020, 2021, 2022], [2, 3, 0, 2])
    assert len(stats.months) == 32  # 2019-06 to 2022-01, empty months included
    assert {m: c for m, c in zip(stats.months, stats.month_counts, strict=True) if c} == {
        "2019-06": 1,
        "2019-12": 1,
        "2020-03": 2,
        "2020-07": 1,
        "2022-01": 2,
    }
    assert stats.first_rated_at == "2019-06-15T08:00:00+00:00"
    assert stats.last_rated_at == "2022-01-01T00:30:00+00:00"


def test_genres_count_movies_and_their_ratings(stats):
    assert stats.to_dict()["genres"] == [
        {"genre": "Drama", "movies": 2, "ratings": 5},
        {"genre": "Comedy", "movies": 2, "ratings": 4},
        {"genre": "Horror", "movies": 1, "ratings": 0},
    ]


def test_session_time_zone_does_not_move_ratings_between_years(spark, ratings, stats):
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "Asia/Tokyo")
    try:
        tokyo = compute_eda(ratings, thresholds=THRESHOLDS)
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)
    assert tokyo == dataclasses.replace(stats, genres=[], genre_movies=[], genre_ratings=[])


def test_no_ratings_is_an_error(spark):
    with pytest.raises(ValueError, match="empty"):
        compute_eda(spark.createDataFrame([], RATINGS_SCHEMA))


def test_to_dict_is_json_and_round_trips(stats):
    text = json.dumps(stats.to_dict())
    assert EdaStats.from_dict(json.loads(text)) == stats
    assert json.dumps(EdaStats.from_dict(json.loads(text)).to_dict()) == text


def test_markdown_summary(stats):
    md = eda_markdown(stats, user_threshold=USER_T, movie_threshold=MOVIE_T)
    for line in (
        "| Ratings | 7 |",
        "| Users | 3 |",
        "| Movies (rated) | 4 |",
        "| Mean rating | 3.29 |",
        "| Most common rating | 4.0 (42.9%) |",
        "| Matrix sparsity | 41.67% empty (density 58.33%) |",
        "| Users with ≥ 2 ratings | 2 (66.7%) |",
        "| Movies with ≥ 3 ratings | 1 (25.0%) |",
        "| Date range (UTC) | 2019-06-15 to 2022-01-01 |",
        "| 2 | 66.7% | 50.0% |",
    ):
        assert line in md.splitlines()


# --------------------------------------------------------------------------- figures


def test_figures_have_their_charts_titles_and_template(figures):
    assert list(figures) == [
        "rating_distribution",
        "ratings_per_user",
        "ratings_per_movie",
        "sparsity",
        "ratings_over_time",
        "genres",
    ]
    titles = {name: fig.layout.title.text for name, fig in figures.items()}
    assert titles["rating_distribution"] == "<b>Rating distribution</b>"
    assert titles["ratings_per_user"] == "<b>Ratings per user: a long tail</b>"
    assert titles["sparsity"] == "<b>User-item matrix sparsity</b>"
    for fig in figures.values():
        assert fig.layout.template == pio.templates[charts.TEMPLATE]
        assert fig.layout.height


def test_rating_figure_shows_shares_cumulative_and_mean(figures, stats):
    bars, cumulative = figures["rating_distribution"].data
    assert list(bars.x) == stats.rating_values
    assert list(bars.y) == stats.rating_shares
    assert cumulative.y[-1] == pytest.approx(1.0)
    assert [s.x0 for s in figures["rating_distribution"].layout.shapes] == [23 / 7]


@pytest.mark.parametrize(
    ("name", "threshold", "note"),
    [
        ("ratings_per_user", USER_T, "≥ 2 ratings: 66.7% of users kept"),
        ("ratings_per_movie", MOVIE_T, "≥ 3 ratings: 25.0% of movies kept"),
    ],
)
def test_count_figures_mark_the_configured_threshold(figures, name, threshold, note):
    fig = figures[name]
    lines = [s for s in fig.layout.shapes if s.line.dash == "dash"]
    assert len(lines) == 2  # through both panels
    assert all(s.x0 == s.x1 == threshold for s in lines)
    assert any(note in a.text for a in fig.layout.annotations)
    assert fig.layout.xaxis.type == fig.layout.xaxis2.type == fig.layout.yaxis.type == "log"


def test_user_retention_curve(figures):
    kept = next(t for t in figures["ratings_per_user"].data if t.name == "users kept")
    assert list(kept.x) == [1, 2, 4]
    assert list(kept.y) == [1.0, 2 / 3, 1 / 3]


def test_figures_round_trip_through_json(figures, stats):
    for fig in figures.values():
        assert pio.from_json(fig.to_json()) == fig
    # Drawn from the stats alone and deterministic: stored stats redraw the same charts.
    redrawn = eda_figures(
        EdaStats.from_dict(json.loads(json.dumps(stats.to_dict()))),
        user_threshold=USER_T,
        movie_threshold=MOVIE_T,
    )
    assert {n: f.to_json() for n, f in redrawn.items()} == {
        n: f.to_json() for n, f in figures.items()
    }


def test_no_genre_chart_without_genres(stats):
    no_genres = dataclasses.replace(stats, genres=[], genre_movies=[], genre_ratings=[])
    assert "genres" not in eda_figures(no_genres)


# --------------------------------------------------------------------------- report files


def test_write_eda_report(tmp_path, figures, stats):
    out = tmp_path / "eda"
    paths = write_eda_report(figures, stats, out, user_threshold=USER_T, movie_threshold=MOVIE_T)
    charts = list(figures)
    expected = {f"{n}.{ext}" for n in charts for ext in ("html", "json")}
    expected |= {"index.html", "eda_stats.json", "plotly.min.js", report_files.CHART_MANIFEST}
    assert set(paths) == expected
    assert report_files.chart_names(out) == charts  # what the app shows, in this order
    assert {p.name for p in out.iterdir()} == expected  # and no temp files left behind
    assert all(paths[name] == out / name for name in expected)

    assert (out / "plotly.min.js").read_text(encoding="utf-8") == get_plotlyjs()
    for name in [*charts, "index"]:
        page = (out / f"{name}.html").read_text(encoding="utf-8")
        assert '<script charset="utf-8" src="plotly.min.js"></script>' in page
        assert "cdn" not in page.lower() and "https://" not in page
        assert len(page) < 200_000  # plotly.js is referenced, not embedded
    index = (out / "index.html").read_text(encoding="utf-8")
    assert all(f'id="{name}-chart"' in index for name in charts)
    assert "<td>Users with ≥ 2 ratings</td><td>2 (66.7%)</td>" in index

    for name in charts:
        text = (out / f"{name}.json").read_text(encoding="utf-8")
        assert pio.from_json(text) == figures[name]
    assert json.loads((out / "eda_stats.json").read_text(encoding="utf-8")) == stats.to_dict()

    # Same figures, same bytes: a rewrite over the old report changes nothing.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write_eda_report(figures, stats, out, user_threshold=USER_T, movie_threshold=MOVIE_T)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "eda_stats.json"
    target.write_text("old")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic_files.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        charts.write_atomic(target, "new")
    assert [p.name for p in tmp_path.iterdir()] == ["eda_stats.json"]
    assert target.read_text() == "old"


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_stats(spark, shared_archive, tmp_path_factory) -> EdaStats:
    root = tmp_path_factory.mktemp("movielens")
    with zipfile.ZipFile(shared_archive) as archive:
        archive.extract("ml-latest-small/ratings.csv", root)
    ratings = spark.read.csv(
        str(root / "ml-latest-small" / "ratings.csv"),
        header=True,
        schema="userId int, movieId int, rating double, timestamp long",
    ).withColumn("rated_at", F.timestamp_seconds("timestamp"))
    return compute_eda(ratings)


@pytest.mark.realdata
def test_real_movielens_numbers(real_stats):
    s = real_stats
    assert (s.n_ratings, s.n_users, s.n_movies) == (105_339, 668, 10_325)
    assert s.rating_counts == [1198, 3258, 1567, 7943, 5484, 21729, 12237, 28880, 8187, 14856]
    assert s.mean_rating == pytest.approx(3.51685, abs=1e-5)
    assert (s.mode_rating, s.mode_share) == (4.0, 28_880 / 105_339)
    assert s.sparsity == 1 - 105_339 / (668 * 10_325)
    assert s.sparsity > 0.98
    # Every user of this sample has at least 20 ratings; most movies have very few.
    assert (s.per_user.min, s.per_user.median, s.per_user.max) == (20, 70.5, 5678)
    assert s.per_user.retained_share(15) == 1.0
    assert (s.per_movie.retained(10), s.per_movie.median, s.per_movie.max) == (2315, 3.0, 325)
    assert (s.first_rated_at, s.last_rated_at) == (
        "1996-04-03T20:55:54+00:00",
        "2016-01-10T05:48:39+00:00",
    )
    assert (s.years[0], s.years[-1], sum(s.year_counts)) == (1996, 2016, 105_339)
    assert s.year_counts[s.years.index(2000)] == 11_282


@pytest.mark.realdata
def test_real_movielens_report(real_stats, tmp_path):
    paths = write_eda_report(eda_figures(real_stats), real_stats, tmp_path)
    assert "index.html" in paths
    assert "Ratings per user: a long tail" in (tmp_path / "ratings_per_user.json").read_text()

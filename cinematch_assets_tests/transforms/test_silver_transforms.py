"""Silver cleaning: dedup with deterministic ties, drop reasons, genres, links, tags."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cinematch_assets.transforms.reconcile import (
    KEPT,
    REASON,
    kept_rows,
    reason_counts,
    reason_counts_by,
    total_counts,
)
from cinematch_assets.transforms.silver import (
    EMPTY_TAG,
    NO_TIMESTAMP,
    OFF_GRID,
    RELEASE_USER_IN_APP_RANGE,
    REMOVED,
    SUPERSEDED,
    UNKNOWN_MOVIE,
    annotate_ratings,
    annotate_tags,
    clean_links,
    clean_movies,
)

RATINGS = "userId int, movieId int, rating double, timestamp long"


@pytest.fixture(scope="module")
def movies(spark):
    return spark.createDataFrame(
        [
            (1, "Toy Story (1995)", "Adventure|Animation"),
            (2, "Jumanji (1995)", "Adventure"),
            (3, "Li'l Quinquin ", "(no genres listed)"),
        ],
        "movieId int, title string, genres string",
    )


@pytest.fixture(scope="module")
def annotated(spark, movies):
    ratings = spark.createDataFrame(
        [
            (1, 1, 3.0, 100),
            (1, 1, 4.5, 200),  # later: wins
            (1, 2, 2.0, 300),
            (1, 2, 5.0, 300),  # same second: the higher rating wins
            (1, 2, 5.0, 300),  # exact duplicate of the winner: superseded
            (2, 1, 7.0, 400),  # off the scale
            (2, 2, 3.25, 400),  # off the half-star grid
            (2, 3, float("nan"), 400),
            (2, 2, None, 500),  # no rating at all
            (2, 1, 4.0, None),  # no time: cannot be ordered
            (3, 99, 4.0, 100),  # unknown movie
            (3, 3, 0.5, 100),
            (4, 1, 1.0, 900),  # invalid later rating must not hide a valid earlier one
            (4, 1, 9.0, 901),
        ],
        RATINGS,
    )
    return annotate_ratings(ratings, movies).cache()


def test_dedup_keeps_latest_and_breaks_ties_deterministically(annotated):
    kept = {(r.userId, r.movieId): r.rating for r in kept_rows(annotated).collect()}
    assert kept == {(1, 1): 4.5, (1, 2): 5.0, (3, 3): 0.5, (4, 1): 1.0}


def test_every_row_is_kept_or_has_a_reason(annotated):
    counts = reason_counts(annotated)
    assert counts == {KEPT: 4, SUPERSEDED: 3, OFF_GRID: 5, NO_TIMESTAMP: 1, UNKNOWN_MOVIE: 1}
    assert sum(counts.values()) == annotated.count() == 14


def test_kept_ratings_have_timestamps_and_no_reason_column(annotated):
    kept = kept_rows(annotated)
    assert REASON not in kept.columns
    row = kept.filter("userId = 1 AND movieId = 1").first()
    assert row.timestamp == 200
    assert row.rated_at == datetime.fromtimestamp(200)  # PySpark returns naive local time


def test_dedup_is_independent_of_partitioning(spark, movies):
    rows = [(u, m, r, t) for u in range(1, 30) for m in (1, 2) for r, t in ((3.0, 5), (4.0, 5))]
    df = spark.createDataFrame(rows, RATINGS)
    one = sorted(kept_rows(annotate_ratings(df.repartition(1), movies)).collect())
    many = sorted(kept_rows(annotate_ratings(df.repartition(7, "rating"), movies)).collect())
    assert one == many
    assert {r.rating for r in one} == {4.0}


def test_movies_genres_become_arrays(movies):
    got = {r.movieId: r for r in clean_movies(movies).collect()}
    assert got[1].genres == ["Adventure", "Animation"]
    assert got[3].genres == []
    assert got[1].title_clean == "Toy Story" and got[1].release_year == 1995
    assert got[3].title_clean == "Li'l Quinquin" and got[3].release_year is None
    assert got[1].title == "Toy Story (1995)"  # original kept


def test_links_keep_zero_padded_imdb_ids(spark):
    links = spark.createDataFrame(
        [(1, "0114709", 862), (2, "113497", None), (3, "tt01", 5), (4, "12345678", 7)],
        "movieId int, imdbId string, tmdbId int",
    )
    got = {r.movieId: (r.imdbId, r.tmdbId) for r in clean_links(links).collect()}
    assert got == {1: ("0114709", 862), 2: ("0113497", None), 3: (None, 5), 4: ("12345678", 7)}


def test_tags_are_trimmed_and_grouped_case_insensitively(spark):
    tags = spark.createDataFrame(
        [
            (1, 1, " Sci-Fi ", 10),
            (2, 1, "sci-fi", 11),
            (3, 1, "Pixar  Animation", 12),
            (4, 1, "   ", 13),
            (5, 1, None, 14),
        ],
        "userId int, movieId int, tag string, timestamp long",
    )
    annotated = annotate_tags(tags)
    kept = {r.userId: (r.tag, r.tag_key) for r in kept_rows(annotated).collect()}
    assert kept == {
        1: ("Sci-Fi", "sci-fi"),
        2: ("sci-fi", "sci-fi"),
        3: ("Pixar  Animation", "pixar animation"),
    }
    assert reason_counts(annotated) == {KEPT: 3, EMPTY_TAG: 2}


APP_RATINGS = "userId long, movieId long, rating double, rated_at timestamp"
APP_USER, OTHER_APP_USER = 1_000_000_000, 1_000_000_001


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_app_ratings_merge_with_the_release_the_latest_winning(spark, movies):
    """A user rating in the app and a release user (read-only) side by side: an app rating
    is a rating like any, the latest of a pair wins across sources, a removal takes the
    pair out, and every row is counted under its source."""
    release = spark.createDataFrame(
        [(7, 1, 3.0, 100), (7, 2, 4.0, 100), (1_000_000_005, 1, 4.0, 100)], RATINGS
    )
    app = spark.createDataFrame(
        [
            (APP_USER, 1, 4.0, at(1000.25)),
            (APP_USER, 1, 2.5, at(1000.5)),  # changed half a second later: wins
            (APP_USER, 2, 5.0, at(1000.0)),
            (APP_USER, 2, None, at(1001.0)),  # removed
            (OTHER_APP_USER, 3, 3.5, at(900.0)),
            (OTHER_APP_USER, 3, None, at(800.0)),  # an older removal changes nothing
            (OTHER_APP_USER, 99, 4.0, at(900.0)),  # unknown movie
            (OTHER_APP_USER, 1, 4.2, at(900.0)),  # off the grid
        ],
        APP_RATINGS,
    )
    annotated = annotate_ratings(release, movies, app).cache()
    kept = {(r.userId, r.movieId): r.rating for r in kept_rows(annotated).collect()}
    assert kept == {(7, 1): 3.0, (7, 2): 4.0, (APP_USER, 1): 2.5, (OTHER_APP_USER, 3): 3.5}
    by_source = reason_counts_by(annotated, "source")
    assert by_source == {
        "movielens": {KEPT: 2, RELEASE_USER_IN_APP_RANGE: 1},
        "app": {KEPT: 2, SUPERSEDED: 3, REMOVED: 1, UNKNOWN_MOVIE: 1, OFF_GRID: 1},
    }
    assert sum(total_counts(by_source).values()) == annotated.count() == 11
    row = kept_rows(annotated).filter(f"userId = {APP_USER}").first()
    assert row.timestamp == 1000  # whole seconds, as the release's

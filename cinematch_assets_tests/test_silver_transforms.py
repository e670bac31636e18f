"""Silver cleaning: dedup with deterministic ties, drop reasons, genres, links, tags."""

from __future__ import annotations

from datetime import datetime

import pytest

from cinematch_assets.transforms.reconcile import KEPT, REASON, kept_rows, reason_counts
from cinematch_assets.transforms.silver import (
    EMPTY_TAG,
    NO_TIMESTAMP,
    OFF_GRID,
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

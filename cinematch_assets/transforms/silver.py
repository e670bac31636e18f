"""Silver: deduplicated, typed, parsed MovieLens tables.

Rows Silver does not keep are not silently dropped: the `annotate_*` functions mark every
Bronze row with the reason it is left out (see `reconcile`), so each Silver asset reports
Bronze rows = kept rows + dropped rows per reason, and Bronze keeps the originals.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cinematch_assets.transforms.quality import is_half_star
from cinematch_assets.transforms.reconcile import REASON, first_reason
from cinematch_assets.transforms.titles import parse_titles

OFF_GRID = "rating off the half-star grid [0.5, 5.0]"
NO_TIMESTAMP = "missing timestamp"
UNKNOWN_MOVIE = "movieId not in movies"
SUPERSEDED = "superseded by a later rating of the same movie by the same user"
EMPTY_TAG = "empty tag"

NO_GENRES = "(no genres listed)"
IMDB_ID_DIGITS = 7


def annotate_ratings(bronze_ratings: DataFrame, movies: DataFrame) -> DataFrame:
    """Every Bronze rating, typed, with `rated_at` and the reason it is dropped (or null).

    Kept: on the half-star grid, timed, of a known movie, and the most recent rating of each
    (userId, movieId). Ratings in the same second are ordered by rating, highest first,
    so the choice never depends on how Spark partitioned the data.
    """
    known = movies.select("movieId", F.lit(True).alias("_known")).distinct()
    ratings = bronze_ratings.select(
        "userId",
        "movieId",
        "rating",
        "timestamp",
        F.timestamp_seconds("timestamp").alias("rated_at"),
    ).join(known, on="movieId", how="left")
    invalid = first_reason(
        (~is_half_star(F.col("rating")), OFF_GRID),
        (F.col("timestamp").isNull(), NO_TIMESTAMP),
        (F.col("_known").isNull(), UNKNOWN_MOVIE),
    )
    # Rank only the valid ratings, so an invalid later rating never hides a valid one.
    latest_first = Window.partitionBy("userId", "movieId", F.col("_invalid").isNull()).orderBy(
        F.desc("timestamp"), F.desc("rating")
    )
    return (
        ratings.withColumn("_invalid", invalid)
        .withColumn(
            REASON,
            F.coalesce(
                F.col("_invalid"),
                F.when(F.row_number().over(latest_first) > 1, F.lit(SUPERSEDED)),
            ),
        )
        .select("userId", "movieId", "rating", "timestamp", "rated_at", REASON)
    )


def split_genres(genres: Column) -> Column:
    """ "Action|Adventure" -> ["Action", "Adventure"]; "(no genres listed)" or empty -> []."""
    parts = F.transform(F.split(F.coalesce(genres, F.lit("")), r"\|"), F.trim)
    return F.filter(parts, lambda g: (g != "") & (g != NO_GENRES))


def clean_movies(bronze_movies: DataFrame, *, max_year: int | None = None) -> DataFrame:
    """Titles parsed into title_clean, display_title and release_year; genres as an array."""
    return parse_titles(
        bronze_movies.select("movieId", "title", "genres"), "title", max_year=max_year
    ).withColumn("genres", split_genres(F.col("genres")))


def clean_links(bronze_links: DataFrame) -> DataFrame:
    """imdbId as IMDb's zero-padded string ("0114709"), tmdbId a nullable integer.

    A non-numeric imdbId becomes null rather than a wrong identifier.
    """
    imdb = F.trim("imdbId")
    # lpad would also cut longer ids (IMDb has 8-digit ones): pad short ids only.
    padded = F.when(F.length(imdb) < IMDB_ID_DIGITS, F.lpad(imdb, IMDB_ID_DIGITS, "0")).otherwise(
        imdb
    )
    return bronze_links.select(
        "movieId", F.when(imdb.rlike(r"^[0-9]+$"), padded).alias("imdbId"), "tmdbId"
    )


def annotate_tags(bronze_tags: DataFrame) -> DataFrame:
    """Tags trimmed (original case kept) plus `tag_key`, lower case with single spaces, for
    grouping "Sci-Fi " with "sci-fi". Empty tags are dropped."""
    tag = F.trim("tag")
    return bronze_tags.select(
        "userId",
        "movieId",
        tag.alias("tag"),
        F.lower(F.regexp_replace(tag, r"\s+", " ")).alias("tag_key"),
        "timestamp",
        F.timestamp_seconds("timestamp").alias("tagged_at"),
        first_reason((tag.isNull() | (tag == ""), EMPTY_TAG)).alias(REASON),
    )

"""Silver: deduplicated, typed, parsed MovieLens tables.

Rows Silver does not keep are not silently dropped: the `annotate_*` functions mark every
Bronze row with the reason it is left out (see `reconcile`), so each Silver asset reports
Bronze rows = kept rows + dropped rows per reason, and Bronze keeps the originals.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cinematch_assets.storage.app_ratings import APP_USERS_FROM
from cinematch_assets.transforms.quality import is_half_star
from cinematch_assets.transforms.reconcile import REASON, first_reason
from cinematch_assets.transforms.titles import parse_titles

OFF_GRID = "rating off the half-star grid [0.5, 5.0]"
NO_TIMESTAMP = "missing timestamp"
UNKNOWN_MOVIE = "movieId not in movies"
SUPERSEDED = "superseded by a later rating of the same movie by the same user"
REMOVED = "removed by its user in the app"
RELEASE_USER_IN_APP_RANGE = f"a release's userId in the app's range (from {APP_USERS_FROM})"
# Where a rating comes from: the MovieLens release, or the app's ratings table.
MOVIELENS, APP = "movielens", "app"
EMPTY_TAG = "empty tag"

NO_GENRES = "(no genres listed)"
IMDB_ID_DIGITS = 7


def annotate_ratings(
    bronze_ratings: DataFrame, movies: DataFrame, app_ratings: DataFrame | None = None
) -> DataFrame:
    """Every Bronze rating of both sources (the release's and, when given, the app's),
    typed, with `rated_at`, its `source` and the reason it is dropped (or null).

    Kept: on the half-star grid, timed, of a known movie, and the most recent rating of each
    (userId, movieId), whichever source it comes from. Ratings at the same instant are
    ordered by rating, highest first, so the choice never depends on how Spark partitioned
    the data. An app rating of null is a removal: when it is the most recent, the pair
    has no rating (it is dropped as `REMOVED`, the older ones as superseded). A release
    user in the app's id range is marked, for the asset to refuse the release.
    """
    known = movies.select("movieId", F.lit(True).alias("_known")).distinct()
    ratings = bronze_ratings.select(
        "userId",
        "movieId",
        "rating",
        "timestamp",
        F.timestamp_seconds("timestamp").alias("rated_at"),
        F.lit(MOVIELENS).alias("source"),
    )
    if app_ratings is not None:
        ratings = ratings.unionByName(
            app_ratings.select(
                F.col("userId").cast("int").alias("userId"),
                F.col("movieId").cast("int").alias("movieId"),
                "rating",
                F.unix_seconds("rated_at").alias("timestamp"),
                "rated_at",
                F.lit(APP).alias("source"),
            )
        )
    removal = F.col("rating").isNull() & (F.col("source") == APP)
    invalid = first_reason(
        (
            (F.col("source") == MOVIELENS) & (F.col("userId") >= APP_USERS_FROM),
            RELEASE_USER_IN_APP_RANGE,
        ),
        (~is_half_star(F.col("rating")) & ~removal, OFF_GRID),
        (F.col("timestamp").isNull(), NO_TIMESTAMP),
        (F.col("_known").isNull(), UNKNOWN_MOVIE),
    )
    # Rank only the valid ratings, so an invalid later rating never hides a valid one.
    latest_first = Window.partitionBy("userId", "movieId", F.col("_invalid").isNull()).orderBy(
        F.desc("rated_at"), F.desc_nulls_last("rating")
    )
    latest = F.row_number().over(latest_first) == 1
    return (
        ratings.join(known, on="movieId", how="left")
        .withColumn("_invalid", invalid)
        .withColumn(
            REASON,
            F.coalesce(
                F.col("_invalid"),
                F.when(~latest, F.lit(SUPERSEDED)),
                F.when(F.col("rating").isNull(), F.lit(REMOVED)),
            ),
        )
        .select("userId", "movieId", "rating", "timestamp", "rated_at", "source", REASON)
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

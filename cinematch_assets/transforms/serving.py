"""Serving tables built from Silver: the movie catalog the app shows and searches, and each
user's highest-rated movies (what explanations point at)."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

CATALOG_TAGS = 3
PROFILE_SIZE = 10


def bayesian_prior(ratings: DataFrame) -> tuple[float, float]:
    """(prior mean, prior strength) of the Bayesian average: the mean of all ratings, and
    the mean number of ratings per rated movie. A movie's average is pulled toward the
    overall mean as if it had that many extra ratings at the mean, so a handful of 5-star
    ratings cannot outrank a film hundreds of people rated 4.4."""
    row = ratings.agg(
        F.avg("rating").alias("mean"),
        (F.count("*") / F.greatest(F.countDistinct("movieId"), F.lit(1))).alias("strength"),
    ).first()
    return float(row["mean"] or 0.0), float(row["strength"] or 0.0)


def movie_catalog(
    movies: DataFrame, links: DataFrame, ratings: DataFrame, tags: DataFrame
) -> tuple[DataFrame, dict[str, float]]:
    """Every Silver movie with display title, year, genres, tmdbId/imdbId, its most used
    tags, rating count, community average and Bayesian average (and the prior used)."""
    prior_mean, strength = bayesian_prior(ratings)
    stats = ratings.groupBy("movieId").agg(
        F.count("*").alias("rating_count"),
        F.avg("rating").alias("avg_rating"),
        F.sum("rating").alias("_sum"),
    )
    top_tags = (
        tags.groupBy("movieId", "tag_key")
        .agg(F.countDistinct("userId").alias("_users"), F.min("tag").alias("tag"))
        .withColumn(
            "_rank",
            F.row_number().over(Window.partitionBy("movieId").orderBy(F.desc("_users"), "tag_key")),
        )
        .filter(F.col("_rank") <= CATALOG_TAGS)
        .groupBy("movieId")
        .agg(F.sort_array(F.collect_list(F.struct("_rank", "tag"))).alias("_tags"))
        .select("movieId", F.col("_tags.tag").alias("tags"))
    )
    count = F.coalesce(F.col("rating_count"), F.lit(0)).cast("long")
    catalog = (
        movies.join(links, "movieId", "left")
        .join(stats, "movieId", "left")
        .join(top_tags, "movieId", "left")
        .select(
            "movieId",
            "display_title",
            "title",
            "release_year",
            "genres",
            "tmdbId",
            "imdbId",
            F.coalesce("tags", F.array().cast("array<string>")).alias("tags"),
            count.alias("rating_count"),
            F.col("avg_rating"),
            (
                (F.lit(strength * prior_mean) + F.coalesce(F.col("_sum"), F.lit(0.0)))
                / (F.lit(strength) + count)
            ).alias("bayesian_avg"),
        )
    )
    return catalog, {"prior_mean": prior_mean, "prior_strength": strength}


def user_profiles(ratings: DataFrame, size: int = PROFILE_SIZE) -> DataFrame:
    """Each user's `size` highest-rated movies (latest first among equal stars):
    userId, rank, movieId, rating, rated_at."""
    order = Window.partitionBy("userId").orderBy(
        F.desc("rating"), F.desc("timestamp"), F.asc("movieId")
    )
    return (
        ratings.withColumn("rank", F.row_number().over(order))
        .filter(F.col("rank") <= size)
        .select("userId", "rank", "movieId", "rating", "rated_at")
    )

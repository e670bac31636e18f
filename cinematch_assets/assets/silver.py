"""Silver: cleaned, deduplicated, typed tables. Every dropped row is counted by reason."""

from dagster import AssetExecutionContext, AssetIn, Failure, asset
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cinematch_assets import keys
from cinematch_assets.storage.app_ratings import APP_USERS_FROM
from cinematch_assets.transforms.reconcile import (
    kept_rows,
    reason_counts,
    reason_counts_by,
    reconciliation_metadata,
    total_counts,
)
from cinematch_assets.transforms.silver import (
    RELEASE_USER_IN_APP_RANGE,
    annotate_ratings,
    annotate_tags,
    clean_links,
    clean_movies,
)

SILVER = {"group_name": "silver", "kinds": {"spark", "delta"}}


@asset(
    key=keys.MOVIES_CLEAN,
    ins={"movies": AssetIn(keys.bronze("movies"))},
    description="Movies with title_clean, display_title ('The Big Bang Theory') and "
    "release_year parsed from the title (null when absent), genres as an array.",
    **SILVER,
)
def movies_clean(context: AssetExecutionContext, movies: DataFrame) -> DataFrame:
    clean = clean_movies(movies)
    summary = clean.agg(
        F.count("*").alias("movies"),
        F.count_if(F.col("release_year").isNull()).alias("without_year"),
        F.count_if(F.size("genres") == 0).alias("without_genres"),
        F.min("release_year").alias("earliest_year"),
        F.max("release_year").alias("latest_year"),
    ).first()
    context.add_output_metadata({k: v for k, v in summary.asDict().items() if v is not None})
    return clean


@asset(
    key=keys.RATINGS_CLEAN,
    ins={
        "ratings": AssetIn(keys.BRONZE_RATINGS),
        "app_ratings": AssetIn(keys.BRONZE_APP_RATINGS),
        "movies": AssetIn(keys.MOVIES_CLEAN),
    },
    description="One rating per (userId, movieId) from the release and the app, the most "
    "recent (ties: the higher rating; an app removal takes the pair out), on the half-star "
    "grid, of a known movie, with rated_at as a UTC timestamp.",
    **SILVER,
)
def ratings_clean(
    context: AssetExecutionContext, ratings: DataFrame, app_ratings: DataFrame, movies: DataFrame
) -> DataFrame:
    annotated = annotate_ratings(ratings, movies, app_ratings)
    by_source = reason_counts_by(annotated, "source")
    total = total_counts(by_source)
    if clash := total.get(RELEASE_USER_IN_APP_RANGE):
        raise Failure(
            f"{clash:,} ratings of the MovieLens release have a userId from {APP_USERS_FROM:,} "
            "up, where the app numbers its own users: the two would mix. Nothing was written."
        )
    context.add_output_metadata(
        reconciliation_metadata(total)
        | {"by_source": {s: reconciliation_metadata(c) for s, c in sorted(by_source.items())}}
    )
    return kept_rows(annotated).drop("source")


@asset(
    key=keys.TAGS_CLEAN,
    ins={"tags": AssetIn(keys.bronze("tags"))},
    description="Tags trimmed (original case kept) with tag_key (lower case, single spaces) "
    "for grouping, and tagged_at as a UTC timestamp. Empty tags are dropped and counted.",
    **SILVER,
)
def tags_clean(context: AssetExecutionContext, tags: DataFrame) -> DataFrame:
    annotated = annotate_tags(tags)
    context.add_output_metadata(reconciliation_metadata(reason_counts(annotated)))
    return kept_rows(annotated)


@asset(
    key=keys.LINKS_CLEAN,
    ins={"links": AssetIn(keys.bronze("links"))},
    description="movieId -> imdbId (IMDb's zero-padded string) and tmdbId (nullable integer, "
    "used for posters).",
    **SILVER,
)
def links_clean(context: AssetExecutionContext, links: DataFrame) -> DataFrame:
    clean = clean_links(links)
    summary = clean.agg(
        F.count_if(F.col("tmdbId").isNull()).alias("without_tmdb_id"),
        F.count_if(F.col("imdbId").isNull()).alias("without_imdb_id"),
    ).first()
    context.add_output_metadata(summary.asDict())
    return clean

"""Serving tables built from Silver: the movie catalog the app shows and searches, and each
user's highest-rated movies; and the served lists exported as the app's JSON shards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, Row, Window
from pyspark.sql import functions as F

from cinematch_assets.storage.serving_files import NEW_FOR_YOU, Ratings, write_json_shard

CATALOG_TAGS = 3
PROFILE_SIZE = 10
SHARD_INPUT = pa.schema(
    [("shard", pa.int32()), ("userId", pa.int32()), ("rank", pa.int32()), ("movieId", pa.int32()),
     ("score", pa.float32()), ("pred_rating", pa.float32()), ("reason", pa.int32()),
     ("new", pa.bool_()), ("row", pa.int32()), ("by_title", pa.bool_()), ("fresh", pa.bool_()),
     ("stars", pa.float32())]
)  # fmt: skip
# The rows of a user's served entries, in their order: the top-n, then "New for you"; and
# the user's own ratings (`stars`), which go beside the lists, not in them.
TOP_ROW, NEW_FOR_YOU_ROW, RATED_ROW = 0, 1, 2


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


def write_json_shards(
    recommendations: DataFrame,
    directory: Path,
    shards: int,
    new_for_you: DataFrame | None = None,
    ratings: DataFrame | None = None,
) -> list[Row]:
    """The serving JSON of `recommendations` (userId, rank, movieId, pred_rating, score,
    reason, new: marked only when true) and then each user's `new_for_you` row (the same
    columns but `new`, and by_title, fresh), its entries marked "row": "new_for_you" (and
    "by_title" when the reason is a film whose title it shares, "fresh" for a recent
    release), one file per shard
    (userId modulo `shards`), with each listed user's `ratings` (userId, movieId, rating)
    beside it, written by the executors into `directory` (a path every executor sees, as
    the lake is). Returns (shard, users, bytes) per file."""
    target = str(directory)

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # A shard may span several Arrow batches of its partition: gather them first.
        # Cast: the top list's literal columns arrive as non-nullable, the row's nullable.
        table = pa.Table.from_batches([b.cast(SHARD_INPUT) for b in batches], schema=SHARD_INPUT)
        table = table.sort_by(
            [("shard", "ascending"), ("userId", "ascending"), ("row", "ascending"),
             ("rank", "ascending"), ("movieId", "ascending")]
        )  # fmt: skip
        rated = pc.equal(table.column("row"), RATED_ROW)
        ratings, table = table.filter(rated), table.filter(pc.invert(rated))
        shards = table.column("shard").to_numpy()
        rated_shards = ratings.column("shard").to_numpy()
        written = []
        for shard in np.unique(shards):
            start, stop = np.searchsorted(shards, [shard, shard + 1])
            rows = table.slice(start, stop - start)
            start, stop = np.searchsorted(rated_shards, [shard, shard + 1])
            mine = ratings.slice(start, stop - start)
            given = Ratings(
                *(mine.column(c).to_numpy().astype(np.int64) for c in ("userId", "movieId")),
                mine.column("stars").to_numpy().astype(np.float64),
            )
            lists: dict[str, list[dict]] = {}
            for user, movie, stars, score, reason, new, row, by_title, fresh in zip(
                rows.column("userId").to_pylist(),
                rows.column("movieId").to_pylist(),
                pc.round(rows.column("pred_rating").cast(pa.float64()), 2).to_pylist(),
                pc.round(rows.column("score").cast(pa.float64()), 4).to_pylist(),
                rows.column("reason").to_pylist(),
                rows.column("new").fill_null(False).to_pylist(),
                rows.column("row").to_pylist(),
                rows.column("by_title").fill_null(False).to_pylist(),
                rows.column("fresh").fill_null(False).to_pylist(),
                strict=True,
            ):
                entry = {"movieId": movie, "pred_rating": stars, "score": score, "reason": reason}
                entry |= {"new": True} if new else {}
                entry |= {"row": NEW_FOR_YOU} if row == NEW_FOR_YOU_ROW else {}
                entry |= {"by_title": True} if by_title else {}
                entry |= {"fresh": True} if fresh else {}
                lists.setdefault(str(user), []).append(entry)
            size = write_json_shard(Path(target), int(shard), lists, given)
            written.append((int(shard), len(lists), size))
        yield pa.RecordBatch.from_pylist(
            [dict(zip(("shard", "users", "bytes"), w, strict=True)) for w in written],
            schema=pa.schema([("shard", pa.int32()), ("users", pa.int32()), ("bytes", pa.int64())]),
        )

    Path(directory).mkdir(parents=True, exist_ok=True)
    no_stars = F.lit(None).cast("float").alias("stars")
    entries = recommendations.select(
        "userId", "rank", "movieId", "score", "pred_rating", "reason", "new",
        F.lit(TOP_ROW).alias("row"), F.lit(False).alias("by_title"), F.lit(False).alias("fresh"),
        no_stars,
    )  # fmt: skip
    if new_for_you is not None:
        entries = entries.unionByName(
            new_for_you.select(
                "userId", "rank", "movieId", "score", "pred_rating", "reason",
                F.lit(True).alias("new"), F.lit(NEW_FOR_YOU_ROW).alias("row"), "by_title",
                "fresh", no_stars,
            )
        )  # fmt: skip
    if ratings is not None:
        nothing = F.lit(None)
        entries = entries.unionByName(
            ratings.select(
                "userId", F.lit(0).alias("rank"), "movieId", nothing.cast("float").alias("score"),
                nothing.cast("float").alias("pred_rating"), nothing.cast("int").alias("reason"),
                F.lit(False).alias("new"), F.lit(RATED_ROW).alias("row"),
                F.lit(False).alias("by_title"), F.lit(False).alias("fresh"),
                F.col("rating").cast("float").alias("stars"),
            )
        )  # fmt: skip
    keyed = entries.select(
        (F.col("userId") % F.lit(shards)).cast("int").alias("shard"), *entries.columns
    )
    # Every row of a shard in one partition, so exactly one task writes each file.
    return (
        keyed.repartition(shards, "shard")
        .mapInArrow(write, "shard int, users int, bytes long")
        .collect()
    )

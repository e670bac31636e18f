"""What every user is shown: the ranking model's top-n among the movies they never rated,
each with the rating model's stars and the reason ("because you rated X highly").

One `mapInPandas` pass over blocks of users does all three in numpy against item arrays
shipped once with the function: the ranking model's factors, and the rating model's
biases and factors aligned to the same movies. The block is scored with one matrix
product (`scoring.top_n`, one BLAS thread per Python worker), so nothing is joined per
(user, movie) pair.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from cinematch_assets.conventions import MAX_RATING, MIN_RATING
from cinematch_assets.ml.foldin import reasons
from cinematch_assets.ml.metrics import RELEVANT_RATING
from cinematch_assets.ml.ranking import RankingModel
from cinematch_assets.ml.rating import RatingModel
from cinematch_assets.ml.scoring import top_n
from cinematch_assets.ml.topn import item_matrix, positions_in
from cinematch_assets.resources.serving_files import write_json_shard

SERVING_SCHEMA = "userId int, rank int, movieId int, score float, pred_rating float, reason int"


def aligned(ids: np.ndarray, other_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` (rows for `other_ids`, sorted) reordered to `ids`; zeros where missing."""
    out = np.zeros((len(ids), *values.shape[1:]), dtype=np.float32)
    at = np.searchsorted(other_ids, ids).clip(0, max(len(other_ids) - 1, 0))
    found = (other_ids[at] == ids) if len(other_ids) else np.zeros(len(ids), bool)
    out[found] = values[at[found]]
    return out


def liked_movies(movies: np.ndarray, stars: np.ndarray) -> np.ndarray:
    """The movies a user rated highly (>= 4 stars), or their best-rated ones if none is."""
    if len(stars) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(movies, dtype=np.int64)[stars >= min(RELEVANT_RATING, stars.max())]


def recommend_for_serving(
    ranking: RankingModel, rating: RatingModel, rated: DataFrame, n: int
) -> DataFrame:
    """For every user of the ranking model: (userId, rank 1..n, movieId, score,
    pred_rating, reason), never a movie in `rated` (userId, movieId, rating), the user's
    every rating. `reason` is the movie among those they rated highly whose ranking factor
    is most similar to the recommended one's (null when they rated none of the model's)."""
    ids, items, _ = item_matrix(ranking.items)
    rating_ids, rating_items, rating_bias = item_matrix(rating.items, bias="bias")
    star_items = aligned(ids, rating_ids, rating_items)
    star_bias = aligned(ids, rating_ids, rating_bias)
    global_mean = float(rating.global_mean)
    # Each user's rated movies and their stars as two aligned arrays (one sorted list of
    # pairs, split), which Arrow hands to numpy without a Python object per rating.
    pairs = F.array_sort(F.collect_list(F.struct("movieId", "rating")))
    history = (
        rated.groupBy("userId")
        .agg(pairs.alias("_pairs"))
        .select(
            "userId",
            F.col("_pairs.movieId").alias("_movies"),
            F.col("_pairs.rating").alias("_stars"),
        )
    )
    users = (
        ranking.users.join(
            rating.users.select(
                "userId", F.col("bias").alias("_bias"), F.col("features").alias("_factors")
            ),
            "userId",
            "left",
        )
        .join(history, "userId", "left")
        .select("userId", "features", "_bias", "_factors", "_movies", "_stars")
    )
    rank = items.shape[1]
    star_rank = star_items.shape[1]

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            vectors = _stack(batch["features"], rank)
            movies = [_array(m, np.int64) for m in batch["_movies"]]
            stars_given = [_array(s, np.float64) for s in batch["_stars"]]
            positions, scores = top_n(
                vectors, items, n, exclude=[positions_in(ids, m) for m in movies]
            )
            # Stars: global mean + user bias + movie bias + u.v of the rating model.
            star_users = _stack(batch["_factors"], star_rank)
            safe = positions.clip(0)
            stars = (
                global_mean
                + batch["_bias"].fillna(0.0).to_numpy()[:, None]
                + star_bias[safe]
                + np.einsum("uk,unk->un", star_users, star_items[safe])
            ).clip(MIN_RATING, MAX_RATING)
            why = np.full(positions.shape, -1, dtype=np.int64)
            for row, (rated_movies, given) in enumerate(zip(movies, stars_given, strict=True)):
                liked = positions_in(ids, liked_movies(rated_movies, given))
                found = positions[row] >= 0
                why[row, found] = reasons(items, positions[row, found], liked)
            found = positions >= 0
            yield pd.DataFrame(
                {
                    "userId": np.repeat(batch["userId"].to_numpy(), n)[found.ravel()],
                    "rank": np.tile(np.arange(1, n + 1), len(batch))[found.ravel()],
                    "movieId": ids[positions[found]],
                    "score": scores[found],
                    "pred_rating": stars[found].astype(np.float32),
                    "reason": pd.Series(ids[why[found].clip(0)], dtype="Int32").mask(
                        why[found] < 0
                    ),
                }
            )

    return users.mapInPandas(score, SERVING_SCHEMA)


def _array(values, dtype) -> np.ndarray:
    return np.zeros(0, dtype) if values is None else np.asarray(values, dtype=dtype)


def _stack(column: pd.Series, rank: int) -> np.ndarray:
    """Factor arrays as a matrix; a missing array (the user is not in that model) is 0."""
    out = np.zeros((len(column), rank), dtype=np.float32)
    for row, vector in enumerate(column):
        if vector is not None and len(vector) == rank:
            out[row] = vector
    return out


def write_json_shards(recommendations: DataFrame, directory: Path, shards: int) -> list[Row]:
    """The serving JSON of `recommendations` (userId, rank, movieId, pred_rating, score,
    reason), one file per shard (userId modulo `shards`), written by the executors into
    `directory` (a path every executor sees, as the lake is). Returns (shard, users,
    bytes) per file."""
    target = str(directory)

    def write(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # A shard may span several Arrow batches of its partition: gather them first.
        frames = [batch for batch in batches if len(batch)]
        written = []
        for key, rows in pd.concat(frames).groupby("shard") if frames else []:
            shard = int(key)
            lists = {
                str(user): [
                    {
                        "movieId": int(r.movieId),
                        "pred_rating": round(float(r.pred_rating), 2),
                        "score": round(float(r.score), 4),
                        "reason": None if pd.isna(r.reason) else int(r.reason),
                    }
                    for r in group.itertuples()
                ]
                for user, group in rows.sort_values(["userId", "rank"]).groupby("userId")
            }
            written.append((shard, len(lists), write_json_shard(Path(target), shard, lists)))
        yield pd.DataFrame(written, columns=["shard", "users", "bytes"])

    Path(directory).mkdir(parents=True, exist_ok=True)
    keyed = recommendations.withColumn("shard", F.col("userId") % F.lit(shards))
    # Every row of a shard in one partition, so exactly one task writes each file.
    return (
        keyed.repartition(shards, "shard")
        .mapInPandas(write, "shard int, users int, bytes long")
        .collect()
    )

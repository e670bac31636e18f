"""What every user is shown: the ranking model's top-n among the movies they never rated,
each with the rating model's stars and the reason ("because you rated X highly").

One `mapInArrow` pass over blocks of users does all three in numpy against item arrays
shipped once with the function: the ranking model's factors, and the rating model's
biases and factors aligned to the same movies. The block is scored with one matrix
product (`scoring.top_n`, one BLAS thread per Python worker), so nothing is joined per
(user, movie) pair.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from cinematch_assets.conventions import LIKED_STARS, MAX_RATING, MIN_RATING
from cinematch_assets.ml.ranking import RankingModel
from cinematch_assets.ml.rating import RatingModel
from cinematch_assets.ml.scoring import position_of, top_n
from cinematch_assets.ml.topn import item_matrix
from cinematch_assets.resources.serving_files import write_json_shard

SERVING_SCHEMA = "userId int, rank int, movieId int, score float, pred_rating float, reason int"
SHARD_INPUT = pa.schema(
    [("shard", pa.int32()), ("userId", pa.int32()), ("rank", pa.int32()), ("movieId", pa.int32()),
     ("score", pa.float32()), ("pred_rating", pa.float32()), ("reason", pa.int32())]
)  # fmt: skip


def aligned(ids: np.ndarray, other_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` (rows for `other_ids`, sorted) reordered to `ids`; zeros where missing."""
    out = np.zeros((len(ids), *values.shape[1:]), dtype=np.float32)
    at = position_of(other_ids, ids)
    out[at >= 0] = values[at[at >= 0]]
    return out


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
    # Two lists filled row by row in the same aggregation, so their orders match.
    history = rated.groupBy("userId").agg(
        F.collect_list("movieId").alias("_movies"), F.collect_list("rating").alias("_stars")
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
    rank, star_rank = items.shape[1], star_items.shape[1]

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            users = len(batch)
            movies, owners = _flat(batch.column("_movies"))
            stars_given, _ = _flat(batch.column("_stars"))
            at = position_of(ids, movies)
            known = at >= 0
            excluded = np.split(at[known], np.cumsum(np.bincount(owners[known], minlength=users)))
            positions, scores = top_n(_matrix(batch.column("features"), rank), items, n,
                                      exclude=excluded[:users])  # fmt: skip
            # Stars: global mean + user bias + movie bias + u.v of the rating model.
            safe = positions.clip(0)
            user_bias = batch.column("_bias").to_numpy(zero_copy_only=False)
            stars = (
                global_mean
                + np.nan_to_num(user_bias.astype(np.float64))[:, None]
                + star_bias[safe]
                + np.einsum("uk,unk->un", _matrix(batch.column("_factors"), star_rank),
                            star_items[safe])
            ).clip(MIN_RATING, MAX_RATING)  # fmt: skip
            favourite = known & (stars_given >= LIKED_STARS)
            why = reasons_for(items, positions, at[favourite], owners[favourite])
            found = (positions >= 0).ravel()
            chosen = positions.ravel()[found]
            because = why.ravel()[found]
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(np.repeat(batch.column("userId").to_numpy(), n)[found]),
                    pa.array(np.tile(np.arange(1, n + 1, dtype=np.int32), users)[found]),
                    pa.array(ids[chosen].astype(np.int32)),
                    pa.array(scores.ravel()[found]),
                    pa.array(stars.ravel()[found].astype(np.float32)),
                    pa.array(ids[because.clip(0)].astype(np.int32), mask=because < 0),
                ],
                names=["userId", "rank", "movieId", "score", "pred_rating", "reason"],
            )

    return users.mapInArrow(score, SERVING_SCHEMA)


def reasons_for(
    items: np.ndarray, recommended: np.ndarray, liked_at: np.ndarray, liked_by: np.ndarray
) -> np.ndarray:
    """`foldin.reasons` for a block of users at once: for each user's recommended
    positions (users x n, -1 = none), the position among the user's liked ones
    (`liked_at`, owned by row `liked_by`, sorted by row) whose factor is most similar;
    -1 when the user liked none."""
    why = np.full(recommended.shape, -1, dtype=np.int64)
    if len(liked_at) == 0:
        return why
    norms = np.linalg.norm(items, axis=1, keepdims=True)
    unit = items / np.where(norms > 0, norms, 1.0)
    rows = np.unique(liked_by)
    starts = np.searchsorted(liked_by, rows)
    liked_unit = unit[liked_at]
    for column in range(recommended.shape[1]):
        similarity = np.einsum("ek,ek->e", liked_unit, unit[recommended[liked_by, column].clip(0)])
        best = np.maximum.reduceat(similarity, starts)
        # The first liked movie (in the user's order) that reaches the best similarity.
        hits = np.where(similarity >= best[np.searchsorted(rows, liked_by)],
                        np.arange(len(liked_at)), len(liked_at))  # fmt: skip
        why[rows, column] = liked_at[np.minimum.reduceat(hits, starts)]
    return np.where(recommended >= 0, why, -1)


def _flat(column: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
    """A list column's values and, for each value, the row it belongs to (null = empty)."""
    lengths = column.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values, np.repeat(np.arange(len(column)), lengths)


def _matrix(column: pa.ListArray, rank: int) -> np.ndarray:
    """Factor arrays as a users x rank matrix; a null (user not in that model) is zeros."""
    out = np.zeros((len(column), rank), dtype=np.float32)
    present = column.is_valid().to_numpy(zero_copy_only=False)
    if rank and present.any():
        out[present] = column.filter(column.is_valid()).flatten().to_numpy().reshape(-1, rank)
    return out


def write_json_shards(recommendations: DataFrame, directory: Path, shards: int) -> list[Row]:
    """The serving JSON of `recommendations` (userId, rank, movieId, pred_rating, score,
    reason), one file per shard (userId modulo `shards`), written by the executors into
    `directory` (a path every executor sees, as the lake is). Returns (shard, users,
    bytes) per file."""
    target = str(directory)

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # A shard may span several Arrow batches of its partition: gather them first.
        table = pa.Table.from_batches(list(batches), schema=SHARD_INPUT)
        table = table.sort_by(
            [("shard", "ascending"), ("userId", "ascending"), ("rank", "ascending")]
        )
        shards = table.column("shard").to_numpy()
        written = []
        for shard in np.unique(shards):
            start, stop = np.searchsorted(shards, [shard, shard + 1])
            rows = table.slice(start, stop - start)
            lists: dict[str, list[dict]] = {}
            for user, movie, stars, score, reason in zip(
                rows.column("userId").to_pylist(),
                rows.column("movieId").to_pylist(),
                pc.round(rows.column("pred_rating").cast(pa.float64()), 2).to_pylist(),
                pc.round(rows.column("score").cast(pa.float64()), 4).to_pylist(),
                rows.column("reason").to_pylist(),
                strict=True,
            ):
                lists.setdefault(str(user), []).append(
                    {"movieId": movie, "pred_rating": stars, "score": score, "reason": reason}
                )
            size = write_json_shard(Path(target), int(shard), lists)
            written.append((int(shard), len(lists), size))
        yield pa.RecordBatch.from_pylist(
            [dict(zip(("shard", "users", "bytes"), w, strict=True)) for w in written],
            schema=pa.schema([("shard", pa.int32()), ("users", pa.int32()), ("bytes", pa.int64())]),
        )

    Path(directory).mkdir(parents=True, exist_ok=True)
    keyed = recommendations.select(
        (F.col("userId") % F.lit(shards)).cast("int").alias("shard"),
        "userId", "rank", "movieId", "score", "pred_rating", "reason",
    )  # fmt: skip
    # Every row of a shard in one partition, so exactly one task writes each file.
    return (
        keyed.repartition(shards, "shard")
        .mapInArrow(write, "shard int, users int, bytes long")
        .collect()
    )

"""The list builder on Spark: blocks of users scored on the executors with `lists`, against
movie arrays collected to the driver once and shipped with the function (Spark broadcasts
a large function itself: 22 MB for 86k movies at rank 64); users never leave the
executors. `mapInArrow` hands each block over as flat Arrow arrays, so nothing is joined
per (user, movie) pair and no Python object is made per rating.

`served_lists` is what users see and what the held-out evaluation scores: the same call,
with every known rating left out for serving and the training ratings for the evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cinematch_assets.conventions import LIKED_STARS, SHOWN
from cinematch_assets.ml.arrays import position_of
from cinematch_assets.ml.lists.build import (
    EaseItems,
    EaseRanker,
    FactorRanker,
    GenreTaste,
    ListPolicy,
    ModelItems,
    NewMovies,
    NewSlots,
    Ranker,
    UserBlock,
    build_lists_each,
)
from cinematch_assets.ml.models.als import FACTORS, empty_factors
from cinematch_assets.ml.models.ease import EaseModel
from cinematch_assets.ml.models.foldin import RatingTerms
from cinematch_assets.ml.models.ranking import RankingModel
from cinematch_assets.ml.models.rating import RatingModel
from cinematch_assets.ml.models.rp3 import RP3Model

LIST_SCHEMA = (
    "userId int, rank int, movieId int, score float, pred_rating float, reason int, new boolean"
)
# The "New for you" row: `by_title` marks a reason that is a film whose title it shares,
# `fresh` a recent release (the others: older films with too few ratings for the models).
NEW_FOR_YOU_SCHEMA = (
    "userId int, rank int, movieId int, score float, pred_rating float, reason int, "
    "by_title boolean, fresh boolean"
)  # fmt: skip


def item_matrix(
    items: DataFrame, *, bias: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`items` (movieId, features[, bias]) on the driver: sorted ids, factor matrix, bias."""
    columns = ["movieId", "features", *([bias] if bias else [])]
    rows = items.select(*columns).orderBy("movieId").toPandas()
    ids = rows["movieId"].to_numpy(dtype=np.int64)
    rank = len(rows["features"].iloc[0]) if len(rows) else 0
    matrix = (
        np.stack(rows["features"].to_numpy()).astype(np.float32)
        if len(rows)
        else np.zeros((0, rank), np.float32)
    )
    return ids, matrix, rows[bias].to_numpy(dtype=np.float32) if bias else None


def aligned(ids: np.ndarray, other_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` (rows for `other_ids`, sorted) reordered to `ids`; zeros where missing."""
    out = np.zeros((len(ids), *values.shape[1:]), dtype=np.float32)
    at = position_of(other_ids, ids)
    out[at >= 0] = values[at[at >= 0]]
    return out


def ease_items_on(model: EaseModel, movie_ids: np.ndarray) -> EaseItems:
    """EASE's B placed among `movie_ids` (which hold every movie it kept)."""
    kept = position_of(movie_ids, model.movie_ids)
    if (kept < 0).any():
        raise ValueError("EASE knows movies the other models do not")
    return EaseItems(kept, model.weights)


def ease_ranker(model: EaseModel | RP3Model) -> EaseRanker:
    """A ranker over EASE's kept movies only (for tuning and the evaluation's lists), or
    over another item-item model's (RP3beta: the same sums of weights)."""
    return EaseRanker(model.movie_ids, np.arange(len(model.movie_ids)), model.weights)


def factor_ranker(items: DataFrame, *, bias: str | None = None) -> FactorRanker:
    """A ranker by `items`' factors (and the `bias` column, when named)."""
    ids, matrix, item_bias = item_matrix(items, bias=bias)
    return FactorRanker(ids, matrix, item_bias)


def popularity_of(ids: np.ndarray, rows: DataFrame) -> np.ndarray:
    """z-scored log(1 + ratings in `rows`) of each movie of `ids`: what the popularity
    penalty subtracts."""
    counts = rows.groupBy("movieId").count().toPandas()
    count = np.zeros(len(ids))
    at = position_of(ids, counts["movieId"].to_numpy())
    count[at[at >= 0]] = counts["count"].to_numpy()[at >= 0]
    logged = np.log1p(count)
    spread = logged.std()
    return ((logged - logged.mean()) / (spread if spread > 0 else 1.0)).astype(np.float32)


def genre_taste(ids: np.ndarray, movies: DataFrame, train: DataFrame) -> GenreTaste:
    """The genres of the movies `ids` (from `movies`: movieId, genres) and the share of
    `train`'s liked ratings whose movie has each (one pseudo-rating with and one without,
    so that no share is 0 or 1)."""
    rows = movies.select("movieId", "genres").toPandas()
    rows = rows[rows["movieId"].isin(ids)]
    names = sorted({g for genres in rows["genres"] if genres is not None for g in genres})
    code = {name: i for i, name in enumerate(names)}
    genres = np.zeros((len(ids), len(names)), np.float32)
    for at, listed in zip(position_of(ids, rows["movieId"]), rows["genres"], strict=True):
        genres[at, [code[g] for g in (listed if listed is not None else [])]] = 1.0
    liked = train.filter(F.col("rating") >= LIKED_STARS).groupBy("movieId").count().toPandas()
    at = position_of(ids, liked["movieId"].to_numpy())
    counts = np.zeros(len(ids))
    counts[at[at >= 0]] = liked["count"].to_numpy()[at >= 0]
    base = (counts @ genres + 1.0) / (counts.sum() + 2.0)
    return GenreTaste(genres, base.astype(np.float64))


def model_items(
    ranking: RankingModel,
    rating: RatingModel,
    train: DataFrame,
    *,
    policy: ListPolicy | None = None,
    ease: EaseModel | None = None,
    new: NewMovies | None = None,
    movies: DataFrame | None = None,
) -> ModelItems:
    """Every model's movie side on the ranking model's movies, on the driver, with the
    popularity of `train`, the served order `policy`, EASE's weights when `ease` is
    given (pass it when some policy ranks with it), the `new` movies lists make room
    for and, with `movies` (movieId, genres), the genre taste."""
    policy = policy or ListPolicy()
    ids, items, _ = item_matrix(ranking.items)
    rating_ids, rating_factors, rating_bias = item_matrix(rating.items, bias="bias")
    params = rating.params
    return ModelItems(
        movie_ids=ids,
        ranking_items=items,
        ranking_reg_param=ranking.params.reg_param,
        ranking_alpha=ranking.params.alpha,
        rating=RatingTerms(
            global_mean=rating.global_mean,
            item_bias=aligned(ids, rating_ids, rating_bias),
            item_factors=aligned(ids, rating_ids, rating_factors),
            reg_param=params.reg_param,
            variant=params.variant,
            bias_damping=params.bias_damping,
            nonnegative=params.nonnegative,
        ),
        popularity=popularity_of(ids, train),
        policy=policy,
        ease=ease_items_on(ease, ids) if ease is not None else None,
        new=new,
        taste=genre_taste(ids, movies, train) if movies is not None else None,
    )


def recommend(
    ranker: Ranker,
    users: DataFrame,
    history: DataFrame,
    n: int,
    *,
    stars: RatingTerms | None = None,
    star_users: DataFrame | None = None,
    new: NewSlots | None = None,
) -> DataFrame:
    """`build_lists` for every user of `users` (userId, features: the user side of the
    ranker's factors, if it has any): LIST_SCHEMA rows, rank 1..n (fewer for a user with
    fewer candidates). `history` (userId, movieId, rating) is what each user rated: left
    out of their list, and what they liked gives the reasons. With `stars` (aligned on
    the ranker's movies) and `star_users` (userId, bias, features), each movie carries
    the predicted stars (and a ranker that blends stars in can read them); with `new`
    too, new movies take up to its slots (`new` = true)."""
    return recommend_candidates(
        {"": ranker}, users, history, n, stars=stars, star_users=star_users, new=new
    ).drop("candidate")


def recommend_candidates(
    rankers: dict[str, Ranker],
    users: DataFrame,
    history: DataFrame,
    n: int,
    *,
    stars: RatingTerms | None = None,
    star_users: DataFrame | None = None,
    new: NewSlots | None = None,
    explain: bool = True,
) -> DataFrame:
    """`recommend` for several rankers of the same movies at once (one pass over the
    users): LIST_SCHEMA rows with a `candidate` column naming the ranker; without
    `explain`, no reasons (null)."""
    first = next(iter(rankers.values()))
    ids = first.movie_ids
    new_ids = np.zeros(0, np.int64) if new is None else new.movies.movie_ids
    every_id = np.concatenate([ids, new_ids])
    rank = max(ranker.rank for ranker in rankers.values())
    if new is not None:
        rank = max(rank, new.known.rank)
    star_rank = 0 if stars is None else stars.item_factors.shape[1]

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            block, rated_new = _user_block(batch, ids, new_ids, rank, star_rank)
            built = build_lists_each(
                block, rankers, n, stars, new=new, rated_new=rated_new, explain=explain
            )
            for name, lists in built.items():
                yield _rows(block, lists, every_id, n, name)

    return _with_history(users, history, star_users).mapInArrow(
        score, f"candidate string, {LIST_SCHEMA}"
    )


def _with_history(users: DataFrame, history: DataFrame, star_users: DataFrame | None) -> DataFrame:
    """`users` (userId, features) with their rating-model terms (_bias, _factors: null
    without `star_users`) and what they rated (_movies, _stars)."""
    # Two lists filled row by row in the same aggregation, so their orders match.
    rated = history.groupBy("userId").agg(
        F.collect_list("movieId").alias("_movies"), F.collect_list("rating").alias("_stars")
    )
    if star_users is not None:
        users = users.join(
            star_users.select(
                "userId", F.col("bias").alias("_bias"), F.col("features").alias("_factors")
            ),
            "userId",
            "left",
        )
    else:
        users = users.withColumn("_bias", F.lit(None).cast("double")).withColumn(
            "_factors", F.lit(None).cast("array<float>")
        )
    return users.join(rated, "userId", "left").select(
        "userId", "features", "_bias", "_factors", "_movies", "_stars"
    )


def _user_block(
    batch: pa.RecordBatch, ids: np.ndarray, new_ids: np.ndarray, rank: int, star_rank: int
) -> tuple[UserBlock, list[np.ndarray] | None]:
    """A batch of `_with_history` rows as a block on the movies `ids`, and each user's
    rated new movies (positions among `new_ids`; None when there are none)."""
    movies, owners = _flat(batch.column("_movies"))
    given, _ = _flat(batch.column("_stars"))
    at = position_of(ids, movies)
    known = at >= 0
    block = UserBlock(
        user_ids=batch.column("userId").to_numpy(),
        factors=_matrix(batch.column("features"), rank),
        rated_at=at[known],
        rated_stars=given[known].astype(np.float64),
        rated_by=owners[known],
        star_bias=batch.column("_bias").to_numpy(zero_copy_only=False),
        star_factors=_matrix(batch.column("_factors"), star_rank),
    )
    if not len(new_ids):
        return block, None
    at_new = position_of(new_ids, movies)
    rated_new = np.split(at_new, np.cumsum(np.bincount(owners, minlength=len(block))))
    return block, [r[r >= 0] for r in rated_new[: len(block)]]


def served_lists(
    items: ModelItems,
    ranking_users: DataFrame,
    rating_users: DataFrame,
    history: DataFrame,
    n: int,
    *,
    shown: int = SHOWN,
) -> DataFrame:
    """What users are shown: the served order's top-n among the movies not in `history`,
    the rating model's stars and the reason, for every user of `ranking_users`, with
    new movies in up to `items.new`'s slots among the `shown` first."""
    return recommend(
        items.ranker(),
        ranking_users,
        history,
        n,
        stars=items.rating,
        star_users=rating_users,
        new=items.new_slots(shown),
    )


def new_for_you_lists(
    items: ModelItems, ranking_users: DataFrame, rating_users: DataFrame, history: DataFrame
) -> DataFrame:
    """Every user's "New for you" row (`ModelItems.new_for_you`): NEW_FOR_YOU_SCHEMA rows,
    rank 1.. (none for a user no new movie reaches, and none at all without a row);
    `history` (userId, movieId, rating): what the titles they liked link to, and the
    new movies they rated, left out."""
    new = items.new
    new_ids = np.zeros(0, np.int64) if new is None else new.movie_ids
    rank, star_rank = items.ranking_items.shape[1], items.rating.item_factors.shape[1]

    def rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            block, rated_new = _user_block(batch, items.movie_ids, new_ids, rank, star_rank)
            picks = items.new_for_you(block, rated_new)
            if picks is None:
                continue
            found = picks.positions >= 0
            users, places = np.nonzero(found)
            reasons = picks.reasons[found]
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(block.user_ids[users].astype(np.int32)),
                    pa.array((places + 1).astype(np.int32)),
                    pa.array(new_ids[picks.positions[found]].astype(np.int32)),
                    pa.array(picks.scores[found].astype(np.float32)),
                    pa.array(picks.stars[found].astype(np.float32)),
                    pa.array(items.movie_ids[reasons.clip(0)].astype(np.int32), mask=reasons < 0),
                    pa.array(picks.by_title[found]),
                    pa.array(new.row.fresh[picks.positions[found]]),
                ],
                names=["userId", "rank", "movieId", "score", "pred_rating", "reason", "by_title",
                       "fresh"],
            )  # fmt: skip

    users = ranking_users.select("userId", "features")
    return _with_history(users, history, rating_users).mapInArrow(rows, NEW_FOR_YOU_SCHEMA)


def without_new_movies(lists: DataFrame, n: int) -> DataFrame:
    """The known movies of served `lists` (LIST_SCHEMA, `new` marking new movies) in
    their order, ranked 1..n again: the served order's lists without new slots, when
    `lists` runs as many places past `n` as a list has new slots (a new movie only
    pushes known ones down). The scoring pass over the users is not repeated."""
    order = Window.partitionBy("userId").orderBy("rank")
    return (
        lists.filter(~F.col("new"))
        .withColumn("rank", F.row_number().over(order))
        .filter(F.col("rank") <= n)
    )


def unseen_lists(
    model: RankingModel | RatingModel,
    users: DataFrame,
    history: DataFrame,
    n: int,
    *,
    bias: str | None = None,
) -> DataFrame:
    """A model's top-n for `users` (userId) by its factors (plus its movie `bias` column,
    when named: a rating model by its stars), among the movies not in `history`."""
    return recommend(
        factor_ranker(model.items, bias=bias),
        model.users.join(users.select("userId"), "userId"),
        history,
        n,
    )


def most_popular(train: DataFrame, users: DataFrame, history: DataFrame, n: int) -> DataFrame:
    """The baseline lists: the movies rated most often in `train`, minus what each user
    rated in `history` (ties go to the lower movieId)."""
    popularity = (
        train.groupBy("movieId")
        .agg(F.count("*").cast("float").alias("popularity"))
        .withColumn(FACTORS, empty_factors())
    )
    anyone = users.select("userId").withColumn(FACTORS, empty_factors())
    return recommend(factor_ranker(popularity, bias="popularity"), anyone, history, n)


def _rows(block: UserBlock, lists, ids: np.ndarray, n: int, candidate: str) -> pa.RecordBatch:
    found = (lists.positions >= 0).ravel()
    chosen = lists.positions.ravel()[found]
    because = lists.reasons.ravel()[found]
    stars = (
        pa.nulls(len(chosen), pa.float32())
        if lists.stars is None
        else pa.array(lists.stars.ravel()[found])
    )
    return pa.RecordBatch.from_arrays(
        [
            pa.array([candidate] * len(chosen), pa.string()),
            pa.array(np.repeat(block.user_ids, n)[found].astype(np.int32)),
            pa.array(np.tile(np.arange(1, n + 1, dtype=np.int32), len(block))[found]),
            pa.array(ids[chosen].astype(np.int32)),
            pa.array(lists.scores.ravel()[found]),
            stars,
            pa.array(ids[because.clip(0)].astype(np.int32), mask=because < 0),
            pa.array(
                np.zeros(len(chosen), bool) if lists.new is None else lists.new.ravel()[found]
            ),
        ],
        names=["candidate", "userId", "rank", "movieId", "score", "pred_rating", "reason", "new"],
    )


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

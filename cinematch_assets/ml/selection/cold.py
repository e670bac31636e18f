"""The cold-movie protocol: the honest test of placing new movies from their content. A
random share of the Gold movies is held out of training entirely (every rating of them),
the models are refitted without them, the mapping learns from the movies that are left,
and the held-out movies are scored from their content alone:

- lists: for every user who rated a held-out movie, the held-out movies ranked for them,
  NDCG@k against the ones they liked, beside a genre-profile match (the user's genre
  distribution against the movie's genres) and a random order; the "New for you" row's
  order (the content model's z-score plus the weight of a title like one the user liked
  in training, each movie offered to its budget's share of these users), with and
  without titles; and the content model without each part of the content (ablation);
- stars: RMSE on every rating of a held-out movie, beside global mean + user bias.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

from cinematch_assets.conventions import LIKED_STARS, MAX_RATING, MIN_RATING
from cinematch_assets.ml.lists.build import ScoreScale, title_matches
from cinematch_assets.ml.lists.new_movies import (
    RowSettings,
    fit_content_mapping,
    liked_block,
    pair_stars,
)
from cinematch_assets.ml.lists.recommend import item_matrix
from cinematch_assets.ml.models.content import PARTS, ContentVectors, held_out_mask
from cinematch_assets.ml.models.ranking import RankingModel, fit_ranking_model
from cinematch_assets.ml.models.rating import RatingModel, refit_rating_model
from cinematch_assets.ml.models.titles import TitleVectors, title_links
from cinematch_assets.ml.selection.metrics import (
    ranking_metrics_by,
    regression_metrics_by,
    relevant_rows,
)
from cinematch_assets.ml.selection.tuning import concurrently

CONTENT_MODEL = "content into the ranking model, cold movies"
NEW_FOR_YOU_ROW = "New for you row, cold movies"
ROW_WITHOUT_TITLES = "New for you row without titles, cold movies"
CONTENT_STARS = "content into the rating model, cold movies"
GENRE_PROFILE = "genre profile, cold movies"
RANDOM = "random, cold movies"
USER_BIAS = "global mean + user bias, cold movies"
COLD_IDS = {
    CONTENT_MODEL: "cold:content",
    NEW_FOR_YOU_ROW: "cold:new_for_you",
    ROW_WITHOUT_TITLES: "cold:new_for_you_without_titles",
    CONTENT_STARS: "cold:content_stars",
    GENRE_PROFILE: "cold:genre_profile",
    RANDOM: "cold:random",
    USER_BIAS: "cold:user_bias",
}


def _row_scorers(
    ranking: RankingModel,
    warm: DataFrame,
    users: np.ndarray,
    user_factors: np.ndarray,
    cold_factors: np.ndarray,
    titles: TitleVectors,
    cold_ids: np.ndarray,
    row: RowSettings,
    seed: int,
    *,
    sample_size: int = 10_000,
) -> dict[str, Callable[[slice], np.ndarray]]:
    """The row's order of the cold movies for `users` (sorted; their factors in the
    refitted `ranking`), with and without titles: each movie offered to the `row.share`
    of a seeded sample of them it fits best (to no one else: a row can be short)."""
    warm_ids, warm_items, _ = item_matrix(ranking.items)
    liked = warm.filter(f"rating >= {LIKED_STARS}").select("userId", "movieId", "rating")
    block = liked_block(users, user_factors, liked.toPandas(), warm_ids)
    links = title_links(titles, cold_ids, warm_ids, row.min_title_similarity, row.min_shared_genres)
    matches = title_matches(links, block)
    scale = ScoreScale.of(warm_items)

    def fit(rows: np.ndarray, weight: float) -> np.ndarray:
        title_match = matches.dense(rows, len(cold_ids))
        z = scale.standardize(user_factors[rows], user_factors[rows] @ cold_factors.T)
        return np.nan_to_num(z + weight * title_match, nan=-np.inf)

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.permutation(len(users))[:sample_size])
    scorers = {}
    for name, weight in ((NEW_FOR_YOU_ROW, row.title_weight), (ROW_WITHOUT_TITLES, 0.0)):
        cut = np.quantile(fit(sample, weight), 1 - row.share, axis=0) if row.share < 1 else -np.inf

        def offered(rows: slice, weight: float = weight, cut=cut) -> np.ndarray:
            scores = fit(np.arange(len(users))[rows], weight)
            return np.where(scores >= cut, scores, -np.inf)  # the row offers it to others

        scorers[name] = offered
    return scorers


@dataclass(frozen=True)
class ColdEvaluation:
    """The evaluation table's rows (role `cold`) and what the protocol did."""

    rows: list[dict[str, Any]]
    details: dict[str, Any]


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column positions of each row's k best scores, best first (-1 past a row's last
    score above -inf: a movie not offered to that user)."""
    k = min(k, scores.shape[1])
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
    best = np.take_along_axis(best, order, axis=1)
    return np.where(np.take_along_axis(scores, best, axis=1) > -np.inf, best, -1)


def _top_k_by_block(
    score: Callable[[slice], np.ndarray], users: int, k: int, block: int = 4096
) -> np.ndarray:
    """`_top_k` of the scores `score` gives for each slice of users, a block at a time (a
    full users x movies matrix at 33M ratings would not fit)."""
    parts = [_top_k(score(slice(s, min(s + block, users))), k) for s in range(0, users, block)]
    return np.vstack(parts) if parts else np.zeros((0, k), dtype=np.int64)


def _lists(name: str, users: np.ndarray, movies: np.ndarray, top: np.ndarray) -> pd.DataFrame:
    k = top.shape[1]
    shown = top.ravel() >= 0
    return pd.DataFrame(
        {
            "list": name,
            "userId": np.repeat(users, k).astype(np.int32)[shown],
            "rank": np.tile(np.arange(1, k + 1), len(users)).astype(np.int32)[shown],
            "movieId": movies[top.ravel()[shown]].astype(np.int32),
        }
    )


def _user_frame(df: DataFrame, users: np.ndarray, columns: list[str]) -> pd.DataFrame:
    spark = df.sparkSession
    wanted = spark.createDataFrame(pd.DataFrame({"userId": users.astype(np.int32)}))
    return df.join(wanted, "userId").select("userId", *columns).toPandas()


def _genre_profiles(warm: DataFrame, genres: pd.DataFrame, users: np.ndarray) -> pd.DataFrame:
    """Each user's genre distribution over the movies they rated in training (rows sum
    to 1): userId x genre."""
    spark = warm.sparkSession
    movie_genres = spark.createDataFrame(genres.astype({"movieId": np.int32}))
    counts = _user_frame(
        warm.join(movie_genres, "movieId").groupBy("userId", "genre").count(), users,
        ["genre", "count"],
    )  # fmt: skip
    wide = counts.pivot_table(index="userId", columns="genre", values="count", fill_value=0)
    return wide.div(wide.sum(axis=1), axis=0)


def cold_movie_evaluation(
    train: DataFrame,
    test: DataFrame,
    content: ContentVectors,
    *,
    rating: RatingModel,
    ranking: RankingModel,
    fraction: float,
    regs: Sequence[float],
    k: int,
    seed: int,
    titles: TitleVectors | None = None,
    row: RowSettings | None = None,
    parallelism: int = 3,
    log: Callable[[str], object] = print,
) -> ColdEvaluation:
    """Hold out a seeded `fraction` of the Gold movies (all their training and test
    ratings), refit `rating` and `ranking` (same parameters) on the rest of `train`, map
    content into both, and score the held-out movies for the users who rated them (with
    `titles` and `row`, the row's order too)."""
    gold = train.select("userId", "movieId", "rating").unionByName(
        test.select("userId", "movieId", "rating")
    )
    movies = np.sort(gold.select("movieId").distinct().toPandas()["movieId"].to_numpy(np.int64))
    cold_ids = movies[held_out_mask(movies, fraction, seed)]
    if len(cold_ids) < 2:
        log(f"Cold movies: {len(cold_ids)} of {len(movies)} held out, too few to rank")
        return ColdEvaluation([], {"held_out_movies": len(cold_ids), "gold_movies": len(movies)})
    spark = train.sparkSession
    cold_df = spark.createDataFrame(pd.DataFrame({"movieId": cold_ids.astype(np.int32)}))
    warm = train.join(cold_df, "movieId", "left_anti").cache()

    refits = {
        "rating": lambda: refit_rating_model(warm, rating.params, seed=seed),
        "ranking": lambda: fit_ranking_model(warm, seed=seed, **asdict(ranking.params)),
    }
    models = concurrently(refits, parallelism)
    mapping = fit_content_mapping(
        content, models["ranking"], models["rating"], regs=regs, tune_fraction=fraction, seed=seed
    )
    cold_content = content.rows(cold_ids)
    factors = mapping.ranking_factors(cold_content)
    bias, star_factors = mapping.rating_terms(cold_content)

    rows = gold.join(cold_df, "movieId").toPandas()
    users = np.sort(rows["userId"].unique())
    ranking_users = _user_frame(models["ranking"].users, users, ["features"])
    rating_users = _user_frame(models["rating"].users, users, ["bias", "features"])

    # Lists: the held-out movies ranked for each user the refitted ranking model knows.
    known = ranking_users["userId"].to_numpy(np.int64)
    order = np.argsort(known)
    known = known[order]
    user_factors = np.stack(ranking_users["features"].to_numpy())[order].astype(np.float32)
    genre_names = [n.split(":", 1)[1] for n in content.names if n.startswith("genre:")]
    in_genre = content.rows(cold_ids)[:, content.part("genre")] > 0
    genres = pd.DataFrame(
        [(m, g) for m, row in zip(content.movie_ids, content.matrix[:, content.part("genre")] > 0,
                                  strict=True)
         for g, on in zip(genre_names, row, strict=True) if on],
        columns=["movieId", "genre"],
    )  # fmt: skip
    profiles = _genre_profiles(warm, genres, known).reindex(
        index=known, columns=genre_names, fill_value=0.0
    )
    profile = profiles.to_numpy(np.float32)
    movie_genres = (in_genre / np.maximum(in_genre.sum(1), 1)[:, None]).T.astype(np.float32)
    rng = np.random.default_rng(seed)

    def noise(users: slice) -> np.ndarray:
        return rng.random((len(known[users]), len(cold_ids)), dtype=np.float32)

    scorers = {
        CONTENT_MODEL: lambda users: user_factors[users] @ factors.T,
        # Ties (same genres) broken at random, not by movie id.
        GENRE_PROFILE: lambda users: profile[users] @ movie_genres + 1e-6 * noise(users),
        RANDOM: noise,
    }
    # Each part of the content left out in turn: what it adds.
    for part in PARTS:
        columns = content.part(part)
        if not (content.matrix[:, columns] != 0).any():
            continue  # the release has no such data
        without = ContentVectors(
            content.movie_ids, np.where(columns, 0, content.matrix).astype(np.float32),
            content.names,
        )  # fmt: skip
        ablated = fit_content_mapping(
            without, models["ranking"], models["rating"], regs=regs, tune_fraction=fraction,
            seed=seed,
        ).ranking_factors(without.rows(cold_ids))  # fmt: skip
        scorers[f"content without {part}s, cold movies"] = lambda users, ablated=ablated: (
            user_factors[users] @ ablated.T
        )
    if titles is not None and row is not None:
        scorers |= _row_scorers(
            models["ranking"], warm, known, user_factors, factors, titles, cold_ids, row, seed
        )
    lists = pd.concat(
        [
            _lists(name, known, cold_ids, _top_k_by_block(score, len(known), k))
            for name, score in scorers.items()
        ]
    )
    relevant = relevant_rows(gold.join(cold_df, "movieId"))
    list_scores = ranking_metrics_by(spark.createDataFrame(lists), relevant, k=k, by="list")

    # Stars: every rating of a held-out movie (a user the model does not know: bias 0).
    at = np.searchsorted(cold_ids, rows["movieId"].to_numpy(np.int64))
    stars_users = rating_users.set_index("userId")
    user_bias = stars_users["bias"].reindex(rows["userId"]).fillna(0.0).to_numpy()
    rank = star_factors.shape[1]
    empty = np.zeros(rank, np.float32)
    user_star_factors = np.stack(
        [np.asarray(f, np.float32) if f is not None and len(f) else empty
         for f in stars_users["features"].reindex(rows["userId"])]
    ) if rank else np.zeros((len(rows), 0), np.float32)  # fmt: skip
    mean = models["rating"].global_mean
    content_stars = pair_stars(mean, user_bias, user_star_factors, bias[at], star_factors[at])
    predictions = pd.DataFrame(
        {
            "rating": np.concatenate([rows["rating"], rows["rating"]]),
            "prediction": np.concatenate(
                [content_stars, (mean + user_bias).clip(MIN_RATING, MAX_RATING)]
            ),
            "model": [CONTENT_STARS] * len(rows) + [USER_BIAS] * len(rows),
        }
    )
    star_scores = regression_metrics_by(spark.createDataFrame(predictions), "model")
    warm.unpersist()
    log(
        f"Cold movies: {len(cold_ids):,} of {len(movies):,} held out, {len(rows):,} ratings, "
        f"{len(users):,} users; NDCG@{k} content {list_scores[CONTENT_MODEL]['ndcg']:.4f}, "
        f"genre profile {list_scores[GENRE_PROFILE]['ndcg']:.4f}"
    )
    ids = COLD_IDS | {f"content without {part}s, cold movies": f"cold:content_without_{part}s"
                      for part in PARTS}  # fmt: skip
    table = [
        {"id": ids[name], "name": name, "role": "cold", "task": "stars", **star_scores[name]}
        for name in (CONTENT_STARS, USER_BIAS)
    ] + [
        {"id": ids[name], "name": name, "role": "cold", "task": "lists", "k": k,
         **list_scores[name]}
        for name in scorers
    ]  # fmt: skip
    details = {
        "held_out_movies": len(cold_ids),
        "gold_movies": len(movies),
        "ratings": len(rows),
        "users": len(users),
        "ranking_reg": mapping.searches["ranking"].best,
        "rating_reg": mapping.searches["rating"].best,
        "ridge_search": {n: s.errors for n, s in mapping.searches.items()},
    }
    return ColdEvaluation(table, details)

"""New movies in the lists: content vectors mapped into the models' movie spaces (ridge
regressions learned on the movies the models know), the few ratings a new movie has
moving its rating bias, and the bar a new movie must clear to take one of a list's new
slots. `selection.cold` tests the mapping on movies held out of training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy import sparse

from cinematch_assets import keys
from cinematch_assets.conventions import LIKED_STARS, MAX_RATING, MIN_RATING
from cinematch_assets.ml.arrays import position_of
from cinematch_assets.ml.lists.build import (
    NewMovies,
    NewRow,
    ScoreScale,
    UserBlock,
    row_fit,
    title_matches,
)
from cinematch_assets.ml.lists.recommend import item_matrix
from cinematch_assets.ml.models.artifacts import Read
from cinematch_assets.ml.models.content import (
    ContentVectors,
    Ridge,
    RidgeFit,
    RidgeSearch,
    held_out_mask,
    tune_ridge,
)
from cinematch_assets.ml.models.ranking import RankingModel
from cinematch_assets.ml.models.rating import RatingModel
from cinematch_assets.ml.models.titles import TitleLinks, TitleVectors, title_links


@dataclass(frozen=True)
class RowSettings:
    """How the "New for you" row is made (`build.NewRow`): its length, the share of users
    each new movie may reach (the exploration budget), the weight of a title like one the
    user rated highly (the prior validation must beat), the similarity below which titles
    are unrelated and the share of genres two films must have in common for their titles
    to link, and how many of the latest years' releases count as fresh (ranked before
    older new movies)."""

    size: int = 10
    share: float = 0.3
    title_weight: float = 2.0
    min_title_similarity: float = 0.3
    min_shared_genres: float = 0.5
    fresh_years: int = 2


def without_self_links(links: TitleLinks, rows: np.ndarray, columns: np.ndarray) -> TitleLinks:
    """`links` (`rows` ids x `columns` ids) without a movie's link to itself."""
    matrix = links.matrix.tocoo()
    keep = rows[matrix.row] != columns[matrix.col]
    kept = sparse.csr_matrix(
        (matrix.data[keep], (matrix.row[keep], matrix.col[keep])), shape=matrix.shape
    )
    return TitleLinks(kept)


@dataclass(frozen=True)
class TitleWeightSearch:
    """Each title weight's NDCG@k of the row's order on validation, per user for whom
    titles can matter (`tune_title_weight`), and the weight chosen from them: `default`
    (the prior) stands unless another beats it by more than twice the standard error of
    their paired per-user difference, when the best of those that do is chosen. Where
    few users can tell, noise never moves the weight (a release whose validation movies
    rarely share a title with anything would otherwise pick 0 by chance)."""

    per_user: dict[float, np.ndarray]
    default: float

    @property
    def users(self) -> int:
        return len(next(iter(self.per_user.values()), []))

    def mean(self, weight: float) -> float:
        values = self.per_user[weight]
        return float(values.mean()) if len(values) else float("nan")

    def versus_default(self, weight: float) -> tuple[float, float]:
        """(mean, standard error) of the paired per-user difference from the default."""
        difference = self.per_user[weight] - self.per_user[self.default]
        if len(difference) < 2:
            return float("nan"), float("nan")
        return float(difference.mean()), float(difference.std(ddof=1) / np.sqrt(len(difference)))

    @property
    def chosen(self) -> float:
        better = {}
        for weight in self.per_user:
            gain, error = self.versus_default(weight)
            if weight != self.default and gain > 2 * error:
                better[weight] = gain
        return max(better, key=lambda w: (better[w], -w)) if better else self.default

    def table(self) -> list[dict[str, float]]:
        """Per weight: mean NDCG, its 95% interval's half-width, the paired difference
        from the default and its standard error, and whether it is chosen."""
        rows = []
        for weight, values in self.per_user.items():
            gain, error = self.versus_default(weight)
            spread = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.nan
            rows.append({
                "title_weight": weight, "validation_ndcg": self.mean(weight),
                "ci95": float(1.96 * spread), "vs_default": gain, "vs_default_se": error,
                "chosen": weight == self.chosen,
            })  # fmt: skip
        return rows


def tune_title_weight(
    sample: UserBlock,
    tuning: NewMovies,
    tuning_at: np.ndarray,
    scale: ScoreScale,
    weights: Sequence[float],
    *,
    default: float,
    k: int = 10,
    block: int = 1_024,
) -> TitleWeightSearch:
    """Each title weight's NDCG@k of the row's order on validation: the movies held out
    of the mapping's tuning fit (`tuning`: their factors through a ridge that never saw
    them, their title links to the other known movies; `tuning_at`: their positions
    among the known movies), ranked for each `sample` user for whom titles can matter:
    who liked one of them in training (relevant: those they liked) and liked a movie
    whose title one of them shares. Other users' orders do not depend on the weight.
    The row's own question, on movies whose audience is known: does a title like one
    the user liked find it? The grid's weight nearest `default` is the prior the others
    must beat (`TitleWeightSearch.chosen`)."""
    liked_at, liked_by = sample.liked()
    relevant = np.zeros((len(sample), len(tuning_at)), dtype=bool)
    column = position_of(tuning_at, liked_at)
    relevant[liked_by[column >= 0], column[column >= 0]] = True
    matches = title_matches(tuning.row.links, sample)
    titled = np.zeros(len(sample), dtype=bool)
    titled[matches.users] = True
    users = np.flatnonzero(relevant.any(axis=1) & titled)
    weights = [float(w) for w in weights]
    per_user = {weight: np.zeros(len(users)) for weight in weights}
    discount = 1 / np.log2(np.arange(2, k + 2))
    for start in range(0, len(users), block):
        rows = users[start : start + block]
        title_match = matches.dense(rows, len(tuning_at))
        wanted = relevant[rows]
        ideal = np.cumsum(discount)[np.minimum(wanted.sum(axis=1), k) - 1]
        for weight in weights:
            fit = row_fit(sample.factors[rows], replace(tuning, row=replace(tuning.row,
                          title_weight=weight)), scale, title_match)  # fmt: skip
            top = np.argsort(-np.nan_to_num(fit, nan=-np.inf), axis=1, kind="stable")[:, :k]
            hits = np.take_along_axis(wanted, top, axis=1)
            per_user[weight][start : start + len(rows)] = (hits @ discount[: top.shape[1]]) / ideal
    # The prior is the grid's weight nearest `default` (a grid of [0] ignores titles).
    prior = min(weights, key=lambda w: (abs(w - default), w))
    return TitleWeightSearch(per_user, prior)


@dataclass(frozen=True)
class ContentMapping:
    """Ridge regressions from a movie's content vector to its ranking-model factors and
    to its rating-model bias and factors (`rating` predicts [bias, factors...]), and the
    ranking one refitted without the movies that tuned it (`ranking_without_tuning`)."""

    ranking: Ridge
    rating: Ridge
    searches: dict[str, RidgeSearch]
    movie_ids: np.ndarray  # the movies it learned from
    tuning: np.ndarray  # which of them tuned the regularization (held out of that fit)
    ranking_without_tuning: Ridge

    def ranking_factors(self, content: np.ndarray) -> np.ndarray:
        return self.ranking.predict(content)

    def rating_terms(self, content: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(movie bias, movie factors) in the rating model."""
        out = self.rating.predict(content)
        return out[:, 0], out[:, 1:]


def fit_content_mapping(
    content: ContentVectors,
    ranking: RankingModel,
    rating: RatingModel,
    *,
    regs: Sequence[float],
    tune_fraction: float,
    seed: int,
) -> ContentMapping:
    """Learned on the movies both models know; each regularization tuned on a seeded
    `tune_fraction` of them held out of the fit (never on test data)."""
    ranking_ids, ranking_items, _ = item_matrix(ranking.items)
    rating_ids, rating_items, rating_bias = item_matrix(rating.items, bias="bias")
    ids = np.intersect1d(np.intersect1d(ranking_ids, rating_ids), content.movie_ids)
    x = content.rows(ids)
    targets = {
        "ranking": ranking_items[np.searchsorted(ranking_ids, ids)],
        "rating": np.column_stack(
            [rating_bias[np.searchsorted(rating_ids, ids)],
             rating_items[np.searchsorted(rating_ids, ids)]]
        ),
    }  # fmt: skip
    held = held_out_mask(ids, tune_fraction, seed)
    # X^T X once for the tuning fit and once for the final one, shared by both targets.
    tuning_fit, full_fit = RidgeFit(x[~held]), RidgeFit(x)
    searches = {name: tune_ridge(x, y, regs, held, fit=tuning_fit) for name, y in targets.items()}
    ridges = {name: full_fit.solve(y, searches[name].best) for name, y in targets.items()}
    without = tuning_fit.solve(targets["ranking"][~held], searches["ranking"].best)
    return ContentMapping(ridges["ranking"], ridges["rating"], searches, ids, held, without)


@dataclass(frozen=True)
class NewMovieModel:
    """The final models' new movies: `items` (movieId, ranking_features, rating_bias,
    rating_features) for every movie with content that the models do not know, the
    mapping's searches, the score threshold of a new slot (the higher of the two bars:
    how well liked held-out movies matched, and how many slots new movies may fill), and
    what the new movies' own ratings did to their rating bias."""

    items: pd.DataFrame
    liked_bar: float
    fill_bar: float
    mapping: ContentMapping
    liked_pairs: int
    observed: ObservedShift
    row: RowSettings | None = None  # the row's settings, with the title weight chosen
    fresh_since: int | None = None  # the first release year counted fresh
    title_weight_search: TitleWeightSearch | None = None

    @property
    def threshold(self) -> float:
        return max(self.liked_bar, self.fill_bar)


def new_slot_threshold(z_of_liked: np.ndarray, movies: np.ndarray, quantile: float) -> float:
    """The `quantile` of the z-scores held-out movies reached for the users who went on to
    like them (`movies[i]`: whose pair `z_of_liked[i]` is), each movie weighing the same
    however many liked it: so a shown new movie matches like the new movies people liked.
    Weighed by pairs, the few held-out blockbusters set the bar, and a new movie, little
    rated by definition, never reached it. +inf when there is nothing to learn from."""
    finite = np.isfinite(z_of_liked)
    z_of_liked, movies = z_of_liked[finite], movies[finite]
    if not len(z_of_liked):
        return float("inf")
    _, movie, likers = np.unique(movies, return_inverse=True, return_counts=True)
    weights = 1.0 / likers[movie]
    return float(np.quantile(z_of_liked, quantile, weights=weights, method="inverted_cdf"))


def pair_stars(
    mean: float,
    user_bias: np.ndarray,
    user_factors: np.ndarray,
    movie_bias: np.ndarray,
    movie_factors: np.ndarray,
) -> np.ndarray:
    """The rating model's stars for pairs (row i: a user's terms and a movie's), in
    [0.5, 5]."""
    taste = np.einsum("ij,ij->i", user_factors, movie_factors)
    return (mean + user_bias + movie_bias + taste).clip(MIN_RATING, MAX_RATING)


def observed_bias_shift(
    residual_sums: np.ndarray, counts: np.ndarray, damping: float
) -> np.ndarray:
    """What a new movie's few ratings say about its bias: the sum of their residuals
    (stars minus what its content predicts) over their count plus `damping`
    pseudo-ratings at the prediction, the rating model's damped movie bias on top of the
    content's (0 for a movie nobody rated, whatever the damping: a model fitted without
    damping has 0)."""
    weight = counts + damping
    shift = np.zeros(np.shape(residual_sums), dtype=np.float64)
    return np.divide(residual_sums, weight, out=shift, where=weight > 0)


def audience_cuts(
    users: np.ndarray,
    new_items: np.ndarray,
    scale: ScoreScale,
    share: float,
    *,
    block: int = 2_048,
) -> np.ndarray:
    """For each new movie, the z-score (on each user's own scale) that the `share` of
    `users` it suits best reach: a movie is offered to those users only, so that one
    new movie does not take the slots of most lists. -inf for every movie when `share`
    is 1 or more (no cut). `scale`: the ranking model's over the known movies."""
    cuts = np.full(len(new_items), -np.inf)
    if share >= 1 or not len(users):
        return cuts
    for start in range(0, len(new_items), block):
        items = new_items[start : start + block]
        z = scale.standardize(users, users @ items.T)
        cuts[start : start + len(items)] = np.nanquantile(z, 1 - share, axis=0)
    return cuts


def fill_bar(
    users: np.ndarray,
    new_items: np.ndarray,
    scale: ScoreScale,
    audience: np.ndarray,
    slots: int,
    share: float,
    *,
    block: int = 2_048,
) -> float:
    """The z-score above which new movies fill at most `share` of the `users`' `slots`
    new slots each, the best-matched first: every slot a new movie takes pushes a known
    movie out of the shown list, so this caps what the new movies cost the known ones.
    `audience`: each movie's cut (`audience_cuts`); the star floor, left out here, only
    takes slots away. -inf when `share` is 1 or more (no cap)."""
    if share < 0:
        raise ValueError(f"the share of the new slots to fill must be 0 or more, not {share}")
    if share >= 1 or slots <= 0 or not len(users) or not len(new_items):
        return float("-inf")
    best = np.full((len(users), slots), -np.inf)
    for start in range(0, len(new_items), block):
        items = new_items[start : start + block]
        z = scale.standardize(users, users @ items.T)
        z = np.where(z >= audience[start : start + len(items)], z, -np.inf)
        best = -np.partition(-np.hstack([best, z]), slots - 1, axis=1)[:, :slots]
    taken = np.sort(best.ravel())[::-1]
    allowed = int(share * len(taken))
    # Strictly above the first score past the cap: a tie cannot let more through.
    return float(np.nextafter(taken[allowed], np.inf)) if allowed < len(taken) else float("-inf")


def row_audience_cuts(
    sample: UserBlock, new: NewMovies, scale: ScoreScale, share: float, *, block: int = 2_048
) -> np.ndarray:
    """For each new movie, the row fit (`build.row_fit`) that the `share` of the `sample`
    users it fits best reach: the row offers it to those users only. -inf for every movie
    when `share` is 1 or more, or there is no sample."""
    cuts = np.full(len(new.movie_ids), -np.inf)
    if share >= 1 or not len(sample):
        return cuts
    matches = title_matches(new.row.links, sample)
    for start in range(0, len(new.movie_ids), block):
        stop = min(start + block, len(new.movie_ids))
        inside = (matches.new >= start) & (matches.new < stop)
        title_match = np.zeros((len(sample), stop - start), np.float32)
        title_match[matches.users[inside], matches.new[inside] - start] = matches.similarity[inside]
        part = replace(new, ranking_items=new.ranking_items[start:stop])
        fit = row_fit(sample.factors, part, scale, title_match)
        cuts[start:stop] = np.nanquantile(fit, 1 - share, axis=0)
    return cuts


@dataclass(frozen=True)
class ObservedShift:
    """The new movies' bias shifts from their own ratings, and the check that they help:
    on every rating of a movie that has others, the error of the content's prediction
    alone and with the shift learned from the movie's other ratings (leave one out)."""

    shift: np.ndarray
    ratings: int
    checked: int = 0
    content_rmse: float = float("nan")
    shifted_rmse: float = float("nan")


def _shift_by_observed(
    new_ids: np.ndarray,
    bias: np.ndarray,
    star_factors: np.ndarray,
    observed: DataFrame,
    rating: RatingModel,
) -> ObservedShift:
    """`observed_bias_shift` of the new movies from `observed` (userId, movieId, rating):
    the ratings they have, by users the rating model knows."""
    spark = observed.sparkSession
    ids = spark.createDataFrame(pd.DataFrame({"movieId": new_ids.astype(np.int32)}))
    rows = (
        observed.join(ids, "movieId")
        .join(rating.users.select("userId", "bias", "features"), "userId")
        .select("movieId", "rating", "bias", "features")
        .toPandas()
    )
    if not len(rows):
        return ObservedShift(np.zeros(len(new_ids)), 0)
    at = np.searchsorted(new_ids, rows["movieId"].to_numpy(np.int64))
    users = np.stack(rows["features"].to_numpy()).astype(np.float64)
    predicted = pair_stars(
        rating.global_mean, rows["bias"].fillna(0.0).to_numpy(), users, bias[at], star_factors[at]
    )
    residuals = rows["rating"].to_numpy(np.float64) - predicted
    damping = rating.params.bias_damping
    sums = np.bincount(at, weights=residuals, minlength=len(new_ids))
    counts = np.bincount(at, minlength=len(new_ids))
    # Leave one out: each rating against the shift its movie's other ratings give.
    others = counts[at] > 1
    left_out, movie = residuals[others], at[others]
    shifted = left_out - observed_bias_shift(sums[movie] - left_out, counts[movie] - 1, damping)
    return ObservedShift(
        observed_bias_shift(sums, counts, damping),
        len(rows),
        int(others.sum()),
        float(np.sqrt(np.mean(left_out**2))) if others.any() else float("nan"),
        float(np.sqrt(np.mean(shifted**2))) if others.any() else float("nan"),
    )


def fit_new_movie_model(
    train: DataFrame,
    content: ContentVectors,
    *,
    ranking: RankingModel,
    rating: RatingModel,
    regs: Sequence[float],
    tune_fraction: float,
    quantile: float,
    seed: int,
    observed: DataFrame | None = None,
    audience_share: float = 1.0,
    audience_users: int = 10_000,
    slots: int = 2,
    fill_share: float = 1.0,
    row: RowSettings | None = None,
    titles: TitleVectors | None = None,
    release_years: pd.Series | None = None,
    title_weights: Sequence[float] = (),
) -> NewMovieModel:
    """Map content into the final models (`fit_content_mapping`) and place every movie
    they do not know; with `observed` (userId, movieId, rating: every rating, e.g. Silver)
    the few ratings a new movie has move its rating bias from the content's guess
    (`observed_bias_shift`). The slot threshold comes from the movies held out of the
    mapping's tuning: their content-derived factors, z-scored for the users who liked
    them in training (`train`), never the test split; it is raised, when needed, so that
    new movies fill at most `fill_share` of the `slots` new slots (`fill_bar`). Each
    movie's audience cut (`audience_cuts`) and the fill are measured on a seeded sample
    of up to `audience_users` users. With `row`, the "New for you" row too: the known
    movies whose titles each new one shares (`titles`), its audience cut in the row (on the same
    sample, with what they liked in `train`) and whether it is fresh (`release_years`,
    movieId -> year, against the year of the latest training rating); with
    `title_weights`, the title weight is the one whose row order finds the tuning
    movies best for the sample (`tune_title_weight`), not `row.title_weight`."""
    mapping = fit_content_mapping(
        content, ranking, rating, regs=regs, tune_fraction=tune_fraction, seed=seed
    )
    known_ids, known_items, _ = item_matrix(ranking.items)
    scale = ScoreScale.of(known_items)  # a user's own scale, for the cuts and the threshold
    new_ids = np.setdiff1d(content.movie_ids, known_ids)
    new_content = content.rows(new_ids)
    bias, star_factors = mapping.rating_terms(new_content)
    shifted = ObservedShift(np.zeros(len(new_ids)), 0)
    if observed is not None and len(new_ids):
        shifted = _shift_by_observed(new_ids, bias, star_factors, observed, rating)
    bias = bias + shifted.shift
    factors = mapping.ranking_factors(new_content)
    sample = UserBlock(np.zeros(0, np.int64), np.zeros((0, known_items.shape[1]), np.float32),
                       *(np.zeros(0, np.int64),) * 3)  # fmt: skip
    if (audience_share < 1 or fill_share < 1 or row is not None) and len(new_ids):
        sample = _sample_users(ranking, train, known_ids, audience_users, seed)
    audience = audience_cuts(sample.factors, factors, scale, audience_share)
    items = pd.DataFrame(
        {
            "movieId": new_ids.astype(np.int32),
            "ranking_features": list(factors),
            "rating_bias": bias.astype(np.float32),
            "rating_features": list(star_factors),
            "audience_z": audience,
        }
    )
    fresh_since, title_weight_search = None, None
    if row is not None:
        if title_weights:
            tuning_ids = mapping.movie_ids[mapping.tuning]
            links = title_links(
                titles, tuning_ids, known_ids, row.min_title_similarity, row.min_shared_genres
            )
            tuning = NewMovies(
                tuning_ids, mapping.ranking_without_tuning.predict(content.rows(tuning_ids)),
                np.zeros(len(tuning_ids)), np.zeros((len(tuning_ids), 0)), np.inf, 0,
                row=NewRow(0, np.zeros(0), np.zeros(0, bool),
                           without_self_links(links, tuning_ids, known_ids), 0.0),
            )  # fmt: skip
            tuning_at = position_of(known_ids, tuning_ids)
            title_weight_search = tune_title_weight(
                sample, tuning, tuning_at, scale, title_weights, default=row.title_weight
            )
            row = replace(row, title_weight=title_weight_search.chosen)
        latest = train.agg(F.max("rated_at")).first()[0]  # the data's present
        if latest is not None and row.fresh_years > 0:
            fresh_since = latest.year - row.fresh_years + 1
        years = release_years.reindex(new_ids).fillna(-1).to_numpy(np.int64)
        fresh = years >= fresh_since if fresh_since else np.zeros(len(new_ids), dtype=bool)
        links = title_links(
            titles, new_ids, known_ids, row.min_title_similarity, row.min_shared_genres
        )
        placed = NewRow(row.size, np.zeros(0), fresh, links, row.title_weight)
        placed = NewMovies(new_ids, factors, bias, star_factors, np.inf, 0, row=placed)
        by_new = links.matrix
        spans = list(zip(by_new.indptr[:-1], by_new.indptr[1:], strict=True))
        items["row_audience_z"] = row_audience_cuts(sample, placed, scale, row.share)
        items["fresh"] = fresh
        items["title_links"] = [known_ids[by_new.indices[a:b]].astype(np.int32) for a, b in spans]
        items["title_similarity"] = [by_new.data[a:b] for a, b in spans]

    # The threshold: the tuning movies, mapped by a ridge that never saw them.
    ids = mapping.movie_ids[mapping.tuning]
    spark = train.sparkSession
    held_df = spark.createDataFrame(pd.DataFrame({"movieId": ids.astype(np.int32)}))
    liked = (
        train.join(held_df, "movieId")
        .filter(F.col("rating") >= LIKED_STARS)
        .select("userId", "movieId")
        .join(ranking.users.select("userId", "features"), "userId")
        .toPandas()
    )
    z, movies = np.zeros(0), liked["movieId"].to_numpy(np.int64)
    if len(liked):
        users = np.stack(liked["features"].to_numpy()).astype(np.float32)
        derived = mapping.ranking_without_tuning.predict(content.rows(movies))
        z = scale.standardize(users, (users * derived).sum(axis=1))
    return NewMovieModel(
        items,
        new_slot_threshold(z, movies, quantile),
        fill_bar(sample.factors, factors, scale, audience, slots, fill_share),
        mapping,
        len(z),
        shifted,
        row,
        fresh_since,
        title_weight_search,
    )


def _sample_users(
    ranking: RankingModel, train: DataFrame, known_ids: np.ndarray, size: int, seed: int
) -> UserBlock:
    """A seeded sample of up to `size` users of the ranking model: their factors and the
    known movies they liked in `train` (positions among `known_ids`)."""
    users = ranking.users.select("userId", "features").orderBy(F.rand(seed)).limit(size).cache()
    found = users.toPandas().sort_values("userId")
    liked = (
        train.filter(F.col("rating") >= LIKED_STARS)
        .join(users.select("userId"), "userId")
        .select("userId", "movieId", "rating")
        .toPandas()
    )
    users.unpersist()
    factors = (np.stack(found["features"].to_numpy()).astype(np.float32) if len(found)
               else np.zeros((0, 0), np.float32))  # fmt: skip
    return liked_block(found["userId"].to_numpy(np.int64), factors, liked, known_ids)


def liked_block(
    user_ids: np.ndarray, factors: np.ndarray, liked: pd.DataFrame, known_ids: np.ndarray
) -> UserBlock:
    """Users (`user_ids`, sorted, and their factors) as a block with the movies of
    `known_ids` (sorted) they liked: `liked` (userId, movieId, rating) rows of other users
    or other movies are left out."""
    at = position_of(known_ids, liked["movieId"].to_numpy(np.int64))
    by = position_of(user_ids, liked["userId"].to_numpy(np.int64))
    kept = (at >= 0) & (by >= 0)
    order = np.argsort(by[kept], kind="stable")
    return UserBlock(
        user_ids=user_ids,
        factors=factors,
        rated_at=at[kept][order],
        rated_stars=liked["rating"].to_numpy(np.float64)[kept][order],
        rated_by=by[kept][order],
    )


def read_new_movies(read: Read) -> NewMovies:
    """The movies the models do not know, placed from their content (`ml/content_model`
    and `ml/new_movie_factors`), with the slot threshold and count, and the "New for you"
    row when the content model made one."""
    row = read(keys.CONTENT_MODEL).first()
    items = read(keys.NEW_MOVIE_FACTORS).orderBy("movieId").toPandas()

    def stacked(column: str, width: int) -> np.ndarray:
        if not len(items):
            return np.zeros((0, width), np.float32)
        return np.stack(items[column].to_numpy()).astype(np.float32)

    new = NewMovies(
        movie_ids=items["movieId"].to_numpy(np.int64),
        ranking_items=stacked("ranking_features", row["ranking_rank"]),
        rating_bias=items["rating_bias"].to_numpy(np.float32),
        rating_items=stacked("rating_features", row["rating_rank"]),
        threshold=float(row["threshold"]),
        slots=int(row["new_slots"]),
        # A table written before the audience cut has none.
        audience=items["audience_z"].to_numpy(np.float32) if "audience_z" in items else None,
    )
    if "row_audience_z" not in items:  # written before the row
        return new
    known = read(keys.RANKING_ITEM_FACTORS).select("movieId").toPandas()["movieId"]
    known_ids = np.sort(known.to_numpy(np.int64))
    linked = [np.asarray(f if f is not None else [], np.int64) for f in items["title_links"]]
    similarity = [np.asarray(s if s is not None else [], np.float32)
                  for s in items["title_similarity"]]  # fmt: skip
    columns = position_of(known_ids, np.concatenate([np.zeros(0, np.int64), *linked]))
    if (columns < 0).any():
        raise ValueError("ml/new_movie_factors links movies the ranking model does not know")
    links = sparse.csr_matrix(
        (np.concatenate([np.zeros(0, np.float32), *similarity]), columns,
         np.concatenate([[0], np.cumsum([len(f) for f in linked])])),
        shape=(len(items), len(known_ids)),
    )  # fmt: skip
    return replace(
        new,
        row=NewRow(
            size=int(row["row_size"]),
            audience=items["row_audience_z"].to_numpy(np.float32),
            fresh=items["fresh"].to_numpy(bool),
            links=TitleLinks(links),
            title_weight=float(row["title_weight"]),
        ),
    )


def read_new_movie_ratings(read: Read) -> DataFrame:
    """The Silver ratings (userId, movieId, rating) of the new movies (`ml/new_movie_factors`):
    outside the Gold split, and what a user has seen all the same."""
    new = read(keys.NEW_MOVIE_FACTORS).select("movieId")
    return read(keys.RATINGS_CLEAN).join(new, "movieId").select("userId", "movieId", "rating")

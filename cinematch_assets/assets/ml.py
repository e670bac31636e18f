"""ML: the rating model (stars) and the ranking model (what to show), tuned on the Gold
training split only, then evaluated on the held-out test split against baselines. Each
model is one typed artifact (`ml.artifacts`): a parameter row and two factor tables."""

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    AutomationCondition,
    Config,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)
from pydantic import Field
from pyspark.sql import DataFrame

from cinematch_assets import keys
from cinematch_assets.ml import artifacts
from cinematch_assets.ml.artifacts import CHAMPION_COLUMNS, ModelTables, Trained, Training
from cinematch_assets.ml.champion import candidate_policies, choose, score_policies
from cinematch_assets.ml.cold import fit_new_movie_model
from cinematch_assets.ml.content import (
    content_tables,
    content_vectors,
    gather_content,
    read_content,
)
from cinematch_assets.ml.ease import EaseModel, ease_key, fit_ease_model, tune_ease
from cinematch_assets.ml.evaluation import (
    BIAS_BASELINE,
    METRICS_SCHEMA,
    MOST_POPULAR,
    evaluate_served,
    headline_metrics,
    prediction_analysis,
)
from cinematch_assets.ml.fits import fit_key, fits_since, fits_so_far, is_kept, taken_or_fit
from cinematch_assets.ml.metrics import relevant_rows
from cinematch_assets.ml.ranking import RankingModel, fit_ranking_model, tune_ranking_model
from cinematch_assets.ml.rating import (
    RatingModel,
    RatingVariant,
    fit_biases,
    fit_rating_model,
    rating_key,
    refit_rating_model,
    tune_biases,
    tune_rating_model,
)
from cinematch_assets.ml.recommend import model_items
from cinematch_assets.ml.tuning import (
    Method,
    Split,
    TuningResult,
    concurrently,
    parameter_grid,
    plan_tuning,
    tuning_splits,
)
from cinematch_assets.reports.evaluation import (
    evaluation_figures,
    model_card,
    run_stamp,
    write_evaluation_report,
)
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.resources.io_manager import ALLOW_SCHEMA_EVOLUTION
from cinematch_assets.resources.lakehouse import Lakehouse
from cinematch_assets.storage import report_files

# Models follow new Gold data on their own once the automation sensor is switched on.
ML = {
    "group_name": "ml",
    "kinds": {"spark", "delta"},
    "automation_condition": AutomationCondition.eager(),
}
# What reads the models depends on all their tables.
MODEL_TABLES = [
    AssetKey(key)
    for tables in (artifacts.RATING, artifacts.RANKING, artifacts.EASE)
    for key in tables.asset_keys()
]


class TuningConfig(Config):
    """How hyperparameters are searched: on the training split only, never on test."""

    validation_fraction: float = Field(
        default=0.2, description="Share of the training rows a validation split holds out."
    )
    tuning_max_rows: int = Field(
        default=2_000_000,
        description="Above this many training rows, tuning runs on a sample of whole users "
        "with about this many ratings.",
    )
    parallel_fits: int = Field(default=3, description="Fits in flight at once while tuning.")
    seed: int = Field(default=42, description="Seed of ALS, the folds and the user sample.")


class RatingModelConfig(TuningConfig):
    tuning: Method = Field(
        default="auto",
        description="cv: k-fold cross-validation; validation: one held-out part of the "
        "training split; auto: cv up to cv_max_rows training rows, validation above.",
    )
    folds: int = Field(default=3, description="Folds of the cross-validation.")
    cv_max_rows: int = Field(
        default=1_000_000, description="auto tunes by cross-validation up to this many rows."
    )
    variant: RatingVariant = Field(
        default="bias_residual",
        description="bias_residual: damped user + movie biases, ALS on what they leave. "
        "user_mean: the article's model (ALS, nonnegative, on the user-mean normalized "
        "rating). none: ALS on raw stars.",
    )
    ranks: list[int] = Field(default=[20, 50], description="ALS ranks to try.")
    reg_params: list[float] = Field(default=[0.15, 0.25], description="regParams to try.")
    max_iters: list[int] = Field(default=[10], description="maxIters to try.")
    bias_dampings: list[float] = Field(
        default=[3.0, 10.0], description="Bias damping (pseudo-counts) to try."
    )
    bias_decay_weighting: list[bool] = Field(
        default=[False, True],
        description="Try biases learned with and/or without Gold's time-decay weights.",
    )


class RankingModelConfig(TuningConfig):
    """Tuned on one validation split (NDCG needs whole lists per user, not folds)."""

    ranks: list[int] = Field(default=[20, 30], description="ALS ranks to try.")
    reg_params: list[float] = Field(default=[0.1], description="regParams to try.")
    alphas: list[float] = Field(default=[2.0, 5.0], description="Confidence scales to try.")
    max_iters: list[int] = Field(default=[10], description="maxIters to try.")
    confidences: list[str] = Field(
        default=["decay_weight"],
        description="Confidence c = 1 + alpha * value, value = Gold's decay weight "
        "(decay_weight) or 1 (binary); try these.",
    )
    k: int = Field(default=10, description="Tuned for NDCG at this list length.")


class EaseConfig(TuningConfig):
    """Tuned on one validation split, like the ranking model."""

    regs: list[float] = Field(
        default=[100.0, 300.0, 1000.0], description="Regularization lambdas to try."
    )
    max_items: int = Field(
        default=10_000,
        description="Above this many movies EASE keeps the most-rated ones (its movies x "
        "movies inverse takes 3 x 8 n^2 bytes: 2.4 GB at 10k, 9.6 GB at 20k); the ALS "
        "ranking covers the rest.",
    )
    k: int = Field(default=10, description="Tuned for NDCG at this list length.")


class ChampionConfig(TuningConfig):
    """The served order: every combination below is scored on one validation split,
    with the models fitted on its training part (reused from their tuning when it ran on
    the same split in this run: keep `validation_fraction`, `tuning_max_rows` and `seed`
    equal to the models' for that)."""

    rankers: list[str] = Field(default=["als", "ease"], description="Ranking models.")
    stars_weights: list[float] = Field(
        default=[0.0, 0.5, 1.0, 2.0],
        description="Weights of the rating model's stars added to the z-scored ranking score.",
    )
    popularity_penalties: list[float] = Field(
        default=[0.0, 0.2, 0.35, 0.5],
        description="Weights of the z-scored log popularity subtracted (more discovery).",
    )
    star_floor: float = Field(
        default=3.0,
        description="A movie predicted below this many stars goes after every other (0: off).",
    )
    min_coverage: float = Field(
        default=0.25,
        description="The champion is the best validation NDCG among the candidates whose "
        "lists show at least this share of the catalog.",
    )
    k: int = Field(default=10, description="Chosen by NDCG at this list length.")


class EvaluationConfig(Config):
    k: int = Field(default=10, description="List length of the ranking metrics.")
    parallel_fits: int = Field(default=3, description="Scorings in flight at once.")


class ContentConfig(Config):
    vocabulary: int = Field(
        default=500, description="Tags kept for TF-IDF: those on the most movies."
    )
    min_tag_movies: int = Field(
        default=2, description="A tag counts only when it is on at least this many movies."
    )


@dataclass(frozen=True)
class Tuned:
    """What tuning chose, and how it scored on validation against the baseline."""

    searches: dict[str, TuningResult]
    metric: str
    validation: float
    baseline: str
    baseline_validation: float
    lower_is_better: bool


def _train(
    context: AssetExecutionContext,
    config: TuningConfig,
    data_root: DataRoot,
    train: DataFrame,
    *,
    method: Method,
    tune: Callable[[list[Split]], Tuned],
    fit: Callable[[DataFrame, Tuned], RatingModel | RankingModel | EaseModel],
    folds: int = 0,
    cv_max_rows: int = 0,
) -> Iterator[Output]:
    """Tune on splits of the training data, fit on all of it, save the Spark model and
    yield the model's three tables (ModelTables' fields are the output names)."""
    name = context.op_def.name
    train = train.cache()
    rows = train.count()
    plan = plan_tuning(
        rows,
        method=method,
        folds=folds,
        validation_fraction=config.validation_fraction,
        cv_max_rows=cv_max_rows,
        max_rows=config.tuning_max_rows,
    )
    context.log.info(f"{name}: tuning by {plan.describe()} of {rows:,} rows")
    fits_before = fits_so_far()
    started = time.perf_counter()
    tuned = tune(tuning_splits(train, plan, config.seed))
    tuning_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model = fit(train, tuned)
    fit_seconds = time.perf_counter() - started
    path = ""
    if getattr(model, "als", None) is not None:  # Spark ML's own save, for ALSModel.load
        path = str(data_root.models / name)
        model.als.write().overwrite().save(path)
    training = Training(
        seed=config.seed,
        tuning_plan=plan.describe(),
        searches=tuned.searches,
        train_rows=rows,
        tuning_seconds=round(tuning_seconds, 1),
        fit_seconds=round(fit_seconds, 1),
        saved_to=path,
        metric=tuned.metric,
        validation=tuned.validation,
        baseline=tuned.baseline,
        baseline_validation=tuned.baseline_validation,
        lower_is_better=tuned.lower_is_better,
    )
    trained = Trained(model, training)
    summary = trained.parameters() | training.summary()
    context.log.info(f"{name}: {summary}")
    tables = trained.tables(train.sparkSession, data_root.models / name)
    yield Output(
        tables.pop("model"),
        output_name="model",
        metadata={
            "fits": fits_since(fits_before),  # tuning's and the final one
            "tuning": MetadataValue.md("\n".join(s.markdown() for s in tuned.searches.values())),
            **{f"param/{k}": v for k, v in summary.items()},
        },
    )
    for output, table in tables.items():
        yield Output(table, output_name=output)
    train.unpersist()


def _model_outs(
    tables: ModelTables,
    description: str,
    items: str = "Per movie: ALS factors (`features`); the rating model's also `bias`.",
    metadata: dict | None = None,
) -> dict[str, AssetOut]:
    common = {**ML, "metadata": metadata or {}}
    outs = {"model": AssetOut(key=tables.model, description=description, **common)}
    if tables.users is not None:
        outs["users"] = AssetOut(
            key=tables.users,
            description="Per user: ALS factors (`features`); the rating model's also `bias`.",
            **common,
        )
    return outs | {"items": AssetOut(key=tables.items, description=items, **common)}


TRAIN = AssetIn(keys.TRAIN)


@multi_asset(
    name="als_rating_model",
    ins={"train": TRAIN},
    outs=_model_outs(
        artifacts.RATING,
        "Explicit ALS predicting stars: global mean + user bias + movie bias + u.v, clipped "
        "to [0.5, 5]. One row: the parameters tuning chose, the global mean, validation "
        "RMSE of the model and of the bias baseline, the tuning table and fit seconds.",
    ),
)
def als_rating_model(
    context: AssetExecutionContext, config: RatingModelConfig, data_root: DataRoot, train: DataFrame
):
    tuning = {"parallelism": config.parallel_fits, "log": context.log.info}

    def tune(splits: list[Split]) -> Tuned:
        biases = tune_biases(
            splits,
            parameter_grid(
                damping=config.bias_dampings, decay_weighted=config.bias_decay_weighting
            ),
            **tuning,
        )
        als = tune_rating_model(
            splits,
            parameter_grid(
                rank=config.ranks, reg_param=config.reg_params, max_iter=config.max_iters
            ),
            variant=config.variant,
            bias_params=biases.best_params,
            seed=config.seed,
            **tuning,
        )
        searches = {"bias_search": biases, "als_search": als}
        return Tuned(searches, "rmse", als.best_value, BIAS_BASELINE, biases.best_value, True)

    def fit(train: DataFrame, tuned: Tuned) -> RatingModel:
        biases = fit_biases(train, **tuned.searches["bias_search"].best_params)
        return fit_rating_model(
            train,
            variant=config.variant,
            seed=config.seed,
            biases=biases,
            **tuned.searches["als_search"].best_params,
        )

    yield from _train(
        context,
        config,
        data_root,
        train,
        method=config.tuning,
        folds=config.folds,
        cv_max_rows=config.cv_max_rows,
        tune=tune,
        fit=fit,
    )


@multi_asset(
    name="als_ranking_model",
    ins={"train": TRAIN},
    outs=_model_outs(
        artifacts.RANKING,
        "Implicit-feedback ALS (implicitPrefs) over who rated what, confidence from the "
        "time-decay weight: chooses what to show. One row: the parameters tuning chose, "
        "validation NDCG of the model and of most-popular, the tuning table, fit seconds.",
    ),
)
def als_ranking_model(
    context: AssetExecutionContext,
    config: RankingModelConfig,
    data_root: DataRoot,
    train: DataFrame,
):
    def tune(splits: list[Split]) -> Tuned:
        (split,) = splits
        search, popular = tune_ranking_model(
            split,
            parameter_grid(
                rank=config.ranks,
                reg_param=config.reg_params,
                alpha=config.alphas,
                max_iter=config.max_iters,
                confidence=config.confidences,
            ),
            k=config.k,
            seed=config.seed,
            parallelism=config.parallel_fits,
            log=context.log.info,
        )
        metric = f"ndcg@{config.k}"
        return Tuned(
            {"als_search": search}, metric, search.best_value, MOST_POPULAR, popular, False
        )

    def fit(train: DataFrame, tuned: Tuned) -> RankingModel:
        return fit_ranking_model(
            train, seed=config.seed, **tuned.searches["als_search"].best_params
        )

    yield from _train(context, config, data_root, train, method="validation", tune=tune, fit=fit)


@multi_asset(
    name="ease_ranking_model",
    ins={"train": TRAIN},
    outs=_model_outs(
        artifacts.EASE,
        "EASE (Steck 2019), the ranking challenger: closed-form item-item weights over who "
        "rated what. One row: lambda chosen on validation, validation NDCG of EASE and of "
        "most-popular, fit seconds.",
        items="The kept movies (movieId) and their row of EASE's weights B (`row`). B "
        "itself is a file in the model's folder (`weights_file` in ml/ease_model): a dense "
        "matrix is read straight into NumPy, never through Spark.",
        # The weights moved from this table to a file: older homes' tables change shape.
        metadata={ALLOW_SCHEMA_EVOLUTION: True},
    ),
)
def ease_ranking_model(
    context: AssetExecutionContext, config: EaseConfig, data_root: DataRoot, train: DataFrame
):
    def tune(splits: list[Split]) -> Tuned:
        (split,) = splits
        search, popular = tune_ease(
            split, config.regs, max_items=config.max_items, k=config.k, log=context.log.info
        )
        metric = f"ndcg@{config.k}"
        return Tuned({"search": search}, metric, search.best_value, MOST_POPULAR, popular, False)

    def fit(train: DataFrame, tuned: Tuned) -> EaseModel:
        reg = tuned.searches["search"].best_params["reg"]
        return fit_ease_model(train, reg=reg, max_items=config.max_items, log=context.log.info)

    yield from _train(context, config, data_root, train, method="validation", tune=tune, fit=fit)


@asset(
    key=keys.RANKING_CHAMPION,
    ins={"train": TRAIN},
    deps=MODEL_TABLES,
    description="The served order, chosen on validation: every candidate (ranking model x "
    "weight of the rating model's stars x popularity penalty, with the star floor) and its "
    "validation NDCG@k, coverage, novelty, Gini and share below the floor, the models "
    "fitted on the validation split's training part (the fits their own tuning made there "
    "earlier in the run, when it tuned on that split); `chosen` marks the champion.",
    **ML,
)
def ranking_champion(
    context: AssetExecutionContext,
    config: ChampionConfig,
    lakehouse: Lakehouse,
    train: DataFrame,
) -> Output:
    rating = artifacts.read_rating_model(lakehouse.read).model.params
    ranking = artifacts.read_ranking_model(lakehouse.read).model.params
    ease = artifacts.read_ease_model(lakehouse.read, lakehouse.data_root.models).model.params
    train = train.cache()
    rows = train.count()
    plan = plan_tuning(
        rows,
        method="validation",
        folds=0,
        validation_fraction=config.validation_fraction,
        cv_max_rows=0,
        max_rows=config.tuning_max_rows,
    )
    ((fit_on, validation),) = tuning_splits(train, plan, config.seed)
    started = time.perf_counter()
    # The chosen models fitted on the validation split's training part: the fits their
    # tuning made on this very split when this run tuned them so, fitted here otherwise.
    seed = config.seed
    fitted_as = {
        "rating": rating_key(fit_on, rating, seed),
        "ranking": fit_key("ranking", fit_on, asdict(ranking), seed),
        "ease": ease_key(fit_on, ease),
    }
    reused = sorted(name for name, key in fitted_as.items() if is_kept(key))
    fits_before = fits_so_far()
    fit_on = fit_on.cache()
    refitted = {
        "rating": lambda: taken_or_fit(
            fitted_as["rating"], lambda: refit_rating_model(fit_on, rating, seed=seed)
        ),
        "ranking": lambda: taken_or_fit(
            fitted_as["ranking"], lambda: fit_ranking_model(fit_on, seed=seed, **asdict(ranking))
        ),
        "ease": lambda: taken_or_fit(
            fitted_as["ease"],
            lambda: fit_ease_model(
                fit_on, reg=ease.reg, max_items=ease.max_items, log=context.log.info
            ),
        ),
    }
    models = concurrently(refitted, config.parallel_fits)
    refit_seconds = time.perf_counter() - started
    policies = candidate_policies(
        config.rankers, config.stars_weights, config.popularity_penalties, config.star_floor
    )
    scores = score_policies(
        policies,
        ranking=models["ranking"],
        rating=models["rating"],
        ease=models["ease"],
        history=fit_on.select("userId", "movieId", "rating"),
        users=validation,
        relevant=relevant_rows(validation),
        k=config.k,
    )
    choice = choose(policies, scores, config.min_coverage)
    seconds = time.perf_counter() - started
    context.log.info(f"Served order: {choice.policy.name}, {choice.why} ({seconds:.1f} s)")
    table = pd.DataFrame(
        [
            {"name": p.name, **asdict(p), **scores[p.name], "chosen": p == choice.policy}
            for p in policies
        ]
    )
    fit_on.unpersist()
    train.unpersist()
    return Output(
        train.sparkSession.createDataFrame(table),
        metadata={
            "chosen": choice.policy.name,
            "why": choice.why,
            "tuning": plan.describe(),
            "seconds": round(seconds, 1),
            "refit_seconds": round(refit_seconds, 1),
            "fits": fits_since(fits_before),
            "fits_reused_from_tuning": ", ".join(reused) or "none",
            "scoring_seconds": round(seconds - refit_seconds, 1),
            "candidates": MetadataValue.md(
                table.drop(columns=CHAMPION_COLUMNS).to_markdown(index=False)
            ),
        },
    )


@multi_asset(
    name="movie_content",
    ins={
        "movies": AssetIn(keys.MOVIES_CLEAN),
        "tags": AssetIn(keys.TAGS_CLEAN),
        "genome_scores": AssetIn(keys.bronze("genome_scores")),
        "genome_tags": AssetIn(keys.bronze("genome_tags")),
    },
    outs={
        "vectors": AssetOut(
            key=keys.MOVIE_CONTENT,
            description="What every Silver movie is without its ratings: genres, release "
            "decade, TF-IDF of its tags, the genome's tag relevance where the release has "
            "one; each part scaled to unit length. A movies x features matrix in the file "
            "`vectors_file` (models/movie_content/); this table: movieId, its `row` there.",
            # The vectors moved from this table to a file: older homes' tables change shape.
            metadata={ALLOW_SCHEMA_EVOLUTION: True},
            **ML,
        ),
        "features": AssetOut(
            key=keys.CONTENT_FEATURES,
            description="The name of each position of the content vectors (position, name: "
            "genre:Comedy, decade:1990s, tag:pixar, genome:pixar animation).",
            **ML,
        ),
    },
)
def movie_content(
    context: AssetExecutionContext,
    config: ContentConfig,
    data_root: DataRoot,
    movies: DataFrame,
    tags: DataFrame,
    genome_scores: DataFrame,
    genome_tags: DataFrame,
):
    started = time.perf_counter()
    inputs = gather_content(movies, tags, genome_scores, genome_tags)
    vectors = content_vectors(
        inputs.movies,
        inputs.tags,
        inputs.genome,
        vocabulary=config.vocabulary,
        min_tag_movies=config.min_tag_movies,
    )
    table, names = content_tables(movies.sparkSession, vectors, data_root.models)
    parts = {part: int(vectors.part(part).sum()) for part in ("genre", "decade", "tag", "genome")}
    covered = {
        f"movies_with_{part}": int((vectors.matrix[:, vectors.part(part)] != 0).any(1).sum())
        for part in ("tag", "genome")
    }
    seconds = time.perf_counter() - started
    context.log.info(f"Content vectors: {vectors.matrix.shape} in {seconds:.1f} s, {parts}")
    yield Output(
        table,
        output_name="vectors",
        metadata={
            "movies": len(vectors.movie_ids),
            "features": len(vectors.names),
            **{f"{part}_features": n for part, n in parts.items()},
            **covered,
            "megabytes": round(vectors.matrix.nbytes / 2**20, 1),
            "seconds": round(seconds, 1),
        },
    )
    yield Output(names, output_name="features")


class ContentModelConfig(Config):
    regs: list[float] = Field(
        default=[0.3, 3.0, 30.0, 300.0],
        description="Ridge regularizations from content to the models' movie spaces, tuned "
        "on known movies held out of the fit.",
    )
    tune_fraction: float = Field(
        default=0.1, description="Share of the known movies held out to tune the ridge."
    )
    threshold_quantile: float = Field(
        default=0.75,
        description="A new movie takes a slot when its score, on the user's scale, reaches "
        "this quantile of what held-out movies scored for the users who liked them, each "
        "movie weighing the same (0.75: as well matched as the best-matched quarter of the "
        "new movies people liked).",
    )
    new_slots: int = Field(
        default=2,
        description="Places of the shown list a new movie may take (0: no new movies).",
    )
    fill_share: float = Field(
        default=0.3,
        description="New movies fill at most this share of all the new slots, the "
        "best-matched first (the threshold is raised until they do; 1: no cap): each one "
        "pushes a known movie out of the shown list.",
    )
    audience_share: float = Field(
        default=0.1,
        description="A new movie is offered only to this share of the users, those it suits "
        "best (1: no limit), so one new movie cannot take a slot in most lists.",
    )
    seed: int = Field(default=42, description="Seed of the held-out movies.")


@multi_asset(
    name="content_model",
    deps=[*MODEL_TABLES, AssetKey(keys.MOVIE_CONTENT), AssetKey(keys.CONTENT_FEATURES)],
    ins={"train": TRAIN, "ratings": AssetIn(keys.RATINGS_CLEAN)},
    outs={
        "model": AssetOut(
            key=keys.CONTENT_MODEL,
            description="The hybrid model for new movies: ridge regressions from content "
            "vectors to the ranking model's movie factors and the rating model's movie bias "
            "and factors (regularizations tuned on held-out known movies), the score a new "
            "movie must reach to take a slot (the higher of the liked bar, from held-out "
            "movies, and the fill bar, from the slots new movies may fill), and how many "
            "slots.",
            **ML,
        ),
        "items": AssetOut(
            key=keys.NEW_MOVIE_FACTORS,
            description="Every movie the models do not know (too few ratings for Gold, or "
            "none), placed from its content (and its few ratings): movieId, "
            "ranking_features, rating_bias, rating_features, and audience_z, the score "
            "(on a user's own scale) of the share of users it is offered to.",
            **ML,
        ),
    },
)
def content_model(
    context: AssetExecutionContext,
    config: ContentModelConfig,
    lakehouse: Lakehouse,
    train: DataFrame,
    ratings: DataFrame,
):
    started = time.perf_counter()
    ranking = artifacts.read_ranking_model(lakehouse.read).model
    rating = artifacts.read_rating_model(lakehouse.read).model
    model = fit_new_movie_model(
        train,
        read_content(lakehouse.read, lakehouse.data_root.models),
        ranking=ranking,
        rating=rating,
        regs=config.regs,
        tune_fraction=config.tune_fraction,
        quantile=config.threshold_quantile,
        seed=config.seed,
        observed=ratings.select("userId", "movieId", "rating"),
        audience_share=config.audience_share,
        slots=config.new_slots,
        fill_share=config.fill_share,
    )
    searches = model.mapping.searches
    row = {
        "regs": [float(r) for r in config.regs],
        "ranking_reg": searches["ranking"].best,
        "rating_reg": searches["rating"].best,
        "threshold": model.threshold,
        "liked_bar": model.liked_bar,
        "fill_bar": model.fill_bar,
        "new_slots": config.new_slots,
        "fill_share": config.fill_share,
        "audience_share": config.audience_share,
        "ranking_rank": ranking.params.rank,
        "rating_rank": rating.params.rank,
        "known_movies": len(model.mapping.movie_ids),
        "new_movies": len(model.items),
        "liked_pairs": model.liked_pairs,
        "observed_ratings": model.observed.ratings,
        "observed_checked": model.observed.checked,
        "observed_content_rmse": model.observed.content_rmse,
        "observed_shifted_rmse": model.observed.shifted_rmse,
    }
    seconds = time.perf_counter() - started
    context.log.info(f"Content model: {row} in {seconds:.1f} s")
    scalars = {k: v for k, v in row.items() if k != "regs"}
    spark = train.sparkSession
    search_table = pd.DataFrame(
        [{"target": t, "reg": r, "held_out_mse": e} for t, s in searches.items()
         for r, e in s.errors.items()]
    )  # fmt: skip
    yield Output(
        spark.createDataFrame(pd.DataFrame([row])),
        output_name="model",
        metadata={
            **scalars,
            "seconds": round(seconds, 1),
            "ridge_search": MetadataValue.md(search_table.to_markdown(index=False)),
        },
    )
    yield Output(
        spark.createDataFrame(
            model.items,
            "movieId int, ranking_features array<float>, rating_bias float, "
            "rating_features array<float>, audience_z double",
        ),
        output_name="items",
        metadata={"new_movies": len(model.items)},
    )


@multi_asset(
    name="model_evaluation",
    ins={"train": TRAIN, "test": AssetIn(keys.TEST)},
    deps=[
        *MODEL_TABLES,
        AssetKey(keys.RANKING_CHAMPION),
        AssetKey(keys.CONTENT_MODEL),
        AssetKey(keys.NEW_MOVIE_FACTORS),
        AssetKey(keys.RATINGS_CLEAN),  # the new movies' ratings, which lists leave out
    ],
    outs={
        "predictions": AssetOut(
            key=keys.TEST_PREDICTIONS,
            description="Every Gold test row once per rating model and baseline: model, "
            "userId, movieId, rating, prediction, cold (user or movie unseen in training: "
            "the bias baseline predicted).",
            **ML,
        ),
        "recommendations": AssetOut(
            key=keys.TEST_RECOMMENDATIONS,
            description="The served lists of every test user, built by the same code as "
            "serving/recommendations with their training ratings left out: userId, rank, "
            "movieId, score, pred_rating, reason.",
            **ML,
        ),
        "metrics": AssetOut(
            key=keys.MODEL_EVALUATION,
            description="Held-out metrics of what is served, every test row and user: the "
            "rating model's RMSE/MSE/MAE and the served order's precision/recall/NDCG/MAP@k "
            "(with 95% intervals), coverage, novelty, Gini, beside the baselines (global "
            "mean, damped bias, most popular). The studies group judges the rest.",
            # The 95% interval columns joined the table: older homes' tables change shape.
            metadata={ALLOW_SCHEMA_EVOLUTION: True},
            **ML,
        ),
    },
)
def model_evaluation(
    context: AssetExecutionContext,
    config: EvaluationConfig,
    data_root: DataRoot,
    lakehouse: Lakehouse,
    train: DataFrame,
    test: DataFrame,
):
    rating = artifacts.read_rating_model(lakehouse.read)
    ranking = artifacts.read_ranking_model(lakehouse.read)
    ease = artifacts.read_ease_model(lakehouse.read, data_root.models)
    candidates, champion = artifacts.read_candidates(lakehouse.read)
    started = time.perf_counter()
    train, test = train.cache(), test.cache()
    evaluation = evaluate_served(
        train,
        test,
        rating=rating,
        ranking=ranking,
        items=model_items(
            ranking.model,
            rating.model,
            train,
            policy=champion,
            ease=ease.model if champion.ranker == "ease" else None,
            new=artifacts.read_new_movies(lakehouse.read),
        ),
        k=config.k,
        parallelism=config.parallel_fits,
        rated_new=artifacts.read_new_movie_ratings(lakehouse.read),
    )
    table = evaluation.table()
    versions = {
        keys.label(key): lakehouse.describe(key).version
        for key in (keys.TRAIN, keys.TEST, keys.RATING_MODEL, keys.RANKING_MODEL)
    }
    validation = lakehouse.read(keys.RANKING_CHAMPION).toPandas().drop(columns=CHAMPION_COLUMNS)
    card = model_card(
        rating, ranking, ease, champion, validation, table, versions, k=config.k,
        run=run_stamp(context.run_id),
    )  # fmt: skip
    figures = evaluation_figures(
        prediction_analysis(evaluation.predictions), rating, ranking, table, k=config.k
    )
    paths = write_evaluation_report(report_files.models_dir(data_root.path), figures, card, table)
    context.log.info(f"Model report: {paths['index.html'].as_uri()}")
    spark = train.sparkSession
    yield Output(evaluation.predictions, output_name="predictions")
    yield Output(evaluation.recommendations, output_name="recommendations")
    yield Output(
        spark.createDataFrame(table.to_dict("records"), METRICS_SCHEMA),
        output_name="metrics",
        metadata={
            "model_card": MetadataValue.md(card),
            "report": MetadataValue.path(str(paths["index.html"])),
            "evaluation_seconds": round(time.perf_counter() - started, 1),
            **headline_metrics(table),
        },
    )
    for cached in (train, test, evaluation.predictions, evaluation.recommendations):
        cached.unpersist()

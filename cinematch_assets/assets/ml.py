"""ML: the rating model (stars) and the ranking model (what to show), tuned on the Gold
training split only, then evaluated on the held-out test split against baselines. Each
model is one typed artifact (`ml.models.artifacts`): a parameter row and two factor tables."""

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    AutomationCondition,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)
from pyspark.sql import DataFrame

from cinematch_assets import keys
from cinematch_assets.assets.ml_config import (
    ChampionConfig,
    ContentConfig,
    ContentModelConfig,
    EaseConfig,
    EvaluationConfig,
    RankingModelConfig,
    RatingModelConfig,
    TuningConfig,
)
from cinematch_assets.ml.lists.new_movies import RowSettings, fit_new_movie_model
from cinematch_assets.ml.models import artifacts
from cinematch_assets.ml.models.artifacts import ModelTables, Trained, Training
from cinematch_assets.ml.models.content import (
    content_tables,
    content_vectors,
    gather_content,
    read_content,
)
from cinematch_assets.ml.models.ease import EaseModel, fit_ease_model
from cinematch_assets.ml.models.fits import fits_since, fits_so_far
from cinematch_assets.ml.models.ranking import RankingModel, fit_ranking_model
from cinematch_assets.ml.models.rating import RatingModel, fit_biases, fit_rating_model
from cinematch_assets.ml.models.titles import title_vectors
from cinematch_assets.ml.selection.champion import (
    CHAMPION_COLUMNS,
    candidate_policies,
    choose,
    score_policies,
    validation_fits,
)
from cinematch_assets.ml.selection.evaluation import (
    BIAS_BASELINE,
    METRICS_SCHEMA,
    MOST_POPULAR,
    evaluate_latest,
    headline_metrics,
    read_served,
)
from cinematch_assets.ml.selection.metrics import relevant_rows
from cinematch_assets.ml.selection.model_tuning import (
    tune_biases,
    tune_ease,
    tune_ranking_model,
    tune_rating_model,
)
from cinematch_assets.ml.selection.tuning import (
    Method,
    Split,
    parameter_grid,
    plan_tuning,
    tuning_splits,
    user_sample,
)
from cinematch_assets.reports.evaluation import run_stamp, write_model_report
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


def _train(
    context: AssetExecutionContext,
    config: TuningConfig,
    data_root: DataRoot,
    train: DataFrame,
    *,
    method: Method,
    tune: Callable[[list[Split]], Training],
    fit: Callable[[DataFrame, Training], RatingModel | RankingModel | EaseModel],
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
    training = replace(
        tuned,
        seed=config.seed,
        tuning_plan=plan.describe(),
        train_rows=rows,
        tuning_seconds=round(tuning_seconds, 1),
        fit_seconds=round(fit_seconds, 1),
        saved_to=path,
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
    def tune(splits: list[Split]) -> Training:
        biases = tune_biases(
            splits,
            parameter_grid(
                damping=config.bias_dampings, decay_weighted=config.bias_decay_weighting
            ),
            log=context.log.info,
        )
        als = tune_rating_model(
            splits,
            parameter_grid(
                rank=config.ranks, reg_param=config.reg_params, max_iter=config.max_iters
            ),
            variant=config.variant,
            bias_params=biases.best_params,
            seed=config.seed,
            parallelism=config.parallel_fits,
            log=context.log.info,
            tolerance=config.rmse_tolerance,
        )
        searches = {"bias_search": biases, "als_search": als}
        return Training(
            searches=searches, metric="rmse", validation=als.best_value,
            baseline=BIAS_BASELINE, baseline_validation=biases.best_value, lower_is_better=True,
        )  # fmt: skip

    def fit(train: DataFrame, tuned: Training) -> RatingModel:
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
    def tune(splits: list[Split]) -> Training:
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
            tolerance=config.ndcg_tolerance,
        )
        metric = f"ndcg@{config.k}"
        return Training(
            searches={"als_search": search}, metric=metric, validation=search.best_value,
            baseline=MOST_POPULAR, baseline_validation=popular, lower_is_better=False,
        )  # fmt: skip

    def fit(train: DataFrame, tuned: Training) -> RankingModel:
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
        "rated what (or with the ratings' time-decay weights). One row: lambda and the "
        "weighting chosen on validation, validation NDCG of EASE and of "
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
    def tune(splits: list[Split]) -> Training:
        (split,) = splits
        # The weighting outermost: one Gram at a time, each for all its lambdas.
        grid = parameter_grid(decay_weighted=config.decay_weighting, reg=config.regs)
        search, popular = tune_ease(
            split, grid, max_items=config.max_items, k=config.k, log=context.log.info
        )
        metric = f"ndcg@{config.k}"
        return Training(
            searches={"search": search}, metric=metric, validation=search.best_value,
            baseline=MOST_POPULAR, baseline_validation=popular, lower_is_better=False,
        )  # fmt: skip

    def fit(train: DataFrame, tuned: Training) -> EaseModel:
        best = tuned.searches["search"].best_params
        return fit_ease_model(
            train, reg=best["reg"], max_items=config.max_items,
            decay_weighted=best["decay_weighted"], log=context.log.info,
        )  # fmt: skip

    yield from _train(context, config, data_root, train, method="validation", tune=tune, fit=fit)


@asset(
    key=keys.RANKING_CHAMPION,
    ins={"train": TRAIN, "movies": AssetIn(keys.MOVIES_CLEAN)},
    deps=MODEL_TABLES,
    description="The served order, chosen on validation: every candidate (ranking model, "
    "EASE alone or blended with implicit ALS, x weight of the rating model's stars x "
    "popularity penalty x weight of the genre taste, with the star floor) and its "
    "validation NDCG@k, coverage, novelty, Gini and share below the floor, the models "
    "fitted on the validation split's training part (the fits their own tuning made there "
    "earlier in the run, when it tuned on that split); `chosen` marks the champion.",
    # The genre taste's and ALS's weights joined the table: older homes' tables change shape.
    metadata={ALLOW_SCHEMA_EVOLUTION: True},
    **ML,
)
def ranking_champion(
    context: AssetExecutionContext,
    config: ChampionConfig,
    lakehouse: Lakehouse,
    train: DataFrame,
    movies: DataFrame,
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
    fits_before = fits_so_far()
    fit_on = fit_on.cache()
    models = validation_fits(
        fit_on, rating=rating, ranking=ranking, ease=ease, seed=config.seed,
        parallelism=config.parallel_fits, log=context.log.info,
    )  # fmt: skip
    refit_seconds = time.perf_counter() - started
    policies = candidate_policies(
        config.rankers, config.stars_weights, config.popularity_penalties, config.star_floor,
        config.taste_weights, config.als_weights,
    )  # fmt: skip
    scores = score_policies(
        policies,
        ranking=models.ranking,
        rating=models.rating,
        ease=models.ease,
        history=fit_on.select("userId", "movieId", "rating"),
        users=validation,
        relevant=relevant_rows(validation),
        k=config.k,
        movies=movies,
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
            "min_coverage": config.min_coverage,
            "tuning": plan.describe(),
            "seconds": round(seconds, 1),
            "refit_seconds": round(refit_seconds, 1),
            "fits": fits_since(fits_before),
            "fits_reused_from_tuning": ", ".join(models.reused) or "none",
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


@multi_asset(
    name="content_model",
    deps=[*MODEL_TABLES, AssetKey(keys.MOVIE_CONTENT), AssetKey(keys.CONTENT_FEATURES)],
    ins={
        "train": TRAIN,
        "ratings": AssetIn(keys.RATINGS_CLEAN),
        "movies": AssetIn(keys.MOVIES_CLEAN),
    },
    outs={
        "model": AssetOut(
            key=keys.CONTENT_MODEL,
            description="The hybrid model for new movies: ridge regressions from content "
            "vectors to the ranking model's movie factors and the rating model's movie bias "
            "and factors (regularizations tuned on held-out known movies), the score a new "
            "movie must reach to take a slot (the higher of the liked bar, from held-out "
            "movies, and the fill bar, from the slots new movies may fill), and how many "
            "slots.",
            # The title links' genre rule joined the table: older homes' tables change shape.
            metadata={ALLOW_SCHEMA_EVOLUTION: True},
            **ML,
        ),
        "items": AssetOut(
            key=keys.NEW_MOVIE_FACTORS,
            description="Every movie the models do not know (too few ratings for Gold, or "
            "none), placed from its content (and its few ratings): movieId, "
            "ranking_features, rating_bias, rating_features, audience_z (the score, on a "
            "user's own scale, of the share of users a new slot offers it to), and for the "
            '"New for you" row: row_audience_z (the fit of the share of users the row '
            "offers it to), fresh, and the known movies whose titles it shares "
            "(title_links, title_similarity).",
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
    movies: DataFrame,
):
    started = time.perf_counter()
    titles = movies.select("movieId", "title_clean", "release_year", "genres").toPandas()
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
        row=RowSettings(
            size=config.row_size,
            share=config.row_share,
            title_weight=config.title_weight,
            min_title_similarity=config.min_title_similarity,
            min_shared_genres=config.min_shared_genres,
            fresh_years=config.fresh_years,
        ),
        title_weights=config.title_weights,
        titles=title_vectors(titles["movieId"], titles["title_clean"], titles["genres"]),
        release_years=titles.set_index("movieId")["release_year"],
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
        "row_size": config.row_size,
        "row_share": config.row_share,
        "title_weight": model.row.title_weight,
        "min_title_similarity": config.min_title_similarity,
        "min_shared_genres": config.min_shared_genres,
        "title_weight_users": model.title_weight_search.users if model.title_weight_search else 0,
        "fresh_since": model.fresh_since,
        "fresh_new_movies": int(model.items["fresh"].sum()),
        "new_movies_sharing_a_title": int((model.items["title_links"].map(len) > 0).sum()),
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
        spark.createDataFrame(pd.DataFrame([row]).astype({"fresh_since": "Int64"})),
        output_name="model",
        metadata={
            **scalars,
            "seconds": round(seconds, 1),
            "ridge_search": MetadataValue.md(search_table.to_markdown(index=False)),
            "title_weight_search": MetadataValue.md(
                pd.DataFrame(
                    model.title_weight_search.table() if model.title_weight_search else []
                ).to_markdown(index=False)
            ),
        },
    )
    yield Output(
        spark.createDataFrame(
            model.items,
            "movieId int, ranking_features array<float>, rating_bias float, "
            "rating_features array<float>, audience_z double, row_audience_z double, "
            "fresh boolean, title_links array<int>, title_similarity array<float>",
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
        AssetKey(keys.MOVIES_CLEAN),  # the movies' genres, for the genre taste
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
            description="The served lists of the sampled test users (every one when there "
            "are fewer than the sample), built by the same code as "
            "serving/recommendations with their training ratings left out: userId, rank, "
            "movieId, score, pred_rating, reason.",
            **ML,
        ),
        "metrics": AssetOut(
            key=keys.MODEL_EVALUATION,
            description="Held-out metrics of what is served: the rating model's "
            "RMSE/MSE/MAE on every test row, the served order's precision/recall/NDCG/MAP@k "
            "(with 95% intervals), coverage, novelty and Gini on a seeded sample of the test "
            "users (every one when there are fewer), beside the baselines (global mean, "
            "damped bias, most popular) on the same rows and users. The studies group "
            "judges the rest, and scores the served lists on every test user.",
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
    served = read_served(lakehouse.read, data_root.models)
    started = time.perf_counter()
    train, test = train.cache(), test.cache()
    sample = user_sample(test, config.sample_users, config.seed)
    evaluation = evaluate_latest(
        lakehouse.read, served, train, test, k=config.k, list_users=sample,
        parallelism=config.parallel_fits,
    )  # fmt: skip
    table = evaluation.table()
    liked_users = relevant_rows(test).select("userId").distinct().count()
    versions = {
        keys.label(key): lakehouse.describe(key).version
        for key in (keys.TRAIN, keys.TEST, keys.RATING_MODEL, keys.RANKING_MODEL)
    }
    validation = lakehouse.read(keys.RANKING_CHAMPION).toPandas().drop(columns=CHAMPION_COLUMNS)
    card, paths = write_model_report(
        report_files.models_dir(data_root.path), served, evaluation, validation, versions,
        k=config.k, run=run_stamp(context.run.run_id), liked_users=liked_users,
    )  # fmt: skip
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
            "test_users_with_a_liked_movie": liked_users,
            **headline_metrics(table),
        },
    )
    for cached in (train, test, evaluation.predictions, evaluation.recommendations):
        cached.unpersist()

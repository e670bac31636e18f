"""ML: the rating model (stars) and the ranking model (what to show), tuned on the Gold
training split only, then evaluated on the held-out test split against baselines."""

import time
from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    AutomationCondition,
    Config,
    MetadataValue,
    Output,
    multi_asset,
)
from pydantic import Field
from pyspark.sql import DataFrame

from cinematch_assets.ml.evaluation import (
    METRICS_SCHEMA,
    evaluate_models,
    headline_metrics,
    prediction_analysis,
)
from cinematch_assets.ml.ranking import (
    RankingModel,
    fit_ranking_model,
    tune_ranking_model,
)
from cinematch_assets.ml.rating import (
    RatingModel,
    RatingVariant,
    fit_biases,
    fit_rating_model,
    tune_biases,
    tune_rating_model,
)
from cinematch_assets.ml.tuning import (
    Method,
    Split,
    TuningPlan,
    TuningResult,
    parameter_grid,
    plan_tuning,
    tuning_splits,
)
from cinematch_assets.reports.evaluation import (
    evaluation_figures,
    model_card,
    write_evaluation_report,
)
from cinematch_assets.resources.lakehouse import Lakehouse
from cinematch_assets.settings import models_root, reports_root

# Models follow new Gold data on their own once the automation sensor is switched on.
ML = {
    "group_name": "ml",
    "kinds": {"spark", "delta"},
    "automation_condition": AutomationCondition.eager(),
}
TRAIN = AssetIn(["gold", "train_features_ml"])
TEST = AssetIn(["gold", "test_features_ml"])
RATING_MODEL = ["ml", "als_rating_model"]
RANKING_MODEL = ["ml", "als_ranking_model"]


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


class EvaluationConfig(Config):
    k: int = Field(default=10, description="List length of the ranking metrics.")
    ablation: bool = Field(
        default=True, description="Refit with decay and normalization flipped, and score."
    )
    ablation_max_rows: int = Field(
        default=5_000_000,
        description="Skip the ablation above this many training rows: its four refits on "
        "every row cost more than the models themselves (set higher to keep it).",
    )
    seed: int = Field(default=42, description="Seed of the baseline and ablation fits.")
    parallel_fits: int = Field(default=3, description="Fits and scorings in flight at once.")


def _tuning_splits(
    context: AssetExecutionContext,
    config: TuningConfig,
    train: DataFrame,
    *,
    method: Method,
    folds: int = 0,
    cv_max_rows: int = 0,
) -> tuple[int, TuningPlan, list[Split]]:
    """(training rows, the plan, its splits) for `train`, which should be cached."""
    rows = train.count()
    plan = plan_tuning(
        rows,
        method=method,
        folds=folds,
        validation_fraction=config.validation_fraction,
        cv_max_rows=cv_max_rows,
        max_rows=config.tuning_max_rows,
    )
    context.log.info(f"{context.op_def.name}: tuning by {plan.describe()} of {rows:,} rows")
    return rows, plan, tuning_splits(train, plan, config.seed)


def _model_outputs(
    context: AssetExecutionContext,
    model: RatingModel | RankingModel,
    params: dict[str, Any],
    searches: dict[str, TuningResult],
    *,
    config: TuningConfig,
    plan: TuningPlan,
    rows: int,
    tuning_seconds: float,
    fit_seconds: float,
) -> Iterator[Output]:
    """The model's parameter row (with what every model records: how it was tuned, the
    searches as JSON, sizes, seconds, where Spark ML saved it), then its factor tables."""
    name = context.op_def.name
    path = models_root() / name
    model.als.write().overwrite().save(str(path))
    params = {
        **model.params,
        **params,
        "seed": config.seed,
        "tuning_plan": plan.describe(),
        **{key: search.to_json() for key, search in searches.items()},
        "train_rows": rows,
        "tuning_seconds": round(tuning_seconds, 1),
        "fit_seconds": round(fit_seconds, 1),
        "path": str(path),
    }
    summary = {k: v for k, v in params.items() if k not in searches}
    context.log.info(f"{name}: {summary}")
    tables = "\n".join(search.markdown() for search in searches.values())
    yield Output(
        model.users.sparkSession.createDataFrame([params]),
        output_name="model",
        metadata={
            "tuning": MetadataValue.md(tables),
            **{f"param/{k}": v for k, v in summary.items()},
        },
    )
    yield Output(model.users, output_name="users")
    yield Output(model.items, output_name="items")


def _model_outs(name: str, description: str) -> dict[str, AssetOut]:
    return {
        "model": AssetOut(key=["ml", f"als_{name}_model"], description=description, **ML),
        "users": AssetOut(
            key=["ml", f"{name}_user_factors"],
            description="Per user: ALS factors (`features`); the rating model's also `bias`.",
            **ML,
        ),
        "items": AssetOut(
            key=["ml", f"{name}_item_factors"],
            description="Per movie: ALS factors (`features`); the rating model's also `bias`.",
            **ML,
        ),
    }


@multi_asset(
    name="als_rating_model",
    ins={"train": TRAIN},
    outs=_model_outs(
        "rating",
        "Explicit ALS predicting stars: global mean + user bias + movie bias + u.v, clipped "
        "to [0.5, 5]. One row: the parameters tuning chose, the global mean, validation "
        "RMSE of the model and of the bias baseline, the tuning table and fit seconds.",
    ),
)
def als_rating_model(context: AssetExecutionContext, config: RatingModelConfig, train: DataFrame):
    train = train.cache()
    rows, plan, splits = _tuning_splits(
        context,
        config,
        train,
        method=config.tuning,
        folds=config.folds,
        cv_max_rows=config.cv_max_rows,
    )
    tuning = {"parallelism": config.parallel_fits, "log": context.log.info}
    started = time.perf_counter()
    bias_search = tune_biases(
        splits,
        parameter_grid(damping=config.bias_dampings, decay_weighted=config.bias_decay_weighting),
        **tuning,
    )
    als_search = tune_rating_model(
        splits,
        parameter_grid(rank=config.ranks, reg_param=config.reg_params, max_iter=config.max_iters),
        variant=config.variant,
        bias_params=bias_search.best_params,
        seed=config.seed,
        **tuning,
    )
    tuning_seconds = time.perf_counter() - started
    started = time.perf_counter()
    biases = fit_biases(train, **bias_search.best_params)
    model = fit_rating_model(
        train, variant=config.variant, seed=config.seed, biases=biases, **als_search.best_params
    )
    fit_seconds = time.perf_counter() - started
    yield from _model_outputs(
        context,
        model,
        {
            "global_mean": model.global_mean,
            "bias_damping": bias_search.best_params["damping"],
            "bias_decay_weighted": bias_search.best_params["decay_weighted"],
            "validation_rmse": als_search.best_value,
            "baseline_validation_rmse": bias_search.best_value,
        },
        {"bias_search": bias_search, "als_search": als_search},
        config=config,
        plan=plan,
        rows=rows,
        tuning_seconds=tuning_seconds,
        fit_seconds=fit_seconds,
    )
    train.unpersist()


@multi_asset(
    name="als_ranking_model",
    ins={"train": TRAIN},
    outs=_model_outs(
        "ranking",
        "Implicit-feedback ALS (implicitPrefs) over who rated what, confidence from the "
        "time-decay weight: chooses what to show. One row: the parameters tuning chose, "
        "validation NDCG of the model and of most-popular, the tuning table, fit seconds.",
    ),
)
def als_ranking_model(context: AssetExecutionContext, config: RankingModelConfig, train: DataFrame):
    train = train.cache()
    rows, plan, (split,) = _tuning_splits(context, config, train, method="validation")
    started = time.perf_counter()
    search, popular_ndcg = tune_ranking_model(
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
    tuning_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model = fit_ranking_model(train, seed=config.seed, **search.best_params)
    fit_seconds = time.perf_counter() - started
    yield from _model_outputs(
        context,
        model,
        {
            "k": config.k,
            "validation_ndcg": search.best_value,
            "most_popular_validation_ndcg": popular_ndcg,
        },
        {"als_search": search},
        config=config,
        plan=plan,
        rows=rows,
        tuning_seconds=tuning_seconds,
        fit_seconds=fit_seconds,
    )
    train.unpersist()


@multi_asset(
    name="model_evaluation",
    ins={
        "train": TRAIN,
        "test": TEST,
        "rating_params": AssetIn(RATING_MODEL),
        "rating_users": AssetIn(["ml", "rating_user_factors"]),
        "rating_items": AssetIn(["ml", "rating_item_factors"]),
        "ranking_params": AssetIn(RANKING_MODEL),
        "ranking_users": AssetIn(["ml", "ranking_user_factors"]),
        "ranking_items": AssetIn(["ml", "ranking_item_factors"]),
    },
    outs={
        "predictions": AssetOut(
            key=["ml", "test_predictions"],
            description="Every Gold test row once per rating model and baseline: model, "
            "userId, movieId, rating, prediction, cold (user or movie unseen in training: "
            "the bias baseline predicted).",
            **ML,
        ),
        "recommendations": AssetOut(
            key=["ml", "test_recommendations"],
            description="The ranking model's top-k for every test user among the movies "
            "they did not rate in training: userId, rank, movieId, score.",
            **ML,
        ),
        "metrics": AssetOut(
            key=["ml", "model_evaluation"],
            description="Held-out metrics per model, baseline and ablation: RMSE/MSE/MAE "
            "for stars, precision/recall/NDCG/MAP@k and coverage for lists.",
            **ML,
        ),
    },
)
def model_evaluation(
    context: AssetExecutionContext,
    config: EvaluationConfig,
    lakehouse: Lakehouse,
    train: DataFrame,
    test: DataFrame,
    rating_params: DataFrame,
    rating_users: DataFrame,
    rating_items: DataFrame,
    ranking_params: DataFrame,
    ranking_users: DataFrame,
    ranking_items: DataFrame,
):
    rating_row = rating_params.first().asDict()
    ranking_row = ranking_params.first().asDict()
    started = time.perf_counter()
    train, test = train.cache(), test.cache()
    ablation = config.ablation and rating_row["train_rows"] <= config.ablation_max_rows
    if config.ablation and not ablation:
        context.log.info(
            f"Ablation skipped: {rating_row['train_rows']:,} training rows is above "
            f"ablation_max_rows={config.ablation_max_rows:,}"
        )
    evaluation = evaluate_models(
        train,
        test,
        rating=RatingModel(rating_row["global_mean"], rating_users, rating_items, rating_row),
        ranking=RankingModel(ranking_users, ranking_items, ranking_row),
        k=config.k,
        seed=config.seed,
        ablation=ablation,
        parallelism=config.parallel_fits,
    )
    table = evaluation.table()
    versions = {
        "/".join(key): lakehouse.describe(key).version
        for key in (
            ["gold", "train_features_ml"],
            ["gold", "test_features_ml"],
            RATING_MODEL,
            RANKING_MODEL,
        )
    }
    card = model_card(rating_row, ranking_row, table, versions, k=config.k)
    figures = evaluation_figures(
        prediction_analysis(evaluation.predictions), rating_row, ranking_row, table, k=config.k
    )
    paths = write_evaluation_report(reports_root() / "ml", figures, card, table)
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

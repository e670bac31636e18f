"""Studies: what judges the design (ablation, the article's variant, every candidate order
on test, the discovery curve, the cold-movie protocol, the rating model's search by
cross-validation), on the product's models and split.
Their own group and job (`make studies`), downstream of the product and never upstream
of serving: nobody waits for them to get their lists. Each study is a table of the
evaluation's shape (`ml.evaluation.METRICS_SCHEMA`); `studies/report` writes their charts
and card, which the app shows beside the product's."""

import time

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    Config,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field
from pyspark.sql import DataFrame

from cinematch_assets import keys
from cinematch_assets.assets.gold import FeatureConfig
from cinematch_assets.assets.ml import MODEL_TABLES, TRAIN
from cinematch_assets.assets.ml_config import ChampionConfig, TuningConfig
from cinematch_assets.checks import latest_metadata
from cinematch_assets.ml.lists.new_movies import RowSettings
from cinematch_assets.ml.models import artifacts
from cinematch_assets.ml.models.content import read_content
from cinematch_assets.ml.models.titles import title_vectors
from cinematch_assets.ml.selection.champion import read_candidates
from cinematch_assets.ml.selection.cold import cold_movie_evaluation
from cinematch_assets.ml.selection.evaluation import METRICS_SCHEMA, metrics_table, read_served
from cinematch_assets.ml.selection.next_period import Procedure, Settings, next_period_study
from cinematch_assets.ml.selection.studies import (
    ablation_study,
    candidates_study,
    rating_cv_study,
    served_every_user_study,
)
from cinematch_assets.ml.selection.tuning import user_sample
from cinematch_assets.reports.evaluation import (
    next_period_sentence,
    run_stamp,
    sample_check,
    studies_card,
    studies_figures,
    with_next_period,
    write_evaluation_report,
)
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.resources.io_manager import ALLOW_SCHEMA_EVOLUTION
from cinematch_assets.resources.lakehouse import Lakehouse
from cinematch_assets.storage import report_files
from cinematch_assets.storage.atomic_files import write_atomic

STUDIES = {
    "group_name": "studies",
    "kinds": {"spark", "delta"},
    # The rows' id column joined the table: older homes' tables change shape.
    "metadata": {ALLOW_SCHEMA_EVOLUTION: True},
}
TEST = AssetIn(keys.TEST)
STUDY_TABLES = [
    keys.STUDY_ABLATION, keys.STUDY_CANDIDATES, keys.STUDY_COLD_MOVIES, keys.STUDY_RATING_CV,
    keys.STUDY_SERVED_EVERY_USER, keys.STUDY_NEXT_PERIOD,
]  # fmt: skip


class StudyConfig(Config):
    k: int = Field(default=10, description="List length of the ranking metrics.")
    sample_users: int = Field(
        default=20_000,
        description="Lists are scored on this many test users, a seeded sample (every user "
        "when there are fewer), each mean with its 95% interval.",
    )
    seed: int = Field(default=42, description="Seed of the user sample and of the refits.")
    parallel_fits: int = Field(default=3, description="Fits and scorings in flight at once.")


class AblationConfig(StudyConfig):
    ablation: bool = Field(
        default=True, description="Refit with decay and normalization flipped, and score."
    )
    ablation_max_rows: int = Field(
        default=5_000_000,
        description="Skip the ablation above this many training rows: its four refits on "
        "every row cost more than the models themselves (set higher to keep it).",
    )


class ColdConfig(Config):
    k: int = Field(default=10, description="List length of the ranking metrics.")
    seed: int = Field(default=42, description="Seed of the held-out movies.")
    parallel_fits: int = Field(default=3, description="Fits in flight at once.")
    cold_fraction: float = Field(
        default=0.1,
        description="Share of the Gold movies held out of training entirely (every rating) "
        "to test what their content alone predicts, with the content model's settings.",
    )


class CrossValidationConfig(Config):
    folds: int = Field(default=3, description="Folds of the cross-validation.")
    max_rows: int = Field(
        default=2_000_000,
        description="Above this many training rows, the folds are cut from a sample of "
        "whole users with about this many ratings (as the product's tuning samples).",
    )
    parallel_fits: int = Field(default=2, description="Fits in flight at once.")


class NextPeriodConfig(TuningConfig):
    """The replay tunes as the product does (`TuningConfig`: its validation split, its
    sample above `tuning_max_rows`, its seed)."""

    k: int = Field(default=10, description="List length of the ranking metrics.")
    sample_users: int = Field(
        default=20_000,
        description="Lists are scored on this many users with ratings on both sides of T, a "
        "seeded sample (every one when there are fewer), each mean with its 95% interval.",
    )
    share_after: float = Field(
        default=0.1,
        description="The cutoff T leaves this share of Gold's ratings (train and test) after it.",
    )
    recent_days: int = Field(
        default=28, description="Recently popular: the movies most rated in these days before T."
    )
    rp3_betas: list[float] = Field(
        default=[0.3, 0.5, 0.7], description="RP3beta's popularity exponents to try."
    )
    sequence_regs: list[float] = Field(
        default=[100.0, 300.0, 1000.0], description="The sequence model's lambdas to try."
    )
    sequence_window: int = Field(
        default=10, description="The sequence model reads each user's last this many movies."
    )
    sequence_decay: float = Field(
        default=0.9,
        description="Weight of each step further back in the sequence model's window (the "
        "latest movie weighs 1).",
    )


def _table(train: DataFrame, rows: list[dict], seconds: float, **metadata) -> Output:
    table = metrics_table(rows)
    return Output(
        train.sparkSession.createDataFrame(table.to_dict("records"), METRICS_SCHEMA),
        metadata={
            "rows": MetadataValue.md(table.dropna(axis=1, how="all").to_markdown(index=False)),
            "seconds": round(seconds, 1),
            **metadata,
        },
    )


@asset(
    key=keys.STUDY_ABLATION,
    ins={"train": TRAIN, "test": TEST},
    deps=MODEL_TABLES,
    description="The article's variant (stars, and lists by stars) and the chosen models "
    "refitted with one choice flipped (decay weights, normalization), on the test split: "
    "stars on every row, lists on the user sample with 95% intervals.",
    **STUDIES,
)
def ablation(
    context: AssetExecutionContext,
    config: AblationConfig,
    lakehouse: Lakehouse,
    train: DataFrame,
    test: DataFrame,
) -> Output:
    started = time.perf_counter()
    rating = artifacts.read_rating_model(lakehouse.read)
    ranking = artifacts.read_ranking_model(lakehouse.read)
    rows = rating.training.train_rows
    flip = config.ablation and rows <= config.ablation_max_rows
    if config.ablation and not flip:
        context.log.info(
            f"Ablation skipped: {rows:,} training rows is above "
            f"ablation_max_rows={config.ablation_max_rows:,}"
        )
    train, test = train.cache(), test.cache()
    users = user_sample(test, config.sample_users, config.seed).cache()
    found = ablation_study(
        train, test, users, rating=rating, ranking=ranking, k=config.k, seed=config.seed,
        ablation=flip, parallelism=config.parallel_fits,
    )  # fmt: skip
    out = _table(train, found, time.perf_counter() - started, ablation=flip)
    for cached in (train, test, users):
        cached.unpersist()
    return out


@asset(
    key=keys.STUDY_CANDIDATES,
    ins={"train": TRAIN, "test": TEST},
    deps=[*MODEL_TABLES, AssetKey(keys.RANKING_CHAMPION), AssetKey(keys.MOVIES_CLEAN)],
    description="Every candidate served order (role `candidate`) and the champion with a "
    "growing popularity penalty (role `discovery`) on the test split, for the user sample, "
    "with 95% intervals: what the choice on validation would have found on test.",
    **STUDIES,
)
def candidates_on_test(
    config: StudyConfig,
    data_root: DataRoot,
    lakehouse: Lakehouse,
    train: DataFrame,
    test: DataFrame,
) -> Output:
    started = time.perf_counter()
    candidates, champion = read_candidates(lakehouse.read)
    uses_ease = any(p.ranker == "ease" for p in candidates)
    train = train.cache()
    users = user_sample(test, config.sample_users, config.seed).cache()
    found = candidates_study(
        train,
        test,
        users,
        rating=artifacts.read_rating_model(lakehouse.read).model,
        ranking=artifacts.read_ranking_model(lakehouse.read).model,
        ease=artifacts.read_ease_model(lakehouse.read, data_root.models).model
        if uses_ease
        else None,
        candidates=candidates,
        champion=champion,
        k=config.k,
        movies=lakehouse.read(keys.MOVIES_CLEAN),
    )
    out = _table(train, found, time.perf_counter() - started, users=users.count())
    for cached in (train, users):
        cached.unpersist()
    return out


@asset(
    key=keys.STUDY_SERVED_EVERY_USER,
    ins={"train": TRAIN, "test": TEST},
    deps=[
        *MODEL_TABLES,
        AssetKey(keys.RANKING_CHAMPION),
        AssetKey(keys.CONTENT_MODEL),
        AssetKey(keys.NEW_MOVIE_FACTORS),
        AssetKey(keys.RATINGS_CLEAN),
        AssetKey(keys.MOVIES_CLEAN),
    ],  # fmt: skip
    description="The served order's lists scored on every test user, with 95% intervals "
    "(the product's held-out evaluation scores a seeded sample of them: the studies card "
    "checks that sample against this).",
    **STUDIES,
)
def served_every_user(
    context: AssetExecutionContext,
    config: StudyConfig,
    data_root: DataRoot,
    lakehouse: Lakehouse,
    train: DataFrame,
    test: DataFrame,
) -> Output:
    started = time.perf_counter()
    train, test = train.cache(), test.cache()
    served = read_served(lakehouse.read, data_root.models)
    found = served_every_user_study(lakehouse.read, served, train, test, k=config.k)
    out = _table(train, found, time.perf_counter() - started, users=found[0]["users"])
    for cached in (train, test):
        cached.unpersist()
    return out


@asset(
    key=keys.STUDY_NEXT_PERIOD,
    ins={"train": TRAIN, "test": TEST, "movies": AssetIn(keys.MOVIES_CLEAN)},
    deps=[*MODEL_TABLES, AssetKey(keys.RANKING_CHAMPION)],
    description="The served lists judged as deployed: Gold's ratings cut at one time T (the "
    "last tenth after it), the served procedure (each model's search with the product's "
    "grids, the champion among the product's candidates, the star floor) replayed on "
    "everything before T, and its lists scored on what each user rated after T, beside most "
    "popular, recently popular, each model alone and the candidates (EASE's other Gram, EASE "
    "+ implicit ALS, RP3beta, the sequence model), with 95% intervals.",
    **STUDIES,
)
def next_period(
    context: AssetExecutionContext,
    config: NextPeriodConfig,
    lakehouse: Lakehouse,
    train: DataFrame,
    test: DataFrame,
    movies: DataFrame,
) -> Output:
    started = time.perf_counter()
    candidates, _ = read_candidates(lakehouse.read)
    champion = latest_metadata(context, keys.RANKING_CHAMPION)
    procedure = Procedure.of(
        artifacts.read_rating_model(lakehouse.read),
        artifacts.read_ranking_model(lakehouse.read),
        artifacts.read_ease_model(lakehouse.read, lakehouse.data_root.models),
        candidates,
        champion.get("min_coverage", ChampionConfig().min_coverage),
    )
    gold = latest_metadata(context, keys.TRAIN)
    features = FeatureConfig()
    columns = ["userId", "movieId", "rating", "timestamp", "rated_at"]
    rows, details = next_period_study(
        train.select(columns).unionByName(test.select(columns)),
        procedure,
        Settings(**config.model_dump()),
        movies=movies,
        half_life_days=gold.get("config/half_life_days", features.half_life_days),
        reference=gold.get("config/decay_reference", features.decay_reference),
        log=context.log.info,
    )  # fmt: skip
    context.log.info(next_period_sentence(details, config.k))
    return _table(train, rows, time.perf_counter() - started, **details)


@asset(
    key=keys.STUDY_COLD_MOVIES,
    ins={"train": TRAIN, "test": TEST, "movies": AssetIn(keys.MOVIES_CLEAN)},
    deps=[
        *MODEL_TABLES,
        AssetKey(keys.MOVIE_CONTENT),
        AssetKey(keys.CONTENT_FEATURES),
        AssetKey(keys.CONTENT_MODEL),
    ],
    description="The cold-movie protocol: a seeded share of the Gold movies held out of "
    "training entirely, the models refitted on the rest, the held-out movies placed from "
    "their content alone and ranked for the users who rated them (role `cold`), against a "
    "genre profile and random, with the New for you row's order (with and without "
    "titles) and the content model without each part of the content; their stars "
    "against global mean + user bias.",
    **STUDIES,
)
def cold_movies(
    context: AssetExecutionContext,
    config: ColdConfig,
    lakehouse: Lakehouse,
    train: DataFrame,
    test: DataFrame,
    movies: DataFrame,
) -> Output:
    started = time.perf_counter()
    content_model = lakehouse.read(keys.CONTENT_MODEL).first()
    titles = movies.select("movieId", "title_clean", "genres").toPandas()
    cold = cold_movie_evaluation(
        train,
        test,
        read_content(lakehouse.read, lakehouse.data_root.models),
        rating=artifacts.read_rating_model(lakehouse.read).model,
        ranking=artifacts.read_ranking_model(lakehouse.read).model,
        fraction=config.cold_fraction,
        regs=content_model["regs"],
        k=config.k,
        seed=config.seed,
        titles=title_vectors(titles["movieId"], titles["title_clean"], titles["genres"]),
        row=RowSettings(
            share=content_model["row_share"],
            title_weight=content_model["title_weight"],
            min_title_similarity=content_model["min_title_similarity"],
            min_shared_genres=content_model["min_shared_genres"],
        ),
        parallelism=config.parallel_fits,
        log=context.log.info,
    )
    details = {k: v for k, v in cold.details.items() if k != "ridge_search"}
    return _table(train, cold.rows, time.perf_counter() - started, **details)


@asset(
    key=keys.STUDY_RATING_CV,
    ins={"train": TRAIN},
    deps=MODEL_TABLES,
    description="The rating model's search (its bias and ALS settings, its seed) again by "
    "k-fold cross-validation of the training split: each setting's mean RMSE over the folds "
    "(role `cv`), and whether the folds choose what the product's one validation split chose.",
    **STUDIES,
)
def rating_cv(
    context: AssetExecutionContext,
    config: CrossValidationConfig,
    lakehouse: Lakehouse,
    train: DataFrame,
) -> Output:
    started = time.perf_counter()
    train = train.cache()
    rows, details = rating_cv_study(
        train, artifacts.read_rating_model(lakehouse.read), folds=config.folds,
        max_rows=config.max_rows, parallelism=config.parallel_fits, log=context.log.info,
    )  # fmt: skip
    context.log.info(f"Rating model by cross-validation: {details}")
    out = _table(train, rows, time.perf_counter() - started, **details)
    train.unpersist()
    return out


@asset(
    key=keys.STUDY_REPORT,
    deps=[*(AssetKey(key) for key in STUDY_TABLES), AssetKey(keys.MODEL_EVALUATION)],
    description="The studies' charts (ablation, candidates on test, discovery curve, the next "
    "period) and card (reports/studies/), with the run they came from: the app shows them "
    "beside the product's model card, to which it adds how the served order does on the "
    "next period.",
    **STUDIES,
)
def studies_report(
    context: AssetExecutionContext, data_root: DataRoot, lakehouse: Lakehouse
) -> MaterializeResult:
    table = pd.concat(
        [lakehouse.read(key).toPandas() for key in STUDY_TABLES], ignore_index=True
    ).astype(object)
    table = table.where(table.notna(), None)
    for count in ("rows", "k", "users"):  # counts, not floats, in the card
        table[count] = table[count].map(lambda v: None if v is None else int(v))
    candidates, champion = read_candidates(lakehouse.read)
    k = int(table["k"].dropna().iloc[0]) if table["k"].notna().any() else 10
    cold = latest_metadata(context, keys.STUDY_COLD_MOVIES)
    cv = latest_metadata(context, keys.STUDY_RATING_CV)
    next_period = latest_metadata(context, keys.STUDY_NEXT_PERIOD)
    test_users = lakehouse.read(keys.TEST).select("userId").distinct().count()
    sampled = latest_metadata(context, keys.STUDY_CANDIDATES).get("users", test_users)
    versions = {
        keys.label(key): lakehouse.describe(key).version
        for key in (keys.TRAIN, keys.TEST, keys.RATING_MODEL, keys.RANKING_MODEL, *STUDY_TABLES)
    }
    product = lakehouse.read(keys.MODEL_EVALUATION).toPandas()
    card = studies_card(
        table, versions, k=k, run=run_stamp(context.run.run_id), cold=cold, cv=cv,
        sample={"test_users": test_users, "sampled": sampled},
        check=sample_check(table, product), next_period=next_period,
    )  # fmt: skip
    # The product's models beside their ablations, as the reference they are judged by.
    reference = product[product["role"] == "model"].astype(object)
    figures = studies_figures(
        pd.concat([reference, table], ignore_index=True),
        candidates=candidates,
        champion=champion,
        k=k,
    )
    paths = write_evaluation_report(
        report_files.studies_dir(data_root.path), figures, card, table,
        title="CineMatch studies", card_name=report_files.STUDIES_CARD,
    )  # fmt: skip
    # The model card says how its served order does on the next period (these models'
    # card: the studies run after the product run that wrote it).
    model_card_path = report_files.model_card_path(data_root.path)
    if "cutoff" in next_period and model_card_path.exists():
        write_atomic(
            model_card_path,
            with_next_period(model_card_path.read_text(), next_period, k),
        )
    return MaterializeResult(
        metadata={
            "studies_card": MetadataValue.md(card),
            "report": MetadataValue.path(str(paths["index.html"])),
        }
    )


study_assets = [
    ablation, candidates_on_test, served_every_user, next_period, cold_movies, rating_cv,
    studies_report,
]  # fmt: skip

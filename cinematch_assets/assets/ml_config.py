"""The ML assets' settings: what Dagster's launchpad shows for each model, the champion,
the evaluation and the content model. Tuning only ever sees the Gold training split."""

from dagster import Config
from pydantic import Field

from cinematch_assets.ml.models.rating import RatingVariant
from cinematch_assets.ml.selection.tuning import Method


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
    parallel_fits: int = Field(
        default=2,
        description="Fits in flight at once while tuning (on 2 cores a third only traded places).",
    )
    seed: int = Field(default=42, description="Seed of ALS, the folds and the user sample.")


class RatingModelConfig(TuningConfig):
    tuning: Method = Field(
        default="validation",
        description="validation: one held-out part of the training split (the champion "
        "then reuses its fit; studies/rating_cv cross-validates the same settings); cv: "
        "k-fold cross-validation; auto: cv up to cv_max_rows training rows, validation above.",
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
    rmse_tolerance: float = Field(
        default=0.0025,
        description="A larger rank or more iterations (a dearer fit) is chosen only when "
        "its validation RMSE is lower by more than this share and by more than twice the "
        "standard error of the paired per-row difference; otherwise the cheaper wins.",
    )
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
    ndcg_tolerance: float = Field(
        default=0.01,
        description="A larger rank or more iterations (a dearer fit) is chosen only when "
        "its validation NDCG@k is higher by more than this share and by more than twice "
        "the standard error of the paired per-user difference; otherwise the cheaper wins.",
    )
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
    decay_weighting: list[bool] = Field(
        default=[False, True],
        description="Try X^T X over who rated what (False) and/or over the ratings' "
        "time-decay weights (True: recent co-ratings count more).",
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
    als_weights: list[float] = Field(
        default=[0.0, 0.5],
        description="Weights of implicit ALS's z-scored score added to EASE's (EASE "
        "candidates only; 0: EASE alone).",
    )
    stars_weights: list[float] = Field(
        default=[0.0, 0.5, 1.0],
        description="Weights of the rating model's stars added to the z-scored ranking score.",
    )
    popularity_penalties: list[float] = Field(
        default=[0.0, 0.2, 0.35, 0.5],
        description="Weights of the z-scored log popularity subtracted (more discovery).",
    )
    taste_weights: list[float] = Field(
        default=[0.0, 0.3, 0.5],
        description="Weights of the genre taste added: how well a movie's genres fit the "
        "user's liked ones against everyone's (a log-likelihood ratio; lists follow a clear "
        "taste, barely move for a broad one).",
    )
    star_floor: float = Field(
        default=3.0,
        description="A movie predicted below this many stars goes after every other (0: off).",
    )
    min_coverage: float = Field(
        default=0.33,
        description="The champion is the best validation NDCG among the candidates whose "
        "lists show at least this share of the catalog. Validation has fewer users than "
        "are served, so its lists show fewer movies: on the 2016 archive a floor of 0.30 "
        "served 34%, 0.33 served 37.5%.",
    )
    k: int = Field(default=10, description="Chosen by NDCG at this list length.")


class EvaluationConfig(Config):
    k: int = Field(default=10, description="List length of the ranking metrics.")
    sample_users: int = Field(
        default=20_000,
        description="The served lists are scored on this many test users, a seeded sample "
        "(every user when there are fewer; the studies' sample with the same seed), each "
        "mean with its 95% interval. Stars are scored on every test row.",
    )
    seed: int = Field(default=42, description="Seed of the user sample.")
    parallel_fits: int = Field(default=3, description="Scorings in flight at once.")


class ContentConfig(Config):
    vocabulary: int = Field(
        default=500, description="Tags kept for TF-IDF: those on the most movies."
    )
    min_tag_movies: int = Field(
        default=2, description="A tag counts only when it is on at least this many movies."
    )


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
        default=0,
        description="Places of the shown top 10 a new movie may take (0: none; new movies "
        "have their own row). Every such place is a certain miss on held-out ratings.",
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
    row_size: int = Field(default=10, description='Movies in the "New for you" row.')
    row_share: float = Field(
        default=0.3,
        description='The exploration budget: a new movie is in the "New for you" row of at '
        "most this share of the users, those it fits best (1: no limit).",
    )
    title_weights: list[float] = Field(
        default=[0.0, 0.5, 1.0, 2.0, 4.0],
        description="What a title like one the user rated highly may add to a new movie's "
        "fit in the row, per unit of title similarity (z-score units; [0]: titles ignored). "
        "Validation scores each on the known movies held out of the ridge, for the users "
        "who liked them and liked a film of the same title (NDCG@10); the prior, "
        "title_weight, stands unless another beats it by more than twice the standard "
        "error of their paired difference.",
    )
    title_weight: float = Field(
        default=2.0,
        description="The title weight validation must beat (the grid's nearest weight).",
    )
    min_title_similarity: float = Field(
        default=0.3,
        description="Titles less alike than this (cosine) are unrelated, as are titles "
        "that do not start with the same word.",
    )
    min_shared_genres: float = Field(
        default=0.5,
        description="Two films' titles link only when they share at least this share of "
        "the fewer genres of the two: a sequel shares its franchise's genres, a namesake "
        "does not.",
    )
    fresh_years: int = Field(
        default=2,
        description="Movies released in this many years up to the latest rating (or later) "
        "are fresh: the row ranks them before older movies the models do not know.",
    )
    seed: int = Field(default=42, description="Seed of the held-out movies.")

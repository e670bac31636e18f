"""The EDA report: the article's findings as plotly charts, numbers in metadata."""

from dagster import AssetExecutionContext, AssetIn, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field
from pyspark.sql import DataFrame

from cinematch_assets import keys
from cinematch_assets.reports.eda import eda_figures, eda_markdown, write_eda_report
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.storage import report_files
from cinematch_assets.transforms.eda import compute_eda


class EdaConfig(Config):
    user_threshold: int = Field(default=15, description="Activity threshold marked on charts.")
    movie_threshold: int = Field(default=10, description="Activity threshold marked on charts.")


@asset(
    key=keys.EDA_REPORT,
    ins={"ratings": AssetIn(keys.RATINGS_CLEAN), "movies": AssetIn(keys.MOVIES_CLEAN)},
    group_name="silver",
    kinds={"spark", "plotly"},
    description="Exploratory analysis of Silver ratings: rating histogram, long tails per user "
    "and per movie with retention at each filter threshold, matrix sparsity, ratings over "
    "time, genres. Standalone HTML (offline) and JSON charts under $CINEMATCH_HOME/reports/eda.",
)
def eda_report(
    context: AssetExecutionContext,
    config: EdaConfig,
    data_root: DataRoot,
    ratings: DataFrame,
    movies: DataFrame,
) -> MaterializeResult:
    thresholds = {
        "user_threshold": config.user_threshold,
        "movie_threshold": config.movie_threshold,
    }
    stats = compute_eda(ratings, movies)
    paths = write_eda_report(
        eda_figures(stats, **thresholds),
        stats,
        report_files.eda_dir(data_root.path),
        **thresholds,
    )
    context.log.info(f"EDA report: {paths['index.html'].as_uri()}")
    charts = {
        f"chart/{path.stem}": MetadataValue.path(str(path))
        for name, path in paths.items()
        if name.endswith(".html") and name != "index.html"
    }
    return MaterializeResult(
        metadata={
            "summary": MetadataValue.md(eda_markdown(stats, **thresholds)),
            "report": MetadataValue.path(str(paths["index.html"])),
            "report_url": MetadataValue.url(paths["index.html"].as_uri()),
            "ratings": stats.n_ratings,
            "users": stats.n_users,
            "movies_rated": stats.n_movies,
            "mean_rating": round(stats.mean_rating, 4),
            "mode_rating": stats.mode_rating,
            "mode_share": round(stats.mode_share, 4),
            "sparsity": round(stats.sparsity, 6),
            "users_retained_share": round(stats.per_user.retained_share(config.user_threshold), 4),
            "movies_retained_share": round(
                stats.per_movie.retained_share(config.movie_threshold), 4
            ),
            **charts,
        }
    )

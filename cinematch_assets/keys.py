"""Asset keys: one name, one meaning, written out once. A key is the tuple of its path
(Dagster takes it wherever it takes a key; the lake stores the table at that path).
No Dagster import, so the app's file layout can name the asset that writes a file."""

from __future__ import annotations

Key = tuple[str, ...]


def label(key: Key) -> str:
    """The key as Dagster shows it: `silver/ratings_clean`."""
    return "/".join(key)


MOVIELENS_ARCHIVE: Key = ("raw", "movielens_archive")


def bronze(table: str) -> Key:
    return ("bronze", table)


def quarantine(table: str) -> Key:
    """The Bronze table of the lines of `table`'s CSV that could not be loaded."""
    return ("bronze", f"{table}_quarantine")


BRONZE_RATINGS = bronze("ratings")
# The ratings visitors save in the app (written by the app), and their Bronze copy.
APP_RATINGS: Key = ("app", "ratings")
BRONZE_APP_RATINGS = bronze("app_ratings")

MOVIES_CLEAN: Key = ("silver", "movies_clean")
RATINGS_CLEAN: Key = ("silver", "ratings_clean")
TAGS_CLEAN: Key = ("silver", "tags_clean")
LINKS_CLEAN: Key = ("silver", "links_clean")
EDA_REPORT: Key = ("silver", "eda_report")

RATINGS_FILTERED: Key = ("gold", "ratings_filtered")
TRAIN: Key = ("gold", "train_features_ml")
TEST: Key = ("gold", "test_features_ml")
USER_STATS: Key = ("gold", "user_stats")

RATING_MODEL: Key = ("ml", "als_rating_model")
RATING_USER_FACTORS: Key = ("ml", "rating_user_factors")
RATING_ITEM_FACTORS: Key = ("ml", "rating_item_factors")
RANKING_MODEL: Key = ("ml", "als_ranking_model")
RANKING_USER_FACTORS: Key = ("ml", "ranking_user_factors")
RANKING_ITEM_FACTORS: Key = ("ml", "ranking_item_factors")
EASE_MODEL: Key = ("ml", "ease_ranking_model")
EASE_ITEM_WEIGHTS: Key = ("ml", "ease_item_weights")
RANKING_CHAMPION: Key = ("ml", "ranking_champion")
MOVIE_CONTENT: Key = ("ml", "movie_content")
CONTENT_FEATURES: Key = ("ml", "content_features")
CONTENT_MODEL: Key = ("ml", "content_model")
NEW_MOVIE_FACTORS: Key = ("ml", "new_movie_factors")
TEST_PREDICTIONS: Key = ("ml", "test_predictions")
TEST_RECOMMENDATIONS: Key = ("ml", "test_recommendations")
MODEL_EVALUATION: Key = ("ml", "model_evaluation")

STUDY_ABLATION: Key = ("studies", "ablation")
STUDY_CANDIDATES: Key = ("studies", "candidates_on_test")
STUDY_COLD_MOVIES: Key = ("studies", "cold_movies")
STUDY_RATING_CV: Key = ("studies", "rating_cv")
STUDY_SERVED_EVERY_USER: Key = ("studies", "served_every_user")
STUDY_NEXT_PERIOD: Key = ("studies", "next_period")
STUDY_REPORT: Key = ("studies", "report")

MOVIE_CATALOG: Key = ("serving", "movie_catalog")
USER_PROFILES: Key = ("serving", "user_profiles")
RECOMMENDATIONS: Key = ("serving", "recommendations")
NEW_FOR_YOU: Key = ("serving", "new_for_you")
RECOMMENDATIONS_JSON: Key = ("serving", "recommendations_json")
MODEL_FACTORS: Key = ("serving", "model_factors")
# The app's visitors folded into the served models between product runs.
APP_USER_LISTS: Key = ("serving", "app_user_lists")

LAKE_RETENTION: Key = ("maintenance", "lake_retention")

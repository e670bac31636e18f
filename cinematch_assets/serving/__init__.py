"""The online recommender, one core for the pipeline's light run, the API and the app:
the models' movie side as one file (`model_factors`), reading the serving files
(`loading`), the catalog and search (`catalog`), the served users' lists (`known_users`)
and a brand-new user's (`new_users`).

It builds on `ml.lists` and `ml.models` (the list builder every served list comes from)
and on `storage`, and never imports Dagster, Spark, FastAPI or Streamlit: the front ends
import it, never the other way round."""

"""The CineMatch app: `streamlit_app.py` draws the pages; `recommender` answers lookups,
search, new-user lists and "why" from the serving files (no Streamlit, no Spark);
`posters` fetches TMDB posters. Run with `make app`."""

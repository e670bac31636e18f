"""The CineMatch front ends: `streamlit_app.py` draws the pages (`page_helpers`: what they
need besides Streamlit), `api.py` answers JSON; both get their answers (lookups, search,
new-user lists, "why") from the serving core, `cinematch_assets.serving`. `posters`
fetches TMDB posters. Run with `make app` and `make api`."""

"""CineMatch: recommendations for every MovieLens user, and for you.

Run with `make app` (or `streamlit run app/streamlit_app.py`). Reads only the serving
artifacts under $CINEMATCH_HOME/serving and the reports beside them: no Spark, no JVM.
Every answer comes from the serving core (`cinematch_assets.serving`); this file only
draws.

(Not app/app.py: Streamlit puts the script's folder first on sys.path, where an `app.py`
would hide the `app` package from its own pages.)
"""

from __future__ import annotations

import html
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import plotly.io as pio
import streamlit as st

from app.page_helpers import SaveLimit, community_line, plain
from app.posters import PosterCache
from cinematch_assets import settings
from cinematch_assets.conventions import SHOWN
from cinematch_assets.serving.catalog import Catalog, open_catalog
from cinematch_assets.serving.known_users import (
    Recommendations,
    known_user_list,
    open_profiles,
    parse_user_id,
    user_favourites,
)
from cinematch_assets.serving.loading import LOADED, ArtifactProblem
from cinematch_assets.serving.new_users import NOT_INTERESTED, FoldIn, open_foldin
from cinematch_assets.storage import app_ratings, report_files
from cinematch_assets.storage import serving_files as files
from cinematch_assets.storage.app_ratings import APP_USERS_FROM, RatingRefused

log = logging.getLogger("cinematch.app")
T = TypeVar("T")

COLUMNS = 5
STAR_CHOICES = [x / 2 for x in range(1, 11)]
# The placeholder poster: a film frame drawn inline (no emoji font or image file needed).
FILM_ICON = (
    '<svg width="56" height="56" viewBox="0 0 24 24" fill="none" stroke="#e50914" '
    'stroke-width="1.5"><rect x="3" y="4" width="18" height="16" rx="2"/>'
    '<path d="M7 4v16M17 4v16M3 8h4M3 12h4M3 16h4M17 8h4M17 12h4M17 16h4"/></svg>'
)
STYLE = """
<style>
.cm-card {background: #1b1d26; border-radius: 10px; padding: 0 0 10px 0; margin-bottom: 18px;
  overflow: hidden; box-shadow: 0 4px 14px rgba(0,0,0,.45); min-height: 430px}
.cm-poster {width: 100%; aspect-ratio: 2/3; object-fit: cover; display: block}
.cm-placeholder {width: 100%; aspect-ratio: 2/3; display: flex; align-items: center;
  justify-content: center; background: linear-gradient(160deg, #2b2f3d, #12131a);
  color: #e50914; font-size: 44px}
.cm-body {padding: 8px 10px 0 10px}
.cm-title {font-weight: 700; font-size: 0.98rem; line-height: 1.25; color: #f5f5f1}
.cm-meta {color: #9a9cab; font-size: 0.8rem; margin-top: 2px}
.cm-tags {color: #7f8296; font-size: 0.75rem; margin-top: 2px}
.cm-stars {color: #f5c518; font-size: 0.9rem; margin-top: 6px}
.cm-why {color: #c9cad6; font-size: 0.8rem; font-style: italic; margin-top: 6px}
.cm-new, .cm-rare {background: #2e7d32; color: #fff; border-radius: 4px; font-size: 0.7rem;
         font-weight: 600; padding: 1px 6px; margin-left: 6px; vertical-align: middle}
.cm-rare {background: #4a4d5e}
</style>
"""


def mtime(path: Path) -> int:
    return path.stat().st_mtime_ns if path.exists() else 0


@st.cache_resource(show_spinner=False)
def poster_cache() -> PosterCache:
    return PosterCache()


# Report files are small; one copy per file version (the newest few) is plenty.
@st.cache_data(show_spinner=False, max_entries=32)
def load_text(path: str, version: int) -> str:
    return Path(path).read_text(encoding="utf-8")


def api_key() -> str | None:
    """TMDB key from TMDB_API_KEY or st.secrets; never shown or logged."""
    if key := settings.tmdb_api_key():
        return key
    try:
        return st.secrets.get("TMDB_API_KEY")
    except Exception:  # no secrets.toml: Streamlit raises its own (version-specific) error
        return None


def _year(value: Any) -> int | None:
    """The release year of a catalog row (a missing one reads as None or NaN)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def card(
    movie: dict[str, Any],
    poster: str | None,
    *,
    rec: dict | None,
    reason: str | None,
    reason_year: int | None = None,
) -> str:
    """One movie card as HTML; every value from data is escaped."""
    year = _year(movie.get("release_year"))
    title = esc(movie["display_title"]) + (f" ({year})" if year else "")
    image = (
        f'<img class="cm-poster" src="{esc(poster)}" alt="{esc(movie["display_title"])}">'
        if poster
        else f'<div class="cm-placeholder" aria-label="no poster">{FILM_ICON}</div>'
    )
    # Placed from its content: a recent release is New; an older film is little known.
    new = rec is not None and bool(rec.get("new"))
    fresh = new and bool(rec.get("fresh"))
    badge = ""
    if fresh:
        badge = '<span class="cm-new" title="A recent release, too new for the ratings">New</span>'
    elif new:
        badge = '<span class="cm-rare" title="Too few ratings for the models">Little known</span>'

    lines = [f'<div class="cm-title">{title}{badge}</div>']
    lines.append(f'<div class="cm-meta">{esc(" · ".join(movie.get("genres") or []))}</div>')
    if tags := list(movie.get("tags") or []):
        lines.append(f'<div class="cm-tags">{esc(" ".join("#" + t for t in tags))}</div>')
    if rec is not None:
        lines.append(f'<div class="cm-stars">★ {rec["pred_rating"]:.1f} for you</div>')
    count = int(movie.get("rating_count") or 0)
    lines.append(f'<div class="cm-meta">{community_line(movie.get("avg_rating"), count)}</div>')
    if rec is not None:
        what = "New" if fresh else "Little known"
        if new and reason and rec.get("by_title"):
            # A film of the same title: the one it follows, or (older) its original.
            later = year is not None and reason_year is not None and year >= reason_year
            relation = "it follows" if later else "it shares its title with"
            why = f"{what}, and {relation} {esc(reason)}, which you rated highly"
        elif new:
            why = (
                f"{what}, and like {esc(reason)}, which you rated highly"
                if reason
                else f"{what}, and like what you watch"
            )
        else:
            why = f"Because you rated {esc(reason)} highly" if reason else "Popular with viewers"
        lines.append(f'<div class="cm-why">{why}</div>')
    # The "New for you" row's cards are told apart from the top list's (cm-row).
    kind = "cm-card cm-row" if rec is not None and rec.get("row") else "cm-card"
    return f'<div class="{kind}">{image}<div class="cm-body">{"".join(lines)}</div></div>'


def show_cards(catalog: Catalog, items: list[dict[str, Any]], *, recommended: bool) -> None:
    """Cards in rows of COLUMNS; `items` are recommendation dicts (movieId, pred_rating,
    reason) or catalog rows."""
    movies = catalog.rows([int(item["movieId"]) for item in items])
    by_id = {m["movieId"]: m for m in movies}
    items = [item for item in items if int(item["movieId"]) in by_id]
    tmdb_ids = [by_id[int(i["movieId"])]["tmdbId"] for i in items]
    posters = poster_cache().get_many(tmdb_ids, api_key())
    reasons = {m["movieId"]: m for m in catalog.rows(
        [int(i["reason"]) for i in items if recommended and i.get("reason") is not None]
    )}  # fmt: skip
    for start in range(0, len(items), COLUMNS):
        for column, item, poster in zip(
            st.columns(COLUMNS), items[start : start + COLUMNS], posters[start : start + COLUMNS],
            strict=False,
        ):  # fmt: skip
            movie = by_id[int(item["movieId"])]
            reason = reasons.get(item.get("reason")) if recommended else None
            column.markdown(
                card(
                    movie, poster, rec=item if recommended else None,
                    reason=reason["display_title"] if reason else None,
                    reason_year=_year(reason.get("release_year")) if reason else None,
                ),
                unsafe_allow_html=True,
            )  # fmt: skip


# ------------------------------------------------------------------------------- pages


def discovery_control(key: str, *, disabled: bool = False) -> float:
    """How much more the list should favour less-watched movies (the popularity penalty
    added to the served order's)."""
    return st.slider(
        "More discovery",
        min_value=0.0,
        max_value=1.0,
        value=0.0,
        step=0.05,
        key=key,
        disabled=disabled,
        help="Pushes the most-watched movies down, so lesser-known ones you may like come up.",
    )


def rate_control(catalog: Catalog, movie_ids: list[int], key: str) -> dict[int, float]:
    """A rating for one of `movie_ids` when the visitor gives one now ("Not interested"
    counts as NOT_INTERESTED stars); empty otherwise."""
    if not movie_ids:
        return {}
    left, middle, rate, skip = st.columns([3, 2, 1, 1])
    choice = left.selectbox(
        "Rate one of these", movie_ids, key=f"{key}_movie",
        format_func=catalog.label,
    )  # fmt: skip
    stars = middle.select_slider("Your stars", STAR_CHOICES, value=4.0, key=f"{key}_stars")
    if rate.button("Rate it", key=f"{key}_rate"):
        return {int(choice): float(stars)}
    if skip.button("Not interested", key=f"{key}_skip"):
        return {int(choice): NOT_INTERESTED}
    return {}


# The same answer for every visitor's id without its key: whether the account exists
# is theirs too.
PRIVATE = (
    "User {user} is a visitor of this app: their ratings and list are private. They open "
    "with the link the app gave them when they saved (it holds their key)."
)


def for_you(
    home: Path, catalog: Catalog, recommendations: Recommendations, foldin: FoldIn | None
) -> None:
    left, middle, right = st.columns([1, 2, 1])
    typed = left.text_input(
        "Your user id", value=st.query_params.get("user", ""), key="user_id", placeholder="510"
    )
    genres = middle.multiselect("Only these genres", catalog.genres, key="you_genres")
    with right:
        # Re-ranking needs the movies' popularity, which comes with the model factors.
        discovery = discovery_control("you_discovery", disabled=foldin is None)
    user, problem = parse_user_id(typed)
    if problem:
        st.info(plain(problem))
        return
    if user >= APP_USERS_FROM:
        account = st.session_state.get("account")
        if account is None or account[0] != user:
            st.info(PRIVATE.format(user=user))
            return
        your_list(home, catalog, recommendations.version, foldin, genres, discovery)
        return
    release_user_list(home, catalog, recommendations, foldin, user, genres, discovery)


def release_user_list(
    home: Path,
    catalog: Catalog,
    recommendations: Recommendations,
    foldin: FoldIn | None,
    user: int,
    genres: list[str],
    discovery: float,
) -> None:
    """A MovieLens user's served list; ratings given here re-rank it for this session
    only (their own ratings are read-only)."""
    found = known_user_list(
        recommendations, catalog, foldin.items if foldin is not None else None, user,
        n=SHOWN, discovery=discovery, genres=genres,
    )  # fmt: skip
    if found is None:
        st.warning(
            f"There is no user {user} in the models ({recommendations.users:,} users). "
            "Try another id, or rate a few movies under **New here**."
        )
        return
    st.query_params["user"] = str(user)
    _, shown, row = found
    given = st.session_state.setdefault("you_ratings", {}).setdefault(user, {})
    try:
        favourites = user_favourites(open_profiles(home), user)
    except ArtifactProblem as problem:
        st.warning(str(problem))
        favourites = {}
    else:
        favourites = dict(zip(favourites["movieId"], favourites["rating"], strict=True))
    if given and foldin is not None:
        # From everything the user rated (the served list left it all out), then this
        # session's ratings.
        history = recommendations.ratings(user) or {}
        start = {int(m): float(s) for m, s in {**history, **given}.items()}
        shown = foldin.recommend(start, genres=genres, n=SHOWN, discovery=discovery)
        row = foldin.new_for_you(start, genres=genres)
        st.caption(
            f"Updated with your latest ratings ({len(given)} here, this session only: user "
            f"{user}'s own ratings are read-only) until the next run serves the new model."
        )
    draw_list(catalog, f"user {user}", shown)
    if foldin is not None and (rating := rate_control(catalog, listed(shown), "you")):
        given.update(rating)
        st.rerun()
    new_for_you_row(catalog, row)
    highest_rated(catalog, "What this user rated highest", favourites)


def your_list(
    home: Path,
    catalog: Catalog,
    version: str,
    foldin: FoldIn | None,
    genres: list[str],
    discovery: float,
) -> None:
    """An account holder's own list, made now from their saved ratings as they stand
    (New here's and this tab's ratings and removals included): the served list of a
    visitor is the same fold-in, as of the last light run."""
    saved: dict[int, float] = st.session_state.setdefault("new_ratings", {})
    if foldin is None:
        st.warning("Your list cannot be made now: the model factors are not readable.")
        return
    known = {m: s for m, s in saved.items() if m in catalog}
    shown = foldin.recommend(known, genres=genres, n=SHOWN, discovery=discovery)
    st.caption(f"Made now from your {len(known)} saved rating{'' if len(known) == 1 else 's'}.")
    draw_list(catalog, "you", shown)
    rating = rate_control(catalog, listed(shown), "you")
    if rating and save_ratings(home, catalog, rating, version):
        saved.update(rating)
        st.rerun()
    new_for_you_row(catalog, foldin.new_for_you(known, genres=genres))
    highest_rated(catalog, "What you rated highest", known)


def listed(entries: list[dict[str, Any]]) -> list[int]:
    return [int(entry["movieId"]) for entry in entries]


def draw_list(catalog: Catalog, whom: str, shown: list[dict[str, Any]]) -> None:
    if not shown:
        st.info(f"None of the recommendations for {whom} has those genres.")
        return
    st.subheader(f"Top {len(shown)} for {whom}")
    show_cards(catalog, shown, recommended=True)


def highest_rated(catalog: Catalog, heading: str, stars: dict[int, float], most: int = 10) -> None:
    """The `most` highest-rated of `stars` (movieId -> stars), in an expander."""
    best = sorted(stars.items(), key=lambda item: -item[1])[:most]
    if best:
        with st.expander(heading):
            for movie_id, given in best:
                st.text(f"★ {given:.1f}  {catalog.label(movie_id)}")


def back_with_link(home: Path) -> None:
    """A visitor back with their link (?user=...&key=...): their saved ratings fill New
    here, once per session."""
    if "account" in st.session_state:
        return
    st.session_state["account"] = None
    user, _ = parse_user_id(st.query_params.get("user"))
    key = st.query_params.get("key")
    if user is None or user < APP_USERS_FROM or not key:
        return
    try:
        saved = app_ratings.saved_ratings(home, user, key)
    except RatingRefused as refused:
        st.warning(f"{plain(str(refused))}. Ratings you save now go to a new account.")
        return
    except Exception:
        log.exception("reading saved ratings failed")
        st.warning("Your saved ratings could not be read now (the app's log says why).")
        return
    st.session_state["account"] = (user, key)
    st.session_state["new_ratings"] = saved


def save_ratings(
    home: Path, catalog: Catalog, ratings: dict[int, float | None], version: str
) -> bool:
    """Save `ratings` (None: remove) for this visitor, opening their account at the first
    save; says on the page what went wrong when nothing was saved."""
    limit: SaveLimit = st.session_state.setdefault("save_limit", SaveLimit())
    if not limit.allow():
        st.warning(f"Not saved: at most {limit.saves} saves a minute. Try again in a moment.")
        return False
    session = st.session_state.setdefault("session_id", uuid.uuid4().hex)
    try:
        if st.session_state.get("account") is None:
            st.session_state["account"] = app_ratings.create_account(home)
        user, key = st.session_state["account"]
        app_ratings.save_ratings(
            home, user, key, ratings, catalog, session=session, serving_version=version
        )
    except RatingRefused as refused:
        st.error(f"Not saved: {plain(str(refused))}.")
        return False
    except Exception:
        log.exception("saving ratings failed")
        st.error("Not saved: the app could not write to the lake (its log says why).")
        return False
    st.query_params.update(user=str(user), key=key)
    return True


def new_here(home: Path, catalog: Catalog, foldin: FoldIn, version: str) -> None:
    rated: dict[int, float] = st.session_state.setdefault("new_ratings", {})
    account = st.session_state.get("account")
    st.markdown("Rate a few movies you have seen (or pick genres) and get a list at once.")
    query = st.text_input("Find a movie you have seen", key="new_query", placeholder="matrix")
    found = catalog.search(query, n=200)
    found = found[foldin.can_take(found["movieId"].tolist())].head(20)
    if len(found):
        left, middle, right = st.columns([3, 2, 1])
        choice = left.selectbox(
            "Movie",
            found["movieId"].tolist(),
            format_func=catalog.label,
            key="new_movie",
        )
        stars = middle.select_slider("Your stars", STAR_CHOICES, value=4.0, key="new_stars")
        # An account holder's rating is saved at once; a visitor's stays in the session.
        rating = {int(choice): float(stars)}
        if right.button("Rate it", key="rate") and (
            account is None or save_ratings(home, catalog, rating, version)
        ):
            rated.update(rating)
    elif query:
        st.info("No movie to rate matches that title.")
    left, right = st.columns([3, 1])
    genres = left.multiselect("Favourite genres (optional)", catalog.genres, key="new_genres")
    with right:
        discovery = discovery_control("new_discovery")
    # A re-materialization may have dropped a movie rated earlier in this session.
    known = {m: s for m, s in rated.items() if m in catalog.movies.index}
    if rated:
        yours = ", ".join(f"{plain(catalog.label(m))} ★{s:g}" for m, s in known.items())
        gone = len(rated) - len(known)
        if gone:
            yours += f" (and {gone} no longer in the catalog, left out)"
        st.caption("Your ratings: " + yours)
        if account is None:
            save, clear = st.columns([1, 1])
            if save.button("Save my ratings", key="save") and save_ratings(
                home, catalog, dict(known), version
            ):
                st.rerun()
            if clear.button("Start over", key="clear"):
                rated.clear()
                st.rerun()
        else:
            left, right = st.columns([3, 1])
            unwanted = left.selectbox(
                "Remove a saved rating", list(known), key="remove_movie",
                format_func=catalog.label,
            )  # fmt: skip
            if right.button("Remove", key="remove") and save_ratings(
                home, catalog, {int(unwanted): None}, version
            ):
                rated.pop(int(unwanted), None)
                st.rerun()
    if account is not None:
        st.success(
            f"You are user {account[0]}: your ratings are saved. Bookmark this page (its "
            "address holds your key) to come back to them."
        )
    if not known and not genres:
        return
    recs = foldin.recommend(known, genres=genres, n=SHOWN, discovery=discovery)
    st.subheader("Recommended for you")
    show_cards(catalog, recs, recommended=True)
    new_for_you_row(catalog, foldin.new_for_you(known, genres=genres))


def new_for_you_row(catalog: Catalog, row: list[dict[str, Any]]) -> None:
    """The row under a list, movies the models cannot place from ratings, under two true
    headings: the recent releases ("New for you"), then older films with few ratings."""
    fresh = [entry for entry in row if entry.get("fresh")]
    older = [entry for entry in row if not entry.get("fresh")]
    if fresh:
        st.subheader("New for you")
        st.caption(
            "Recent releases, too new for the ratings to say: picked from what they are, "
            "and their titles."
        )
        show_cards(catalog, fresh, recommended=True)
    if older:
        st.subheader("Little known, for you")
        st.caption(
            "Older films with too few ratings for the models: picked from what they are, "
            "and their titles."
        )
        show_cards(catalog, older, recommended=True)


def search(home: Path, catalog: Catalog, foldin: FoldIn | None, version: str) -> None:
    left, right = st.columns([2, 2])
    query = left.text_input("Title", key="search_query", placeholder="amelie")
    genres = right.multiselect("Genres", catalog.genres, key="search_genres")
    found = catalog.search(query, genres, n=10 if not query else 20)
    if not len(found):
        st.info("No movie matches.")
        return
    heading = (
        "Top rated" if not query else f"{len(found)} best match{'' if len(found) == 1 else 'es'}"
    )
    st.subheader(f"{heading} (Bayesian average)")
    show_cards(catalog, found.to_dict("records"), recommended=False)
    if foldin is None:  # the models' side is unreadable: nothing could take a rating
        return
    # A rating here joins the ones under New here (saved at once for an account holder),
    # by the same rule: the movies the models know or place from their content.
    ids = np.asarray(found["movieId"], dtype=np.int64)
    rating = rate_control(catalog, ids[foldin.can_take(ids.tolist())].tolist(), "search")
    if rating and (
        st.session_state.get("account") is None or save_ratings(home, catalog, rating, version)
    ):
        st.session_state.setdefault("new_ratings", {}).update(rating)
        st.session_state["search_rated"] = next(iter(rating))
        st.rerun()  # New here, drawn before this tab, takes the rating in
    if (rated := st.session_state.pop("search_rated", None)) is not None:
        st.success(rated_message(catalog, foldin, rated))


def rated_message(catalog: Catalog, foldin: FoldIn, movie_id: int) -> str:
    """What a rating given in Search does, truly."""
    said = f"Rated {plain(catalog.label(movie_id))}: your list under **New here** takes it in"
    if foldin.placed_by_content(movie_id):
        return said + ", through its genres and tags (too few people rated it for the models)."
    return said + "."


def insights(home: Path, catalog: Catalog | None) -> None:
    # The ratings of the last product run (from the catalog, when it reads), and
    # the app's ratings as they stand.
    table = app_ratings.ratings_path(home)
    models, app, people = st.columns(3)
    if catalog is not None:
        learned = int(catalog.movies["rating_count"].sum())
        models.metric("Ratings in the models' data", f"{learned:,}")
    try:
        count = partial(app_ratings.standing_counts, home)
        saved, visitors = LOADED.get([table / "_delta_log"], count)
    except Exception:  # the charts below do not need it
        log.exception("counting the app's ratings failed")
        app.caption("The app's ratings cannot be counted now (the app's log says why).")
    else:
        app.metric("Ratings saved in this app", f"{saved:,}")
        people.metric("Visitors who saved ratings", f"{visitors:,}")
    for title, folder in (
        ("Models", report_files.models_dir(home)),
        ("Studies", report_files.studies_dir(home)),
        ("The data", report_files.eda_dir(home)),
    ):
        st.header(title)
        names = report_files.chart_names(folder)
        for name in names:
            path = report_files.chart_json(folder, name)
            figure = pio.from_json(load_text(str(path), mtime(path)))
            figure.update_layout(template="plotly_dark")
            st.plotly_chart(figure, width="stretch", key=f"chart_{title}_{name}")
        if not names:
            how = "make studies" if title == "Studies" else "materialize the pipeline"
            st.info(f"No charts in {plain(folder)} yet: {how} first.")
    # The product run's card and the latest studies' card, each naming its run.
    for label, card_path in (
        ("Model card", report_files.model_card_path(home)),
        ("Studies card", report_files.studies_card_path(home)),
    ):
        if card_path.exists():
            with st.expander(label):
                st.markdown(load_text(str(card_path), mtime(card_path)))


def when(stamp: Any) -> str:
    """An ISO time from a manifest as people read it: "7 Dec 2026, 20:10 UTC"."""
    try:
        moment = datetime.fromisoformat(str(stamp)).astimezone(UTC)
    except ValueError:
        return "an unknown date"
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def header(recommendations: Recommendations, catalog: Catalog) -> str:
    """What is served: users, movies (and how many of them have ratings, as the charts
    count them), when the lists were made and when visitors' lists were last added."""
    movies = catalog.movies
    rated = int((movies["rating_count"] > 0).sum())
    manifest = recommendations.manifest
    line = (
        f"{recommendations.users:,} users · {len(movies):,} movies ({rated:,} rated) · "
        f"lists of {when(manifest.get('created'))}"
    )
    if updated := manifest.get("updated"):
        line += f" · visitors' lists updated {when(updated)}"
    return line


def opened(load: Callable[[], T]) -> tuple[T | None, str | None]:
    """(what `load` returns, None), or (None, the plain message of what is wrong)."""
    try:
        return load(), None
    except ArtifactProblem as problem:
        return None, str(problem)


def show(page: Callable[..., None], *needed: tuple[Any, str | None]) -> None:
    """Draw `page` with the artifacts it needs, or say what is wrong: a missing file, or
    any failure of the page itself (the trace goes to the log, never to the page)."""
    for _, problem in needed:
        if problem:
            st.error(problem)
            return
    try:
        page(*(value for value, _ in needed))
    except ArtifactProblem as problem:
        st.error(str(problem))
    except Exception:
        log.exception("the %s page failed", page.__name__)
        st.error("Something went wrong on this page; the details are in the app's log.")


PAGES = ("For you", "New here", "Search", "Insights")


def main() -> None:
    st.set_page_config(page_title="CineMatch", page_icon="🎬", layout="wide")
    st.markdown(STYLE, unsafe_allow_html=True)
    st.title("CineMatch")
    home = settings.cinematch_home()
    if not files.serving_root(home).is_dir():
        st.error(
            f"No serving artifacts under `{files.serving_root(home)}` yet. Materialize the "
            "pipeline first (`make materialize`, or the serving group in Dagster), then reload."
        )
        st.stop()
    catalog = opened(lambda: open_catalog(home))
    recommendations = opened(lambda: Recommendations.load(home))
    foldin = opened(lambda: open_foldin(home))
    if catalog[0] is not None and recommendations[0] is not None:
        st.caption(plain(header(recommendations[0], catalog[0])))
    back_with_link(home)
    # Only the open tab runs (the others would read files and draw for nothing): a switch
    # of tab reruns the page.
    you, new, find, numbers = st.tabs(PAGES, key="page", on_change="rerun")
    version = recommendations[0].version if recommendations[0] is not None else ""
    if you.open:
        with you:
            show(for_you, (home, None), catalog, recommendations, (foldin[0], None))
    if new.open:
        with new:
            show(new_here, (home, None), catalog, foldin, (version, None))
    if find.open:
        with find:
            show(search, (home, None), catalog, (foldin[0], None), (version, None))
    if numbers.open:
        with numbers:
            show(insights, (home, None), (catalog[0], None))


main()

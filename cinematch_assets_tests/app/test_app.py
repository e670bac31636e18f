"""The app: the serving core it calls (lookups, search, fold-in), posters against a local
stand-in for TMDB, and every tab through Streamlit's AppTest. No Spark: the serving files
are written by `serving_artifacts` in the serving assets' own layout."""

from __future__ import annotations

import html
import json
import re
import shutil
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import streamlit as st
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from app import posters
from app.page_helpers import WORD_JOINER, SaveLimit, community_line, plain
from cinematch_assets.serving.catalog import Catalog, open_catalog, search_key
from cinematch_assets.serving.known_users import Recommendations, parse_user_id
from cinematch_assets.serving.loading import LOADED, ArtifactProblem
from cinematch_assets.serving.new_users import NOT_INTERESTED, FoldIn, open_foldin
from cinematch_assets.storage import app_ratings
from cinematch_assets.storage import serving_files as files
from cinematch_assets.storage.app_ratings import APP_USERS_FROM
from cinematch_assets.storage.delta_reader import read_delta
from cinematch_assets_tests.conftest import REPO_ROOT
from cinematch_assets_tests.serving_artifacts import (
    HOSTILE_TITLE,
    MARKDOWN_TITLES,
    N,
    catalog_frame,
    write_serving_artifacts,
)

APP = str(REPO_ROOT / "app" / "streamlit_app.py")
KEY = "sekrit-tmdb-key-123"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("serving")
    write_serving_artifacts(home)
    return home


# -------------------------------------------------------------------------- serving


def test_search_key_ignores_case_accents_punctuation_and_leading_articles():
    assert search_key("The Matrix") == "matrix"
    assert search_key("Matrix, The") == "matrix the"
    assert search_key("Amélie") == "amelie"
    assert search_key("L'Avventura") == "avventura"
    assert search_key("  ") == ""


def test_search_finds_titles_as_people_type_them(home):
    catalog = Catalog.load(files.catalog_path(home))
    assert set(catalog.search("matrix")["display_title"]) == {"The Matrix", "The Matrix Reloaded"}
    assert catalog.search("amelie")["display_title"].tolist() == ["Amélie"]
    assert catalog.search("THE MATRIX RELOADED")["display_title"].tolist() == [
        "The Matrix Reloaded"
    ]
    assert catalog.search("no such film").empty
    top = catalog.search("")
    assert len(top) == 10
    assert top["bayesian_avg"].is_monotonic_decreasing
    comedies = catalog.search("", ["Comedy"], n=100)
    assert len(comedies) and all("Comedy" in g for g in comedies["genres"])


def test_a_card_counts_community_ratings_in_words():
    assert community_line(4.0, 1) == "Community 4.00 (1 rating)"
    assert community_line(3.9133, 1232) == "Community 3.91 (1,232 ratings)"
    assert community_line(None, 0) == "Not rated yet"


def test_user_ids_are_parsed_with_clear_answers():
    assert parse_user_id(" 510 ") == (510, None)
    for bad in ("", None, "abc", "5.5", "-3", "1e5", "99999999999"):
        user, problem = parse_user_id(bad)
        assert user is None and problem


def test_lookup_reads_one_shard_and_notices_a_new_version(home, tmp_path):
    recs = Recommendations.load(home)
    assert len(recs.lookup(510)) == N
    assert recs.lookup(4242) is None
    with pytest.raises(ArtifactProblem, match="make materialize"):
        Recommendations.load(tmp_path)
    # A new version is a new manifest: the next load reads the new shard.
    manifest = json.loads(files.manifest_path(home).read_text())
    files.write_json_shard(files.recommendations_dir(home) / "v2", 0, {"510": [{"movieId": 1}]})
    files.publish_recommendations(home, "v2", {k: v for k, v in manifest.items() if k != "version"})
    try:
        assert Recommendations.load(home).lookup(510) == [{"movieId": 1}]
    finally:
        files.publish_recommendations(home, "v1", manifest)
    assert len(Recommendations.load(home).lookup(510)) == N


def test_new_user_fold_in(home):
    catalog = Catalog.load(files.catalog_path(home))
    foldin = FoldIn.load(files.factors_path(home), catalog)
    # No ratings: the most popular movies the models know.
    popular = foldin.recommend({}, n=5)
    counts = catalog.movies.set_index("movieId")["rating_count"]
    assert [counts[r["movieId"]] for r in popular] == sorted(
        counts.loc[foldin.movie_ids].nlargest(5).tolist(), reverse=True
    )
    rated = {1: 5.0, 2: 4.5, 7: 1.0, 40: 5.0}  # movie 40 is placed from its content
    recs = foldin.recommend(rated, n=N)
    assert len(recs) == N
    assert not {r["movieId"] for r in recs} & set(rated)
    assert all(0.5 <= r["pred_rating"] <= 5.0 for r in recs)
    assert {r["reason"] for r in recs} <= {1, 2}  # only highly rated movies are reasons
    dramas = foldin.recommend(rated, genres=["Drama"], n=N)
    genres = catalog.movies.set_index("movieId")["genres"]
    assert dramas and all("Drama" in genres[r["movieId"]] for r in dramas)


def test_a_low_rating_counts_against_similar_movies_and_is_never_a_reason(home):
    catalog = Catalog.load(files.catalog_path(home))
    foldin = FoldIn.load(files.factors_path(home), catalog)
    loved, hated = foldin.recommend({1: 5.0}, n=N), foldin.recommend({1: 0.5}, n=N)
    assert [r["movieId"] for r in loved] != [r["movieId"] for r in hated]
    # Beside two liked movies, the same third movie liked or disliked: its nearest
    # neighbour (by the ranking factors) scores lower when it was disliked.
    items = foldin.items.ranking_items
    third = foldin.positions([7])[0]
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    similar = [p for p in np.argsort(-(unit @ unit[third])) if p != third][0]
    scores = {}
    for stars in (5.0, 0.5):
        factor = foldin.ranking_factor(foldin.positions([1, 2, 7]), np.array([5.0, 5.0, stars]))
        scores[stars] = float(items[similar] @ factor)
    assert scores[0.5] < scores[5.0]
    # Reasons name only movies rated 4 stars or more: none at all when nothing was.
    assert {r["reason"] for r in foldin.recommend({1: 5.0, 2: 3.5, 7: 0.5}, n=N)} <= {1}
    assert {r["reason"] for r in foldin.recommend({7: 0.5, 2: 3.5}, n=N)} == {None}


def test_plain_text_stays_text_in_markdown():
    markdown = MarkdownIt("commonmark")
    hostile = [
        "[Your session expired](https://evil.example/login)",
        "![x](https://evil.example/t.png)",
        *(title for title, _ in MARKDOWN_TITLES),
        "<b>bold</b> `code` _under_ # heading",
        "&lt;escaped&gt; \\ back\\slash",
        "see www.evil.example or mail me@evil.example",
    ]
    for text in hostile:
        shown = plain(text)
        rendered = markdown.render(shown).strip().replace(WORD_JOINER, "")
        assert rendered == f"<p>{html.escape(text, quote=False)}</p>", text
        # Bare addresses are broken up, so Streamlit's link finder passes them by.
        assert not re.search(r"https?:|www\.|\w@", markdown.render(shown)), shown
        assert "$" not in text or "\\$" in plain(text)  # no LaTeX either


def test_a_catalog_rewritten_again_and_again_is_held_once(tmp_path):
    """Every re-materialization replaces the loaded catalog rather than adding one more."""
    write_serving_artifacts(tmp_path)
    before = len(LOADED)
    for i in range(5):
        frame = catalog_frame()
        frame["display_title"] = frame["display_title"] + f" v{i}"
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False), files.catalog_path(tmp_path)
        )
        catalog = open_catalog(tmp_path)
        assert catalog.movies["display_title"].iloc[0].endswith(f" v{i}")
        open_foldin(tmp_path)
    assert len(LOADED) == before + 2  # one catalog, one fold-in model


# ------------------------------------------------------------------------------ posters


def broken_answer(handler: BaseHTTPRequestHandler, kind: str) -> None:
    """Answers that break http.client or json in ways an OSError/ValueError net misses."""
    out = handler.wfile
    if kind == "cut chunked body":  # http.client.IncompleteRead
        out.write(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{"poster')
    elif kind == "garbage status line":  # http.client.BadStatusLine
        out.write(b"SPDY/9 lol\r\n\r\n")
    elif kind == "header over 64 KB":  # http.client.LineTooLong
        out.write(b"HTTP/1.1 200 OK\r\nX-Huge: " + b"a" * 70_000 + b"\r\n\r\n{}")
    elif kind == "JSON nested too deep":  # RecursionError
        body = b"[" * 200_000 + b"]" * 200_000
        out.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    out.flush()
    handler.close_connection = True


BROKEN = ["cut chunked body", "garbage status line", "header over 64 KB", "JSON nested too deep"]


class FakeTmdb(BaseHTTPRequestHandler):
    """TMDB's /movie/{id}: 1 answers, 2 refuses the key, 3 is unknown, 4 is slow, 5 sends
    garbage, 6 sends a poster path that is not one, 7 to 10 break the HTTP exchange or the
    JSON parser (BROKEN); any other has a poster, unless `broken` says every answer breaks."""

    requests: list[str] = []
    broken: str | None = None

    def do_GET(self):  # noqa: N802 (http.server's name)
        FakeTmdb.requests.append(self.path)
        movie = int(self.path.split("/movie/")[1].split("?")[0])
        if FakeTmdb.broken or 7 <= movie <= 10:
            broken_answer(self, FakeTmdb.broken or BROKEN[movie - 7])
            return
        if movie == 4:
            time.sleep(1.5)
        status, body = {
            1: (200, json.dumps({"poster_path": "/abc.jpg"})),
            2: (401, json.dumps({"status_message": "Invalid API key"})),
            3: (404, "{}"),
            4: (200, json.dumps({"poster_path": "/late.jpg"})),
            5: (200, "<html>not json"),
            6: (200, json.dumps({"poster_path": '/x.jpg" onerror="alert(1)'})),
        }.get(movie, (200, json.dumps({"poster_path": f"/p{movie}.jpg"})))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def tmdb():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTmdb)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/3"
    server.shutdown()


def test_posters_from_tmdb_and_a_placeholder_on_every_failure(tmdb):
    fetch = posters.fetch_poster_url
    assert fetch(1, KEY, base=tmdb) == posters.IMAGE_BASE + "/abc.jpg"
    assert KEY not in fetch(1, KEY, base=tmdb)
    for movie in (2, 3, 5, 6):
        assert fetch(movie, KEY, base=tmdb) is None
    started = time.perf_counter()
    assert fetch(4, KEY, base=tmdb, timeout=0.3) is None
    assert time.perf_counter() - started < 1.4  # gave up at the timeout, not the answer
    assert fetch(1, KEY, base="http://127.0.0.1:9") is None  # refused
    for movie in range(7, 11):  # each broke the whole app before
        assert fetch(movie, KEY, base=tmdb) is None, BROKEN[movie - 7]


def test_poster_cache_asks_once_and_never_without_a_key(tmdb):
    cache = posters.PosterCache(base=tmdb)
    FakeTmdb.requests.clear()
    assert cache.get_many([1, None, float("nan"), 3], None) == [None] * 4
    assert FakeTmdb.requests == []
    first = cache.get_many([1, 3, 1], KEY)
    assert first == [posters.IMAGE_BASE + "/abc.jpg", None, posters.IMAGE_BASE + "/abc.jpg"]
    assert len(FakeTmdb.requests) == 2
    assert cache.get_many([1, 3], KEY) == first[:2]
    assert len(FakeTmdb.requests) == 2  # misses are cached too
    expired = posters.PosterCache(ttl=0.0, base=tmdb)
    expired.get_many([1], KEY)
    expired.get_many([1], KEY)
    assert len(FakeTmdb.requests) == 4


# ------------------------------------------------------------------------------ AppTest


@pytest.fixture
def app_env(home, monkeypatch):
    monkeypatch.setenv("CINEMATCH_HOME", str(home))
    monkeypatch.delenv("TMDB_API_KEY", raising=False)
    return home


TABS = {"For you": 0, "New here": 1, "Search": 2, "Insights": 3}


def cards(at: AppTest, tab: str) -> list[str]:
    """The movie cards on one tab (the open one: the others do not run)."""
    markdown = at.tabs[TABS[tab]].markdown
    return [m.value for m in markdown if m.value.startswith('<div class="cm-card">')]


def run_app(tab: str = "For you") -> AppTest:
    """The app, run once with `tab` open (only the open tab runs)."""
    return open_tab(AppTest.from_file(APP, default_timeout=60), tab)


def open_tab(at: AppTest, tab: str) -> AppTest:
    """`at` run again with `tab` open, as a click on it does."""
    at.session_state["page"] = tab
    at.run()
    assert not at.exception, at.exception
    return at


def test_for_you_shows_ten_cards_with_escaped_titles(app_env):
    at = run_app()
    assert "Enter a user id" in at.info[0].value
    at.text_input(key="user_id").input("510").run()
    assert not at.exception
    shown = cards(at, "For you")
    assert len(shown) == N
    page = "\n".join(shown)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert HOSTILE_TITLE not in page
    assert "#&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold" not in page  # tags are data too
    assert "Because you rated" in page and "★" in page
    assert at.query_params["user"] == ["510"] or at.query_params["user"] == "510"


def test_for_you_reads_the_user_from_the_url_and_filters_by_genre(app_env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["user"] = "510"
    at.run()
    assert len(cards(at, "For you")) == N
    at.multiselect(key="you_genres").select("Drama").run()
    assert 0 < len(cards(at, "For you")) < N
    assert all("Drama" in card for card in cards(at, "For you"))
    assert at.subheader[0].value == f"Top {len(cards(at, 'For you'))} for user 510"
    # A genre none of the list has: said in words, not "Top 0".
    served = {m for e in Recommendations.load(app_env).lookup(510) for m in [e["movieId"]]}
    genres = open_catalog(app_env).movies.set_index("movieId")["genres"]
    absent = sorted(set(genres.explode().dropna()) - set(genres[list(served)].explode()))
    at.multiselect(key="you_genres").set_value(absent[:1]).run()
    assert absent and cards(at, "For you") == [] and not at.subheader
    assert any("None of the recommendations for user 510" in m.value for m in at.info)


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("abc", "whole numbers"),
        ("12.5", "whole numbers"),
        ("-1", "ids start at 1"),
        ("99999999999", "ids go up to 2,147,483,647"),
        ("4242", "no user 4242"),
    ],
)
def test_for_you_answers_bad_ids_clearly(app_env, typed, answer):
    at = run_app()
    at.text_input(key="user_id").input(typed).run()
    assert not at.exception
    messages = [m.value for m in (*at.info, *at.warning)]
    assert any(answer in m.lower() for m in messages), messages
    assert cards(at, "For you") == []


def test_new_here_rates_movies_and_gets_recommendations(app_env):
    at = run_app("New here")
    for query in ("matrix", "amelie", "movie 1"):
        at.text_input(key="new_query").input(query).run()
        at.button(key="rate").click().run()
        assert not at.exception
    rated = at.session_state["new_ratings"]
    assert len(rated) == 3
    shown = cards(at, "New here")
    assert len(shown) == N
    assert "The Matrix" not in "".join(shown).split("Because")[0]


def test_saved_ratings_open_an_account_and_come_back_with_its_link(app_env):
    at = run_app("New here")
    for query in ("matrix", "amelie"):
        at.text_input(key="new_query").input(query).run()
        at.button(key="rate").click().run()
    at.button(key="save").click().run()
    assert not at.exception
    user, key = at.session_state["account"]
    assert user >= APP_USERS_FROM
    assert any(f"You are user {user}" in m.value for m in at.success)
    saved = app_ratings.saved_ratings(app_env, user, key)
    assert saved == at.session_state["new_ratings"] and len(saved) == 2
    # From now on a rating is saved at once, and one can be removed.
    at.text_input(key="new_query").input("movie 1").run()
    at.button(key="rate").click().run()
    assert len(app_ratings.saved_ratings(app_env, user, key)) == 3
    gone = at.selectbox(key="remove_movie").value
    at.button(key="remove").click().run()
    assert gone not in app_ratings.saved_ratings(app_env, user, key)

    # A new session with the link: the saved ratings are back, and the list with them.
    back = AppTest.from_file(APP, default_timeout=60)
    back.query_params["user"], back.query_params["key"] = str(user), key
    back.run()
    assert back.session_state["new_ratings"] == app_ratings.saved_ratings(app_env, user, key)
    assert len(cards(back, "For you")) == N  # their own list, made from the saved ratings
    assert len(cards(open_tab(back, "New here"), "New here")) == N
    # A wrong key reads nothing and says so; a release user's link opens no account.
    for who, wrong, warned in ((str(user), "guess", True), ("510", key, False)):
        stranger = AppTest.from_file(APP, default_timeout=60)
        stranger.query_params["user"], stranger.query_params["key"] = who, wrong
        open_tab(stranger, "New here")
        assert stranger.session_state["account"] is None
        assert not stranger.session_state["new_ratings"]
        warnings = [m.value for m in stranger.warning]
        assert any("Ratings you save now go to a new account" in m for m in warnings) is warned


def visitor_with_ratings(home: Path) -> tuple[int, str, dict[int, float]]:
    """An app account with saved ratings, 1 star among them: (user, key, ratings)."""
    user, key = app_ratings.create_account(home)
    found = open_catalog(home).search("movie", n=4)["movieId"]
    mine = {int(m): stars for m, stars in zip(found, (5.0, 4.5, 4.0, 1.0), strict=True)}
    app_ratings.save_ratings(home, user, key, mine, open_catalog(home),
                             session="t", serving_version=None)  # fmt: skip
    return user, key, mine


def test_a_visitors_list_and_ratings_show_only_with_their_key(app_env, tmp_path, monkeypatch):
    """No key or a wrong one: one plain sentence, the same as for an id nobody has, and
    nothing of theirs on the page (as after a light run served their list)."""
    home = tmp_path / "home"
    shutil.copytree(app_env, home)
    monkeypatch.setenv("CINEMATCH_HOME", str(home))
    user, key, mine = visitor_with_ratings(home)
    listed = open_foldin(home).recommend(mine, n=N)
    files.publish_changed_lists(home, {user: listed}, {}, base=files.read_manifest(home)["version"])
    titles = {open_catalog(home).label(m) for m in mine}
    answers = set()
    for who, given in ((user, None), (user, "guess"), (user + 1, None), (user + 1, key)):
        stranger = AppTest.from_file(APP, default_timeout=60)
        stranger.query_params["user"] = str(who)
        if given:
            stranger.query_params["key"] = given
        stranger.run()
        assert not stranger.exception
        assert cards(stranger, "For you") == [] and not stranger.expander
        said = [m.value.replace(str(who), "N") for m in stranger.info]
        assert len(said) == 1 and "private" in said[0], said
        answers.add(said[0])
        page = " ".join(str(e.value) for e in stranger.main if hasattr(e, "value"))
        assert not any(title in page for title in titles)
    assert len(answers) == 1  # a wrong key tells nothing an unknown id does not
    owner = AppTest.from_file(APP, default_timeout=60)
    owner.query_params["user"], owner.query_params["key"] = str(user), key
    owner.run()
    assert len(cards(owner, "For you")) == N
    shown = [t.value for t in owner.expander[0].text]
    assert len(shown) == len(mine) and all(t.split("  ", 1)[1] in titles for t in shown)


def test_a_rating_given_under_new_here_reaches_for_you_at_once(app_env, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(app_env, home)
    monkeypatch.setenv("CINEMATCH_HOME", str(home))
    user, key, mine = visitor_with_ratings(home)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["user"], at.query_params["key"] = str(user), key
    at.run()
    before = cards(at, "For you")
    top = at.selectbox(key="you_movie").value  # the first of their list
    open_tab(at, "New here")
    at.text_input(key="new_query").input(open_catalog(home).movies.loc[top, "display_title"])
    at.run()
    at.selectbox(key="new_movie").select(top).run()
    at.button(key="rate").click().run()
    assert app_ratings.saved_ratings(home, user, key)[top] == 4.0
    open_tab(at, "For you")
    after = cards(at, "For you")
    assert after != before and at.selectbox(key="you_movie").value != top
    assert open_catalog(home).label(top) not in at.selectbox(key="you_movie").options
    highest = [t.value for t in at.expander[0].text]
    assert any(open_catalog(home).label(top) in t for t in highest)


def test_rating_on_for_you_re_ranks_at_once_and_a_release_user_stays_read_only(app_env):
    """The re-ranked list starts from everything the user rated, not their favourites:
    none of it comes back."""
    history = Recommendations.load(app_env).ratings(510)
    assert len(history) == 15
    at = run_app()
    at.text_input(key="user_id").input("510").run()
    first = at.selectbox(key="you_movie").value
    at.button(key="you_rate").click().run()
    assert not at.exception
    assert at.session_state["you_ratings"][510] == {first: 4.0}
    captions = " ".join(c.value for c in at.caption)
    assert "Updated with your latest ratings" in captions and "read-only" in captions
    shown = cards(at, "For you")
    assert len(shown) == N
    labels = {open_catalog(app_env).label(m) for m in [*history, first]}
    assert not labels & set(at.selectbox(key="you_movie").options)
    second = at.selectbox(key="you_movie").value
    at.button(key="you_skip").click().run()
    assert at.session_state["you_ratings"][510] == {first: 4.0, second: NOT_INTERESTED}
    table = app_ratings.ratings_path(app_env)
    if table.exists():  # nothing written for user 510
        assert 510 not in read_delta(table, columns=["userId"]).column("userId").to_pylist()


def test_an_account_holder_rates_on_for_you_and_it_is_saved(app_env, tmp_path, monkeypatch):
    """A visitor with a served list (as after a light run) rates from it: saved at once."""
    home = tmp_path / "home"
    shutil.copytree(app_env, home)
    monkeypatch.setenv("CINEMATCH_HOME", str(home))
    user, key = app_ratings.create_account(home)
    mine = {int(m): 5.0 for m in open_catalog(home).search("movie", n=3)["movieId"]}
    app_ratings.save_ratings(home, user, key, mine, open_catalog(home),
                             session="t", serving_version=None)  # fmt: skip
    listed = open_foldin(home).recommend(mine, n=N)
    base = files.read_manifest(home)["version"]
    files.publish_changed_lists(home, {user: listed}, {}, base=base)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["user"], at.query_params["key"] = str(user), key
    at.run()
    assert len(cards(at, "For you")) == N
    picked = at.selectbox(key="you_movie").value
    at.button(key="you_rate").click().run()
    assert not at.exception
    assert app_ratings.saved_ratings(home, user, key) == {**mine, picked: 4.0}
    assert "saved" in " ".join(c.value for c in at.caption)


def test_a_movie_placed_from_its_content_takes_a_rating_by_one_rule(app_env):
    """Search and New here offer the same movies to rate: those the models know and
    those they place from their content (movie 39 here), and the message is true: a
    placed movie's rating moves the list, through its genres and tags."""
    foldin, placed = open_foldin(app_env), 39
    assert foldin.placed_by_content(placed) and foldin.can_take([placed]).all()
    assert foldin.recommend({placed: 5.0}, n=N) != foldin.recommend({}, n=N)
    label = open_catalog(app_env).label(placed)
    at = run_app("Search")
    at.text_input(key="search_query").input(label.split(" (")[0]).run()
    assert label in at.selectbox(key="search_movie").options
    at.selectbox(key="search_movie").select(placed).run()
    at.button(key="search_rate").click().run()
    assert not at.exception
    said = " ".join(m.value for m in at.success)
    assert "takes it in, through its genres and tags" in said
    shown = cards(open_tab(at, "New here"), "New here")
    expected = foldin.recommend({placed: 4.0}, n=N)
    titles = open_catalog(app_env).movies.set_index("movieId")["display_title"]
    assert [html.unescape(c.split('cm-title">')[1].split(" (")[0]) for c in shown] == [
        titles[e["movieId"]] for e in expected
    ]
    at.text_input(key="new_query").input(label.split(" (")[0]).run()
    assert label in at.selectbox(key="new_movie").options


def test_rating_in_search_joins_new_here(app_env):
    at = run_app("Search")
    at.text_input(key="search_query").input("matrix").run()
    picked = at.selectbox(key="search_movie").value
    at.button(key="search_rate").click().run()
    assert not at.exception
    assert at.session_state["new_ratings"] == {picked: 4.0}
    assert any("your list under" in m.value for m in at.success)
    assert len(cards(open_tab(at, "New here"), "New here")) == N


def test_saving_is_bounded_per_session():
    limit = SaveLimit(saves=3, seconds=60)
    assert [limit.allow(now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limit.allow(now=61)


def test_new_here_with_genres_only(app_env):
    at = run_app("New here")
    at.multiselect(key="new_genres").select("Comedy").run()
    assert len(cards(at, "New here")) > 0 and all(
        "Comedy" in card for card in cards(at, "New here")
    )


def test_search_tab(app_env):
    at = run_app("Search")
    top = cards(at, "Search")
    assert len(top) == 10  # the default: top 10 by Bayesian average
    at.text_input(key="search_query").input("amelie").run()
    assert [c for c in cards(at, "Search") if "Amélie" in c]
    at.text_input(key="search_query").input("img src").run()
    assert any("&lt;img" in c for c in cards(at, "Search"))
    at.text_input(key="search_query").input("zzz no such film").run()
    assert any("No movie matches" in i.value for i in at.info)


def test_insights_tab_shows_charts_and_model_card(app_env):
    at = run_app("Insights")
    assert len(at.get("plotly_chart")) == 2
    assert any("Model card" in e.label for e in at.expander)
    counts = {m.label: m.value for m in at.metric}
    assert set(counts) == {
        "Ratings in the models' data", "Ratings saved in this app",
        "Visitors who saved ratings",
    }  # fmt: skip


def test_insights_counts_the_ratings_saved_in_the_app(tmp_path, monkeypatch):
    home = tmp_path / "home"
    write_serving_artifacts(home)
    monkeypatch.setenv("CINEMATCH_HOME", str(home))
    movies = set(open_catalog(home).movies.index)
    for ratings in ({1: 4.0, 2: 3.0}, {3: 5.0}):
        user, key = app_ratings.create_account(home)
        app_ratings.save_ratings(home, user, key, ratings, movies, session="s",
                                 serving_version=None)  # fmt: skip
    app_ratings.save_ratings(home, user, key, {3: None}, movies, session="s",
                             serving_version=None)  # fmt: skip
    at = run_app("Insights")
    counts = {m.label: m.value for m in at.metric}
    assert counts["Ratings saved in this app"] == "2"
    assert counts["Visitors who saved ratings"] == "1"


def test_missing_artifacts_give_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("CINEMATCH_HOME", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert len(at.error) == 1 and "No serving artifacts" in at.error[0].value
    assert "make materialize" in at.error[0].value


def test_posters_in_cards_and_the_key_never_on_the_page(app_env, tmdb, monkeypatch):
    monkeypatch.setenv("TMDB_API_KEY", KEY)
    monkeypatch.setenv("CINEMATCH_TMDB_API", tmdb)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["user"] = "1"
    at.run()
    page = "\n".join(m.value for m in at.markdown)
    assert KEY not in page
    assert 'class="cm-poster" src="https://image.tmdb.org/t/p/w342/p' in page


def test_a_crafted_user_link_stays_text(app_env):
    for crafted in (
        "[Your session expired](https://evil.example/login)",
        "![x](https://evil.example/t.png)",
    ):
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["user"] = crafted
        at.run()
        assert not at.exception
        shown = at.info[0].value
        assert "is not a user id" in shown and "evil" not in shown  # never echoed


def test_titles_with_markdown_syntax_are_shown_as_written(app_env):
    at = run_app("New here")
    for title, _ in MARKDOWN_TITLES:
        at.text_input(key="new_query").input(title).run()
        at.button(key="rate").click().run()
        assert not at.exception
    caption = next(c.value for c in at.caption if c.value.startswith("Your ratings"))
    rendered = MarkdownIt("commonmark").render(caption)
    for title, _ in MARKDOWN_TITLES:
        assert html.escape(title, quote=False) in rendered, (title, caption)
    assert "<em>" not in rendered


def test_a_movie_dropped_by_a_new_materialization_leaves_the_session_working(
    home, tmp_path, monkeypatch
):
    write_serving_artifacts(tmp_path)
    monkeypatch.setenv("CINEMATCH_HOME", str(tmp_path))
    at = run_app("New here")
    for query in ("matrix reloaded", "amelie"):
        at.text_input(key="new_query").input(query).run()
        at.button(key="rate").click().run()
    assert set(at.session_state["new_ratings"]) == {4, 2}
    frame = catalog_frame()
    frame = frame[frame["movieId"] != 4]  # The Matrix Reloaded is gone
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), files.catalog_path(tmp_path))
    at.run()
    assert not at.exception and not at.error
    caption = next(c.value for c in at.caption if c.value.startswith("Your ratings"))
    assert "Am" in caption and "Reloaded" not in caption and "no longer in the catalog" in caption
    assert len(cards(at, "New here")) == N


def break_profiles(home: Path) -> None:
    files.profiles_path(home).unlink()


def write_text(path: Path, text: str) -> None:
    path.write_text(text)


def current_shard(home: Path) -> Path:
    manifest = json.loads(files.manifest_path(home).read_text())
    return files.recommendations_dir(home) / manifest["version"] / files.shard_name(0)


def remove_version(home: Path) -> None:
    folder = current_shard(home).parent
    for shard in folder.iterdir():
        shard.unlink()
    folder.rmdir()


def rewrite_factors(home: Path, change) -> None:
    with np.load(files.factors_path(home)) as npz:
        arrays = {key: npz[key] for key in npz.files}
    change(arrays)
    np.savez(files.factors_path(home), **arrays)


# What breaks -> the tab that must say so (the others keep working).
BROKEN_ARTIFACTS = {
    "no user_profiles.parquet": (break_profiles, "For you"),
    "an empty manifest": (lambda h: write_text(files.manifest_path(h), ""), "For you"),
    "a truncated manifest": (
        lambda h: write_text(files.manifest_path(h), '{"version": "v1", "sha'),
        "For you",
    ),
    "no version folder": (remove_version, "For you"),
    "no shard": (lambda h: current_shard(h).unlink(), "For you"),
    "a truncated shard": (
        lambda h: write_text(current_shard(h), current_shard(h).read_text()[:50]),
        "For you",
    ),
    "a factor file without a key": (
        lambda h: rewrite_factors(h, lambda a: a.pop("ranking_alpha")),
        "New here",
    ),
    "too few factor rows": (
        lambda h: rewrite_factors(h, lambda a: a.update(ranking_items=a["ranking_items"][:5])),
        "New here",
    ),
    "a catalog that is not Parquet": (
        lambda h: write_text(files.catalog_path(h), "not parquet"),
        "Search",
    ),
}


@pytest.mark.parametrize("broken", list(BROKEN_ARTIFACTS))
def test_a_broken_serving_file_gives_one_plain_message(broken, tmp_path, monkeypatch):
    write_serving_artifacts(tmp_path)
    damage, tab = BROKEN_ARTIFACTS[broken]
    damage(tmp_path)
    monkeypatch.setenv("CINEMATCH_HOME", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["user"] = "510"
    open_tab(at, tab)
    assert not at.exception, broken
    messages = [e.value for e in at.tabs[TABS[tab]].error] + [
        w.value for w in at.tabs[TABS[tab]].warning
    ]
    assert len(messages) == 1, (broken, messages)
    assert "make materialize" in messages[0] and "Traceback" not in messages[0]
    if tab == "For you" and broken == "no user_profiles.parquet":
        assert len(cards(at, "For you")) == N  # the list itself still shows
    # Insights never needs the serving files; Search needs only the catalog.
    assert len(open_tab(at, "Insights").tabs[TABS["Insights"]].get("plotly_chart")) == 2
    if "catalog" not in broken:
        assert len(cards(open_tab(at, "Search"), "Search")) == 10


@pytest.mark.parametrize("kind", BROKEN)
def test_posters_that_break_the_connection_leave_placeholders(app_env, tmdb, monkeypatch, kind):
    monkeypatch.setenv("TMDB_API_KEY", KEY)
    monkeypatch.setenv("CINEMATCH_TMDB_API", tmdb)
    monkeypatch.setattr(FakeTmdb, "broken", kind)
    st.cache_resource.clear()  # posters another test fetched are still in the cache
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["user"] = "1"
    at.run()
    assert not at.exception and not at.error
    shown = cards(at, "For you")
    assert len(shown) == N and all('aria-label="no poster"' in card for card in shown)


def test_no_stranger_sees_a_stack_trace_and_secrets_stay_out_of_git():
    config = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
    ignored = (REPO_ROOT / ".gitignore").read_text().split()
    assert "/.streamlit/secrets.toml" in ignored


def test_more_discovery_reorders_a_known_users_list_and_a_new_users(app_env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["user"] = "510"
    at.run()
    before = cards(at, "For you")
    at.slider(key="you_discovery").set_value(1.0).run()
    assert not at.exception and not at.error
    after = cards(at, "For you")
    assert len(before) == len(after) == N and before != after
    open_tab(at, "New here")
    at.multiselect(key="new_genres").select("Comedy").run()
    plain_list = cards(at, "New here")
    at.slider(key="new_discovery").set_value(1.0).run()
    assert not at.exception and cards(at, "New here") != plain_list

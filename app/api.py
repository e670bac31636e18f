"""The CineMatch HTTP API: the served lists, new users' lists, search, movie cards and
similar movies as JSON, on the serving files the app reads and through the same code
(`cinematch_assets.serving`), so a product gets exactly what the app shows.

    make api                                  # http://127.0.0.1:8000/docs
    uvicorn app.api:app --host 127.0.0.1 --port 8000

Every request reads the files of one published version: the manifest is read once per
request, and the catalog and the model factors are reloaded when their files change, so
a new publish is picked up without a restart. Errors are JSON (`{"detail": ...}`): 404
for an unknown user or movie, 422 for bad input, 413 for an oversized body, 503 while a
serving file is missing or unreadable (the message names it and what rebuilds it).
"""
# ruff: noqa: E402 (the BLAS setting below must come before numpy loads)

import os

# One worker process per core serves the API: numpy must use one BLAS thread in each, or
# the workers' threads fight over the cores (under 32 clients at ML-33M's shape, fold-ins
# ran at 90-100 requests/s instead of 320-350). A setting in the environment wins.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator, model_validator

from cinematch_assets import settings
from cinematch_assets.conventions import MAX_RATING, MIN_RATING
from cinematch_assets.serving.catalog import Catalog, open_catalog
from cinematch_assets.serving.known_users import Recommendations, known_user_list
from cinematch_assets.serving.loading import ArtifactProblem
from cinematch_assets.serving.new_users import FoldIn, open_foldin
from cinematch_assets.storage import app_ratings
from cinematch_assets.storage import serving_files as files
from cinematch_assets.storage.app_ratings import APP_USERS_FROM

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # a list of MAX_RATINGS ratings is about 20 KB
MAX_RATINGS = 500
MAX_GENRES = 20
MAX_K = 30  # the served lists hold 30 movies per user
ID = Annotated[int, Field(ge=1, le=2**31 - 1)]
Genre = Annotated[str, Field(min_length=1, max_length=40)]


# ------------------------------------------------------------------------------ schema


class Problem(BaseModel):
    detail: str


class Movie(BaseModel):
    movieId: int  # noqa: N815 (the serving files' name, as clients see it everywhere)
    title: str
    year: int | None
    genres: list[str]
    tmdbId: int | None  # noqa: N815
    imdbId: str | None  # noqa: N815


class MovieCard(Movie):
    tags: list[str]
    rating_count: int
    avg_rating: float | None
    bayesian_avg: float | None


class Recommended(Movie):
    pred_rating: float | None = Field(description="The rating model's stars for the user.")
    score: float = Field(description="The served order's score (higher: earlier).")
    reason: int | None = Field(description="A movie the user rated highly that led here.")
    reason_title: str | None
    new: bool = Field(description="A movie the models place from its content (too few ratings).")
    fresh: bool = Field(
        default=False,
        description="A recent release: within two years of the data's latest rating.",
    )
    by_title: bool = Field(
        default=False,
        description="The reason is a film whose title this new movie shares (a sequel's "
        "earlier films, a remake's original).",
    )


NEW_FOR_YOU_HELP = (
    'The "New for you" row: recent releases the models cannot place from ratings yet, by '
    "their fit for the user."
)
LITTLE_KNOWN_HELP = (
    "Older films with too few ratings for the models, by their fit for the user (after "
    "the row's recent releases, up to the row's length)."
)


class UserList(BaseModel):
    user_id: int
    version: str = Field(description="The published serving version the list comes from.")
    items: list[Recommended]
    new_for_you: list[Recommended] = Field(description=NEW_FOR_YOU_HELP)
    little_known: list[Recommended] = Field(description=LITTLE_KNOWN_HELP)


class NewUserList(BaseModel):
    version: str
    items: list[Recommended]
    new_for_you: list[Recommended] = Field(description=NEW_FOR_YOU_HELP)
    little_known: list[Recommended] = Field(description=LITTLE_KNOWN_HELP)


class MoviePage(BaseModel):
    total: int
    page: int
    per_page: int
    items: list[MovieCard]


class SimilarMovie(Movie):
    score: float


class SimilarMovies(BaseModel):
    movieId: int  # noqa: N815
    version: str
    items: list[SimilarMovie]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    version: str
    published_seconds_ago: float
    users: int
    movies: int


class Rated(BaseModel):
    movieId: ID  # noqa: N815
    rating: float = Field(ge=MIN_RATING, le=MAX_RATING, description="Stars, in half stars.")

    @field_validator("rating")
    @classmethod
    def on_half_stars(cls, rating: float) -> float:
        if not float(rating * 2).is_integer():
            raise ValueError(f"stars go in halves from {MIN_RATING} to {MAX_RATING}")
        return rating


class NewUser(BaseModel):
    ratings: list[Rated] = Field(default=[], max_length=MAX_RATINGS)
    genres: list[Genre] = Field(default=[], max_length=MAX_GENRES)
    k: int = Field(default=10, ge=1, le=MAX_K)
    discovery: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def says_something(self) -> "NewUser":
        if not self.ratings and not self.genres:
            raise ValueError("give at least one rating or one favourite genre")
        rated = [r.movieId for r in self.ratings]
        if twice := sorted({m for m in rated if rated.count(m) > 1}):
            raise ValueError(f"rated more than once: {', '.join(map(str, twice))}")
        return self


# ----------------------------------------------------------------------------- helpers


def _value(value: Any) -> Any:
    """A catalog cell as JSON: missing (None, NaN, pandas' NA) as null."""
    return None if value is None or pd.isna(value) else value


def _movie(row: dict[str, Any]) -> dict[str, Any]:
    year, tmdb, imdb = (_value(row.get(c)) for c in ("release_year", "tmdbId", "imdbId"))
    return {
        "movieId": int(row["movieId"]),
        "title": str(row["display_title"]),
        "year": None if year is None else int(year),
        "genres": list(row.get("genres") or []),
        "tmdbId": None if tmdb is None else int(tmdb),
        "imdbId": None if imdb is None else str(imdb),
    }


def _card(row: dict[str, Any]) -> dict[str, Any]:
    average, bayesian = _value(row.get("avg_rating")), _value(row.get("bayesian_avg"))
    return _movie(row) | {
        "tags": list(row.get("tags") or []),
        "rating_count": int(row.get("rating_count") or 0),
        "avg_rating": None if average is None else round(float(average), 4),
        "bayesian_avg": None if bayesian is None else round(float(bayesian), 4),
    }


def _recommended(catalog: Catalog, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Served-list entries with their movies' catalog fields (and the reason's title)."""
    ids = [int(e["movieId"]) for e in entries]
    reasons = [int(e["reason"]) for e in entries if e.get("reason") is not None]
    rows = {int(r["movieId"]): r for r in catalog.rows(ids + reasons)}
    out = []
    for entry in entries:
        row = rows.get(int(entry["movieId"]))
        if row is None:  # a movie the catalog no longer has: never shown
            continue
        reason = entry.get("reason")
        reason_row = rows.get(int(reason)) if reason is not None else None
        stars = entry.get("pred_rating")
        out.append(
            _movie(row)
            | {
                "pred_rating": None if stars is None else round(float(stars), 2),
                "score": round(float(entry["score"]), 4),
                "reason": None if reason_row is None else int(reason),
                "reason_title": None if reason_row is None else str(reason_row["display_title"]),
                "new": bool(entry.get("new", False)),
                "fresh": bool(entry.get("fresh", False)),
                "by_title": bool(entry.get("by_title", False)),
            }
        )
    return out


def _row(catalog: Catalog, row: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A user's row of movies placed from their content, under its two names: the recent
    releases (new_for_you) and the older films (little_known)."""
    return {
        "new_for_you": _recommended(catalog, [e for e in row if e.get("fresh")]),
        "little_known": _recommended(catalog, [e for e in row if not e.get("fresh")]),
    }


def _invalid(where: tuple[str, str], message: str, value: Any) -> RequestValidationError:
    """A 422 in the shape FastAPI gives every other validation error (`detail`: a list)."""
    return RequestValidationError(
        [{"type": "value_error", "loc": where, "msg": message, "input": value}]
    )


def _etag(version: str, *asked: Any) -> str:
    """A list's validator: the published version and what was asked."""
    text = json.dumps([version, *asked])
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def unknown_user(user_id: int) -> str:
    return f"no user {user_id} in the models"


# A visitor's key, as the app's link holds it: their list is theirs.
visitor_key = HTTPBearer(
    auto_error=False,
    scheme_name="VisitorKey",
    description="The key of an app visitor's link (`?user=...&key=...`): needed for that "
    "visitor's own list only. MovieLens users' lists are public.",
)


def _known_genres(catalog: Catalog, genres: list[str], where: tuple[str, str]) -> list[str]:
    if unknown := sorted(set(genres) - set(catalog.genres)):
        raise _invalid(where, f"unknown genres: {', '.join(unknown)}", genres)
    return genres


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413 before the endpoint
    sees it, whether it says its length or streams it in chunks (read up to the limit,
    then handed on whole)."""

    def __init__(self, app: Callable, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_long = JSONResponse({"detail": f"request body over {self.limit:,} bytes"}, 413)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await too_long(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await too_long(scope, receive, send)
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()  # after the body: a disconnect, when it comes
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


# -------------------------------------------------------------------------------- app


def create_app(home: Path | None = None) -> FastAPI:
    """The API on the serving files under `home` (default: CINEMATCH_HOME)."""
    root = Path(home) if home is not None else settings.cinematch_home()

    @asynccontextmanager
    async def loaded_first(api: FastAPI) -> AsyncIterator[None]:
        """Load the serving files and their lookups before a worker takes requests: at
        ML-33M's 86k movies that takes seconds, which no client should wait for."""
        try:
            open_catalog(root).make_lookups()
            open_foldin(root)
        except ArtifactProblem as problem:  # answered with 503 until the files are there
            log.warning("serving files not loaded at start: %s", problem)
        yield

    api = FastAPI(
        lifespan=loaded_first,
        title="CineMatch API",
        version="1",
        description="Movie recommendations from the CineMatch serving files: a known "
        "user's list, a new user's list from their ratings, search, movie cards and "
        "similar movies.",
        responses={503: {"model": Problem, "description": "Serving files missing or broken"}},
    )
    api.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    @api.exception_handler(ArtifactProblem)
    async def unavailable(request: Request, problem: ArtifactProblem) -> JSONResponse:
        return JSONResponse({"detail": str(problem)}, 503)

    @api.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:
        log.exception("request failed: %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error: see the API's log"}, 500)

    # Every call is `async`: a worker answers one at a time on its event loop. The
    # longest (a fold-in at ML-33M's shape) computes for ~4 ms; run in FastAPI's thread
    # pool instead, 32 concurrent fold-ins fought over the GIL at a third of the rate.
    def published() -> Recommendations:
        return Recommendations.load(root)

    def foldin() -> FoldIn:
        return open_foldin(root)

    @api.get("/health", response_model=Health, tags=["operations"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @api.get("/ready", response_model=Ready, tags=["operations"])
    async def ready() -> dict[str, Any]:
        """Readiness: every serving file loads; the published version and its age."""
        recommendations = published()
        catalog = open_catalog(root)
        foldin()
        manifest = files.manifest_path(root)
        return {
            "status": "ready",
            "version": recommendations.version,
            "published_seconds_ago": round(time.time() - manifest.stat().st_mtime, 1),
            "users": recommendations.users,
            "movies": len(catalog.movies),
        }

    @api.get(
        "/users/{user_id}/recommendations",
        response_model=UserList,
        responses={
            304: {"description": "Not modified (If-None-Match)"},
            401: {"model": Problem, "description": "A visitor's list asked for without a key"},
            404: {"model": Problem, "description": "No such user, or not that visitor's key"},
        },
        # The key is optional: MovieLens users' lists need none ({}: no authentication).
        openapi_extra={"security": [{}]},
        tags=["lists"],
    )
    async def user_recommendations(
        request: Request,
        response: Response,
        user_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(visitor_key)],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        discovery: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
        genre: Annotated[list[Genre], Query(max_length=MAX_GENRES)] = [],  # noqa: B006
    ) -> Any:
        """A known user's list, as the app shows it: the served order, `discovery` more
        popularity penalty, only movies of the `genre`s given. A MovieLens user's list is
        public and cacheable (the ETag changes with the published version). A visitor of
        the app (ids from 1,000,000,000) is private: their list is made now from the
        ratings they saved, and only for their key (`Authorization: Bearer <key>`); a
        wrong key gets the answer of an unknown id."""
        catalog = open_catalog(root)
        genres = _known_genres(catalog, genre, ("query", "genre"))
        if user_id >= APP_USERS_FROM:
            response.headers["Cache-Control"] = "private, no-store"
            return visitor_list(user_id, credentials, catalog, genres, k, discovery)
        recommendations = published()
        etag = _etag(recommendations.version, user_id, k, discovery, sorted(genres))
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        items = foldin().items if discovery else None
        found = known_user_list(
            recommendations, catalog, items, user_id, n=k, discovery=discovery, genres=genres
        )
        if found is None:
            raise HTTPException(404, unknown_user(user_id))
        version, entries, row = found  # a publish since the manifest was read: the newer one
        response.headers["ETag"] = _etag(version, user_id, k, discovery, sorted(genres))
        response.headers["Cache-Control"] = "no-cache"  # revalidate: a publish changes it
        return {
            "user_id": user_id,
            "version": version,
            "items": _recommended(catalog, entries),
            **_row(catalog, row),
        }

    def visitor_list(
        user_id: int,
        credentials: HTTPAuthorizationCredentials | None,
        catalog: Catalog,
        genres: list[str],
        k: int,
        discovery: float,
    ) -> dict[str, Any]:
        """A visitor's own list, from their saved ratings as they stand (the app's own
        fold-in), for their key only."""
        if credentials is None:
            raise HTTPException(
                401,
                f"user {user_id}'s list is private: send its key (Authorization: Bearer <key>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            saved = app_ratings.saved_ratings(root, user_id, credentials.credentials)
        except app_ratings.RatingRefused:
            raise HTTPException(404, unknown_user(user_id)) from None
        model = foldin()
        rated = {movie: stars for movie, stars in saved.items() if movie in catalog}
        entries = model.recommend(rated, genres=genres, n=k, discovery=discovery)
        return {
            "user_id": user_id,
            "version": published().version,
            "items": _recommended(catalog, entries),
            **_row(catalog, model.new_for_you(rated, genres=genres)),
        }

    @api.post(
        "/recommendations",
        response_model=NewUserList,
        responses={413: {"model": Problem, "description": "Body over 64 KB"}},
        tags=["lists"],
    )
    async def new_user_recommendations(asked: NewUser) -> dict[str, Any]:
        """A new user's list from the ratings they give (and/or favourite genres): the
        models fold them in, as the app's New here does."""
        catalog = open_catalog(root)
        genres = _known_genres(catalog, asked.genres, ("body", "genres"))
        rated = {r.movieId: r.rating for r in asked.ratings}
        if unknown := sorted(m for m in rated if m not in catalog):
            message = f"unknown movies: {', '.join(map(str, unknown))}"
            raise _invalid(("body", "ratings"), message, unknown)
        version = published().version
        model = foldin()
        entries = model.recommend(rated, genres=genres, n=asked.k, discovery=asked.discovery)
        row = model.new_for_you(rated, genres=genres)
        return {
            "version": version,
            "items": _recommended(catalog, entries),
            **_row(catalog, row),
        }

    @api.get("/movies", response_model=MoviePage, tags=["movies"])
    async def search_movies(
        q: Annotated[str, Query(max_length=200, description="Part of the title.")] = "",
        genre: Annotated[list[Genre], Query(max_length=MAX_GENRES)] = [],  # noqa: B006
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
        per_page: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        """Movies whose title contains `q` (case, accents and a leading article ignored)
        with any of the `genre`s, best Bayesian average first, a page at a time."""
        catalog = open_catalog(root)
        found = catalog.matches(q, _known_genres(catalog, genre, ("query", "genre")))
        start = (page - 1) * per_page
        rows = catalog.best_first.iloc[found[start : start + per_page]].to_dict("records")
        return {
            "total": len(found),
            "page": page,
            "per_page": per_page,
            "items": [_card(row) for row in rows],
        }

    @api.get(
        "/movies/{movie_id}",
        response_model=MovieCard,
        responses={404: {"model": Problem}},
        tags=["movies"],
    )
    async def movie(movie_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)]) -> dict[str, Any]:
        """One movie's card."""
        rows = open_catalog(root).rows([movie_id])
        if not rows:
            raise HTTPException(404, f"no movie {movie_id} in the catalog")
        return _card(rows[0])

    @api.get(
        "/movies/{movie_id}/similar",
        response_model=SimilarMovies,
        responses={404: {"model": Problem}},
        tags=["movies"],
    )
    async def similar(
        movie_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    ) -> dict[str, Any]:
        """The movies closest to one movie in the served order's item space (EASE's
        weights or the ranking model's factors); none for a movie the models do not know
        yet (a new movie)."""
        catalog = open_catalog(root)
        if movie_id not in catalog:
            raise HTTPException(404, f"no movie {movie_id} in the catalog")
        version = published().version
        found = foldin().similar(movie_id, k)
        rows = {int(r["movieId"]): r for r in catalog.rows([f["movieId"] for f in found])}
        items = [
            _movie(rows[f["movieId"]]) | {"score": f["score"]}
            for f in found
            if f["movieId"] in rows
        ]
        return {"movieId": movie_id, "version": version, "items": items}

    return api


app = create_app()

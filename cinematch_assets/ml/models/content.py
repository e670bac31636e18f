"""What a movie is, without its ratings: a content vector per movie (genres, release
decade, TF-IDF of its tags, the genome's tag relevance where the release ships it), and
ridge regressions from those vectors into the models' movie spaces, so a movie nobody
has rated yet still gets factors the list builder can score. The vectors are built in
numpy from small per-movie aggregates Spark gathers (`gather_content`); they are a matrix
file beside two tables that name its rows (`ml/movie_content`) and its columns
(`ml/content_features`).

Each part of a vector is scaled to unit length (or left at zero when the movie has no
such data), so genres, decade, tags and genome weigh alike whatever their sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cinematch_assets import keys
from cinematch_assets.ml.arrays import unit_rows
from cinematch_assets.storage.matrix_files import read_matrix, write_matrix

NO_GENRES = "(no genres listed)"
UNKNOWN_DECADE = "decade:unknown"
PARTS = ("genre", "decade", "tag", "genome")


@dataclass(frozen=True)
class ContentVectors:
    """One row per movie (`movie_ids`, ascending), one column per feature (`names`,
    "genre:Comedy", "decade:1990s", "tag:pixar", "genome:pixar animation")."""

    movie_ids: np.ndarray
    matrix: np.ndarray  # float32, movies x features
    names: list[str]

    def rows(self, movie_ids: np.ndarray) -> np.ndarray:
        """The vectors of `movie_ids` (zeros for a movie not in the table)."""
        at = np.searchsorted(self.movie_ids, movie_ids)
        found = (at < len(self.movie_ids)) & (
            self.movie_ids[at.clip(0, len(self.movie_ids) - 1)] == movie_ids
        )
        out = np.zeros((len(movie_ids), self.matrix.shape[1]), dtype=np.float32)
        out[found] = self.matrix[at[found]]
        return out

    def part(self, name: str) -> np.ndarray:
        """The columns of one part ("genre", "tag", ...)."""
        return np.array([n.startswith(f"{name}:") for n in self.names])


def _one_hot(labels: pd.Series, vocabulary: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(vocabulary)}
    block = np.zeros((len(labels), len(vocabulary)), dtype=np.float32)
    for row, values in enumerate(labels):
        for value in values:
            if value in index:
                block[row, index[value]] = 1.0
    return block


def _decade(year: object) -> str:
    if year is None or pd.isna(year):
        return UNKNOWN_DECADE
    return f"decade:{int(year) // 10 * 10}s"


def content_vectors(
    movies: pd.DataFrame,
    tags: pd.DataFrame,
    genome: pd.DataFrame,
    *,
    vocabulary: int = 500,
    min_tag_movies: int = 2,
) -> ContentVectors:
    """Content vectors of every movie in `movies` (movieId, genres: list of str,
    release_year: nullable).

    `tags` (movieId, tag_key, users: how many people gave it): TF-IDF, tf = log(1 +
    users), idf = log(movies / movies with the tag), over the `vocabulary` tags on most
    movies (at least `min_tag_movies` of them: a tag on one movie says nothing shared).
    `genome` (movieId, tag, relevance): the relevance of each genome tag, centred on its
    mean over the movies that have one (empty when the release has no genome)."""
    movies = movies.sort_values("movieId").reset_index(drop=True)
    ids = movies["movieId"].to_numpy(np.int64)
    n = len(ids)
    genres = sorted({g for gs in movies["genres"] for g in gs if g != NO_GENRES})
    decades = movies["release_year"].map(_decade)
    decade_names = sorted(set(decades) - {UNKNOWN_DECADE})
    parts = [
        (unit_rows(_one_hot(movies["genres"], genres)), [f"genre:{g}" for g in genres]),
        (_one_hot(decades.map(lambda d: [d]), decade_names), decade_names),
    ]

    tags = tags[tags["movieId"].isin(ids)]
    spread = tags.groupby("tag_key")["movieId"].nunique()
    spread = spread[spread >= min_tag_movies]
    kept = spread.sort_values(ascending=False, kind="stable").head(vocabulary)
    kept = kept.sort_index()
    if len(kept):
        used = tags[tags["tag_key"].isin(kept.index)]
        rows = np.searchsorted(ids, used["movieId"].to_numpy(np.int64))
        cols = kept.index.get_indexer(used["tag_key"])
        block = np.zeros((n, len(kept)), dtype=np.float32)
        block[rows, cols] = np.log1p(used["users"].to_numpy(np.float32))
        block *= np.log(max(n, 1) / kept.to_numpy(np.float32))
        parts.append((unit_rows(block), [f"tag:{t}" for t in kept.index]))

    genome = genome[genome["movieId"].isin(ids)]
    if len(genome):
        wide = genome.pivot_table(index="movieId", columns="tag", values="relevance")
        wide = wide.fillna(wide.mean())
        centred = (wide - wide.mean()).to_numpy(np.float32)
        block = np.zeros((n, wide.shape[1]), dtype=np.float32)
        block[np.searchsorted(ids, wide.index.to_numpy(np.int64))] = centred
        parts.append((unit_rows(block), [f"genome:{t}" for t in wide.columns]))

    matrix = np.hstack([block for block, _ in parts]).astype(np.float32)
    names = [name for _, part_names in parts for name in part_names]
    return ContentVectors(ids, matrix, names)


@dataclass(frozen=True)
class Ridge:
    """y = (x - x_mean) @ weights + y_mean: fitted by `fit_ridge`."""

    weights: np.ndarray
    x_mean: np.ndarray
    y_mean: np.ndarray
    reg: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.x_mean) @ self.weights + self.y_mean).astype(np.float32)


class RidgeFit:
    """The centred normal equations of `x` (X^T X), computed once and solved for any
    targets and regularization: the costly part at 80k movies x 2k features."""

    def __init__(self, x: np.ndarray) -> None:
        self.x_mean = x.mean(axis=0, dtype=np.float64)
        self.centred = (x - self.x_mean).astype(np.float64)
        self.gram = self.centred.T @ self.centred

    def solve(self, y: np.ndarray, reg: float) -> Ridge:
        y = np.asarray(y, dtype=np.float64).reshape(len(self.centred), -1)
        y_mean = y.mean(axis=0)
        system = self.gram + reg * np.eye(len(self.gram))
        weights = np.linalg.solve(system, self.centred.T @ (y - y_mean))
        return Ridge(weights, self.x_mean, y_mean, reg)


def fit_ridge(x: np.ndarray, y: np.ndarray, reg: float) -> Ridge:
    """Ridge regression with an intercept: (X^T X + reg I)^-1 X^T Y on centred data."""
    return RidgeFit(np.asarray(x)).solve(y, reg)


def held_out_mask(movie_ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded random `fraction` of the movies (a stable choice for the same ids)."""
    rng = np.random.default_rng(seed)
    return rng.random(len(movie_ids)) < fraction


@dataclass(frozen=True)
class RidgeSearch:
    """Each regularization's mean squared error on the held-out movies; the best."""

    errors: dict[float, float]
    best: float


def tune_ridge(
    x: np.ndarray,
    y: np.ndarray,
    regs: Sequence[float],
    held_out: np.ndarray,
    fit: RidgeFit | None = None,
) -> RidgeSearch:
    """The regularization whose fit on the other movies (`fit`: theirs, if already
    computed) predicts the `held_out` movies' targets best (mean squared error)."""
    y = np.asarray(y).reshape(len(x), -1)
    fit = fit or RidgeFit(x[~held_out])
    errors = {}
    for reg in regs:
        ridge = fit.solve(y[~held_out], reg)
        errors[float(reg)] = float(np.mean((ridge.predict(x[held_out]) - y[held_out]) ** 2))
    return RidgeSearch(errors, min(errors, key=errors.__getitem__))


@dataclass(frozen=True)
class ContentInputs:
    """What the vectors are built from, on the driver: one row per movie, per (movie, tag)
    and per (movie, genome tag)."""

    movies: pd.DataFrame  # movieId, genres, release_year
    tags: pd.DataFrame  # movieId, tag_key, users
    genome: pd.DataFrame  # movieId, tag, relevance


def gather_content(
    movies: DataFrame, tags: DataFrame, genome_scores: DataFrame, genome_tags: DataFrame
) -> ContentInputs:
    """Silver movies and tags, Bronze genome scores (named by their tag), aggregated by
    Spark and brought to the driver (at most movies x genome tags rows)."""
    tag_users = tags.groupBy("movieId", "tag_key").agg(F.countDistinct("userId").alias("users"))
    genome = genome_scores.join(genome_tags, "tagId").select("movieId", "tag", "relevance")
    return ContentInputs(
        movies.select("movieId", "genres", "release_year").toPandas(),
        tag_users.toPandas(),
        genome.toPandas(),
    )


CONTENT_FOLDER = "movie_content"  # under the data root's models: the vectors' matrix file


def content_tables(
    spark: SparkSession, vectors: ContentVectors, models: Path
) -> tuple[DataFrame, DataFrame]:
    """(`ml/movie_content`: movieId, row, vectors_file; `ml/content_features`: position,
    name). The vectors themselves are a matrix file under `models` (a dense movies x
    features matrix is not a table: `storage.matrix_files`); the tables say which movie is
    which row and which feature which column."""
    file_name = write_matrix(models / CONTENT_FOLDER, "vectors", vectors.matrix)
    rows = pd.DataFrame(
        {"movieId": vectors.movie_ids.astype(np.int32),
         "row": np.arange(len(vectors.movie_ids), dtype=np.int32),
         "vectors_file": file_name}
    )  # fmt: skip
    names = pd.DataFrame({"position": np.arange(len(vectors.names), dtype=np.int32),
                          "name": vectors.names})  # fmt: skip
    return (
        spark.createDataFrame(rows, "movieId int, row int, vectors_file string"),
        spark.createDataFrame(names, "position int, name string"),
    )


def read_content(read, models: Path) -> ContentVectors:
    """The content vectors from the lake, through `read` (a key -> DataFrame reader), the
    matrix from its file under `models` (memory-mapped once per process)."""
    names = read(keys.CONTENT_FEATURES).orderBy("position").toPandas()["name"].tolist()
    rows = read(keys.MOVIE_CONTENT).toPandas().sort_values("row")
    if not len(rows):
        return ContentVectors(np.zeros(0, np.int64), np.zeros((0, len(names)), np.float32), names)
    files = rows["vectors_file"].unique()
    if len(files) != 1:
        raise ValueError(f"ml/movie_content names {len(files)} files: re-materialize it")
    matrix = read_matrix(
        models / CONTENT_FOLDER, files[0], rows=rows["row"].to_numpy(), columns=len(names),
        written_by=keys.label(keys.MOVIE_CONTENT),
    )  # fmt: skip
    return ContentVectors(rows["movieId"].to_numpy(np.int64), matrix, names)

"""A model as one typed artifact: its parameters, its factor tables and how it was
trained, with one way to write it to the lake and one to read it back, used by the model
assets, the checks, the evaluation, serving and the benchmark.

In the lake a model is three Delta tables (`ModelTables`): one row of parameters and
training record, the users' and the movies' factors (and biases). A dense matrix (EASE's
weights) is a file in the model's folder instead (`storage.matrix_files`), named by the
model's row; its movie table says which movie each of its rows is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from cinematch_assets import keys
from cinematch_assets.keys import Key
from cinematch_assets.ml.models.ease import EaseModel, EaseParams
from cinematch_assets.ml.models.ranking import RankingModel, RankingParams
from cinematch_assets.ml.models.rating import RatingModel, RatingParams
from cinematch_assets.storage.matrix_files import read_matrix, write_matrix

M = TypeVar("M", RatingModel, RankingModel, EaseModel)


@dataclass(frozen=True)
class ModelTables:
    """Where a model lives: its parameter row, its user table, its movie table, and its
    folder under the data root's models (Spark ML's save, its matrix files)."""

    model: Key
    users: Key | None
    items: Key
    folder: str

    def asset_keys(self) -> list[Key]:
        return [key for key in (self.model, self.users, self.items) if key is not None]


RATING = ModelTables(
    keys.RATING_MODEL, keys.RATING_USER_FACTORS, keys.RATING_ITEM_FACTORS, "als_rating_model"
)
RANKING = ModelTables(
    keys.RANKING_MODEL, keys.RANKING_USER_FACTORS, keys.RANKING_ITEM_FACTORS, "als_ranking_model"
)
# EASE has no user side: a user is their history.
EASE = ModelTables(keys.EASE_MODEL, None, keys.EASE_ITEM_WEIGHTS, "ease_ranking_model")


@dataclass(frozen=True)
class TuningResult:
    """One row per combination: its parameters, the metric per split, their mean and the
    seconds its fits took; `best` is the row chosen: the best mean or, when the search
    weighed cost (`tolerance` set: `tuning.Evidence`), the cheapest one that no dearer
    one beats by the evidence rule (each row then has its cost and its paired
    difference from the chosen row, with that difference's standard error)."""

    metric: str
    parameters: tuple[str, ...]
    rows: list[dict[str, Any]]
    best: dict[str, Any]
    tolerance: float | None = None

    @property
    def best_params(self) -> dict[str, Any]:
        return {name: self.best[name] for name in self.parameters}

    @property
    def best_value(self) -> float:
        return self.best[f"mean {self.metric}"]

    def to_json(self) -> str:
        best = self.rows.index(self.best)
        return json.dumps(
            {"metric": self.metric, "parameters": self.parameters, "rows": self.rows,
             "best": best, "tolerance": self.tolerance}
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> TuningResult:
        data = json.loads(text)
        rows = data["rows"]
        return cls(
            data["metric"], tuple(data["parameters"]), rows, rows[data["best"]],
            data.get("tolerance"),
        )  # fmt: skip

    def markdown(self) -> str:
        if not self.rows:
            return ""
        columns = list(self.rows[0])
        lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        for row in self.rows:
            cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()]
            mark = " **(chosen)**" if row is self.best else ""
            lines.append("| " + " | ".join(cells) + mark + " |")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, kw_only=True)
class Training:
    """How a model was chosen and fitted: the searches on validation data (never the
    test split), its validation score against its baseline's, sizes and seconds. Tuning
    fills in the searches and scores; the model's asset adds how the run went."""

    seed: int = 0
    tuning_plan: str = ""
    searches: dict[str, TuningResult]
    train_rows: int = 0
    tuning_seconds: float = 0.0
    fit_seconds: float = 0.0
    saved_to: str = ""  # the Spark ML save (ALSModel.load)
    metric: str
    validation: float
    baseline: str
    baseline_validation: float
    lower_is_better: bool

    @property
    def beats_baseline(self) -> bool:
        if self.lower_is_better:
            return self.validation < self.baseline_validation
        return self.validation > self.baseline_validation

    def to_row(self) -> dict[str, Any]:
        searches = {name: json.loads(search.to_json()) for name, search in self.searches.items()}
        return self.summary() | {"searches": json.dumps(searches)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Training:
        values = {f.name: row[f.name] for f in fields(cls)}
        values["searches"] = {
            name: TuningResult.from_json(json.dumps(search))
            for name, search in json.loads(row["searches"]).items()
        }
        return cls(**values)

    def summary(self) -> dict[str, Any]:
        """Everything but the searches (Dagster metadata, the log)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "searches"}


@dataclass(frozen=True)
class Trained(Generic[M]):
    """A fitted model and how it was trained."""

    model: M
    training: Training

    def parameters(self) -> dict[str, Any]:
        """The model's own numbers: its parameters (and a rating model's global mean)."""
        params = asdict(self.model.params)
        if isinstance(self.model, RatingModel):
            params["global_mean"] = self.model.global_mean
        return params

    def tables(self, spark: SparkSession, folder: Path) -> dict[str, DataFrame]:
        """The tables to write, by ModelTables field; EASE's weights go to a file in
        `folder` (the model's own), which its row names."""
        model = self.model
        row = self.parameters() | self.training.to_row()
        if isinstance(model, EaseModel):
            row["weights_file"] = write_matrix(folder, "weights", model.weights)
            rows = pd.DataFrame(
                {"movieId": model.movie_ids.astype(np.int32),
                 "row": np.arange(len(model.movie_ids), dtype=np.int32)}
            )  # fmt: skip
            return {
                "model": spark.createDataFrame([row]),
                "items": spark.createDataFrame(rows, "movieId int, row int"),
            }
        return {"model": spark.createDataFrame([row]), "users": model.users, "items": model.items}


Read = Callable[[Key], DataFrame]


def read_rating_model(read: Read) -> Trained[RatingModel]:
    """The rating model from the lake, through `read` (a key -> DataFrame reader)."""
    row = read(RATING.model).first().asDict()
    params = RatingParams(**{f.name: row[f.name] for f in fields(RatingParams)})
    model = RatingModel(row["global_mean"], read(RATING.users), read(RATING.items), params)
    return Trained(model, Training.from_row(row))


def read_ranking_model(read: Read) -> Trained[RankingModel]:
    """The ranking model from the lake, through `read`."""
    row = read(RANKING.model).first().asDict()
    params = RankingParams(**{f.name: row[f.name] for f in fields(RankingParams)})
    return Trained(
        RankingModel(read(RANKING.users), read(RANKING.items), params), Training.from_row(row)
    )


def read_training(read: Read, tables: ModelTables) -> Training:
    """How the model of `tables` was trained (its row only: no factors, no weights)."""
    return Training.from_row(read(tables.model).first().asDict())


def read_ease_model(read: Read, models: Path) -> Trained[EaseModel]:
    """The EASE challenger from the lake, through `read`, its weights from the file its row
    names under `models` (memory-mapped once per process: never through Spark)."""
    row = read(EASE.model).first().asDict()
    # A model fitted before a parameter existed had its default.
    params = EaseParams(**{f.name: row[f.name] for f in fields(EaseParams) if f.name in row})
    if "weights_file" not in row:
        raise ValueError("ml/ease_model predates its weights file: re-materialize it")
    rows = read(EASE.items).select("movieId", "row").toPandas().sort_values("row")
    weights = read_matrix(
        models / EASE.folder, row["weights_file"], rows=rows["row"].to_numpy(),
        columns=len(rows), written_by=keys.label(EASE.model),
    )  # fmt: skip
    movie_ids = rows["movieId"].to_numpy(np.int64)
    return Trained(EaseModel(movie_ids, weights, params), Training.from_row(row))

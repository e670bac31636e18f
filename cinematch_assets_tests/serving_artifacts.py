"""Small serving artifacts written with the serving assets' own file layout, without Spark:
what the app tests load. Titles include the awkward ones (accents, a moved article, HTML)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import sparse

from cinematch_assets.ml.lists.build import ModelItems, NewMovies, NewRow
from cinematch_assets.ml.models.foldin import RatingTerms
from cinematch_assets.ml.models.titles import TitleLinks
from cinematch_assets.reports.charts import write_report
from cinematch_assets.serving import model_factors
from cinematch_assets.storage import report_files
from cinematch_assets.storage import serving_files as files

HOSTILE_TITLE = "<img src=x onerror=alert(1)>"
MARKDOWN_TITLES = [
    ("M*A*S*H", 1970),
    ("B*A*P*S", 1997),
    ("$1,000,000 Duck", 1971),
    ("Succe$s", 1991),
]
GENRES = ["Action", "Comedy", "Drama", "Romance", "Sci-Fi"]
RANK = 4
USERS = [1, 2, 3, 510]
N = 10


def catalog_frame() -> pd.DataFrame:
    named = [
        ("The Matrix", "Matrix, The (1999)", 1999, ["Action", "Sci-Fi"]),
        ("Amélie", "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)", 2001, ["Comedy"]),
        (HOSTILE_TITLE, f"{HOSTILE_TITLE} (2020)", 2020, ["Drama"]),
        ("The Matrix Reloaded", "Matrix Reloaded, The (2003)", 2003, ["Action", "Sci-Fi"]),
        # Real MovieLens titles that Markdown would turn into emphasis or LaTeX.
        *((title, f"{title} ({year})", year, ["Comedy"]) for title, year in MARKDOWN_TITLES),
    ]
    rows = [
        {"display_title": d, "title": t, "release_year": y, "genres": g} for d, t, y, g in named
    ]
    for i in range(len(rows), 40):
        rows.append(
            {
                "display_title": f"Movie {i}",
                "title": f"Movie {i} ({1980 + i})",
                "release_year": 1980 + i,
                "genres": [GENRES[i % 5], GENRES[(i * 3 + 1) % 5]],
            }
        )
    # The last two movies are not in the models: one of a genre no list can hold.
    rows[-1]["genres"] = ["Documentary"]
    frame = pd.DataFrame(rows)
    frame.insert(0, "movieId", np.arange(1, len(frame) + 1, dtype=np.int32))
    counts = np.array([(7 * i) % 50 for i in range(len(frame))])
    frame["tmdbId"] = pd.array([None if i == 5 else 600 + i for i in range(len(frame))], "Int32")
    frame["imdbId"] = [f"{i:07d}" for i in range(len(frame))]
    frame["tags"] = [
        ["mind-bending"] if i == 0 else ["<b>bold</b>"] if i == 2 else [] for i in range(len(frame))
    ]
    frame["rating_count"] = counts
    frame["avg_rating"] = np.where(counts > 0, 2.5 + (np.arange(len(frame)) % 5) / 2, np.nan)
    frame["bayesian_avg"] = (10 * 3.5 + counts * frame["avg_rating"].fillna(0)) / (10 + counts)
    return frame


def popularity(counts: np.ndarray) -> np.ndarray:
    logged = np.log1p(counts.astype(np.float64))
    return ((logged - logged.mean()) / logged.std()).astype(np.float32)


def write_serving_artifacts(home: Path) -> dict:
    """Every serving file the app reads, plus one chart and a model card; returns the
    catalog and the lists for assertions."""
    rng = np.random.default_rng(7)
    catalog = catalog_frame()
    files.serving_root(home).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(catalog, preserve_index=False), files.catalog_path(home))
    ids = catalog["movieId"].to_numpy(np.int64)[:-2]
    # The last two movies have too few ratings for the models: placed from their content,
    # the older one little known, the last one a recent release.
    new_ids = catalog["movieId"].to_numpy(np.int64)[-2:]
    new = NewMovies(
        new_ids,
        rng.normal(size=(2, RANK)).astype(np.float32),
        np.zeros(2, np.float32),
        rng.normal(scale=0.3, size=(2, RANK)).astype(np.float32),
        threshold=np.inf,
        slots=0,
        row=NewRow(N, np.full(2, -np.inf, np.float32), np.array([False, True]),
                   TitleLinks(sparse.csr_matrix((2, len(ids)), dtype=np.float32)), 0.0),
    )  # fmt: skip
    items = ModelItems(
        movie_ids=ids,
        ranking_items=rng.normal(size=(len(ids), RANK)).astype(np.float32),
        ranking_reg_param=0.1,
        ranking_alpha=2.0,
        popularity=popularity(catalog["rating_count"].to_numpy()[:-2]),
        rating=RatingTerms(
            global_mean=3.5,
            item_bias=rng.normal(scale=0.2, size=len(ids)).astype(np.float32),
            item_factors=rng.normal(scale=0.3, size=(len(ids), RANK)).astype(np.float32),
            reg_param=0.1,
            variant="bias_residual",
            bias_damping=3.0,
            nonnegative=False,
        ),
        new=new,
    )
    model_factors.write_model_factors(items, files.factors_path(home))
    # Each user's whole history: 15 movies, the first five their favourites.
    rated = {user: [int(m) for m in rng.choice(ids, 15, replace=False)] for user in USERS}
    stars = {user: {m: 5.0 - r / 2 if r < 5 else 3.0 for r, m in enumerate(rated[user])}
             for user in USERS}  # fmt: skip
    lists = {}
    for user in USERS:
        candidates = [int(m) for m in ids if m not in rated[user]]
        # User 510's list leads with the hostile title, so the escaping is always on screen.
        chosen = [3] + [m for m in candidates if m != 3][: N - 1] if user == 510 else candidates[:N]
        lists[str(user)] = [
            {
                "movieId": m,
                "pred_rating": 4.2 - r / 10,
                "score": 1 - r / 20,
                "reason": rated[user][0],
            }
            for r, m in enumerate(chosen)
        ]
    shards = files.shard_count(len(USERS))
    version = "v1"
    for shard in range(shards):
        part = {u: v for u, v in lists.items() if files.shard_of(int(u), shards) == shard}
        files.write_json_shard(
            files.recommendations_dir(home) / version, shard, part, files.Ratings.of(stars)
        )
    files.publish_recommendations(
        home, version, {"shards": shards, "users": len(USERS), "n": N, "created": "today"}
    )
    profiles = pd.DataFrame(
        [
            {"userId": u, "rank": r + 1, "movieId": m, "rating": 5.0 - r / 2, "rated_at": None}
            for u in USERS
            for r, m in enumerate(rated[u][:5])
        ]
    )
    pq.write_table(pa.Table.from_pandas(profiles, preserve_index=False), files.profiles_path(home))
    # One chart per report, written as the pipeline writes its reports.
    write_report(
        report_files.models_dir(home),
        title="CineMatch models",
        figures={"model_metrics": go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))},
        data_files={"model_card.md": "# Model card\n\n| model | rmse |\n| --- | --- |\n"},
    )
    write_report(
        report_files.eda_dir(home),
        title="CineMatch EDA",
        figures={"rating_distribution": go.Figure(go.Bar(x=["x"], y=[3]))},
    )
    return {"catalog": catalog, "lists": lists, "rated": rated, "stars": stars}

"""`make bench` (serving): every user's top-n and the app, at ML-33M's shape (apart from
the app and the library: it drives Spark and the app both, and the app stays free of
Spark).

Synthetic factors of the models' shape (both rank `--rank`) for `--users` users and
`--movies` movies, with `--rated` ratings per user as the already-rated set, and
`--new-movies` movies the models do not know, placed as content places them (shorter
factors) with the slot threshold the content model would set (`new_movies.fill_bar` over the
audience cuts). Measured:

- the serving scoring (`served_lists`: top-n with rated movies excluded, the rating
  model's stars and the reason) against Spark's `ALSModel.recommendForAllUsers` on
  the same factors (which excludes nothing), both written to Spark's no-op sink;
- the champion's candidate orders for a sample of users, each scored alone and all in
  one pass that shares the model's scores (`ModelItems.rankers`);
- every user's New for you row (`new_for_you_lists`);
- the JSON export of the lists and rows, each user's ratings beside them
  (`write_json_shards`);
- the app, in a fresh process: cold start (imports, artifact loads and a first render
  through Streamlit's AppTest), user lookup, new-user fold-in and New for you row
  latencies, peak memory.

    python -m benchmarks.serving                  # 330k users x 73k movies + 13k new ones
    python -m benchmarks.serving --users 30000 --movies 10000 --new-movies 2000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from cinematch_assets import settings
from cinematch_assets.serving import model_factors

APP = Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py"


def synthetic_factors(spark, rows: int, rank: int, seed: int, id_name: str):
    """(id, bias, features) with `rows` ids 1..rows and N(0, 0.3) entries."""
    from pyspark.sql import functions as F

    return spark.range(rows).select(
        (F.col("id") + 1).cast("int").alias(id_name),
        (F.randn(seed) * 0.3).alias("bias"),
        F.array(*[F.randn(seed + 1 + i) * 0.3 for i in range(rank)])
        .cast("array<float>")
        .alias("features"),
    )


def synthetic_rated(spark, users: int, movies: int, per_user: int):
    """`per_user` (userId, movieId, rating) rows per user, movies spread by a hash."""
    from pyspark.sql import functions as F

    return spark.range(users * per_user).select(
        (F.col("id") / per_user + 1).cast("int").alias("userId"),
        (F.pmod(F.xxhash64("id"), F.lit(movies)) + 1).cast("int").alias("movieId"),
        (F.floor(F.rand(7) * 10) / 2 + 0.5).alias("rating"),
        F.lit(0).cast("long").alias("timestamp"),
        F.lit(None).cast("timestamp").alias("rated_at"),
    )


def als_model_with(spark, users, items, rank: int, scratch: Path):
    """An `ALSModel` holding exactly these factors: a tiny fit of the same rank, saved,
    its factor tables replaced, loaded back."""
    from pyspark.ml.recommendation import ALS, ALSModel

    tiny = spark.createDataFrame([(1, 1, 1.0), (2, 2, 2.0)], "userId int, movieId int, r double")
    path = scratch / "als"
    ALS(rank=rank, maxIter=1, userCol="userId", itemCol="movieId", ratingCol="r").fit(
        tiny
    ).write().overwrite().save(str(path))
    users.selectExpr("userId as id", "features").write.mode("overwrite").parquet(
        str(path / "userFactors")
    )
    items.selectExpr("movieId as id", "features").write.mode("overwrite").parquet(
        str(path / "itemFactors")
    )
    return ALSModel.load(str(path))


def content_placed(users, known, count: int):
    """`count` new movies (ids after the `known` ModelItems' ones), with factors a third
    as long as the known ones' (content maps to shrunken factors), their audience cuts and
    the slot threshold the content model's fill bar gives, over a sample of `users`; and
    their New for you row: a tenth of them following one to three known movies by title
    (the archive: 702 of 8,017), a twentieth fresh, each in at most a fifth of the rows."""
    from scipy import sparse

    from cinematch_assets.ml.lists.build import NewMovies, NewRow, ScoreScale
    from cinematch_assets.ml.lists.new_movies import audience_cuts, fill_bar
    from cinematch_assets.ml.models.titles import TitleLinks

    rng = np.random.default_rng(400)
    rank, star_rank = known.ranking_items.shape[1], known.rating.item_factors.shape[1]
    placed = rng.normal(0, 0.1, (count, rank)).astype(np.float32)
    sample = users.select("features").limit(10_000).toPandas()
    sample = np.stack(sample["features"].to_numpy()).astype(np.float32)
    scale = ScoreScale.of(known.ranking_items)
    audience = audience_cuts(sample, placed, scale, 0.1)
    following = np.flatnonzero(rng.random(count) < 0.1)
    links = rng.integers(1, 4, len(following))
    titles = sparse.csr_matrix(
        (rng.uniform(0.5, 1.0, links.sum()).astype(np.float32),
         (np.repeat(following, links), rng.integers(0, len(known.movie_ids), links.sum()))),
        shape=(count, len(known.movie_ids)),
    )  # fmt: skip
    row = NewRow(
        size=10,
        audience=audience_cuts(sample, placed, scale, 0.2).astype(np.float32),
        fresh=rng.random(count) < 0.05,
        links=TitleLinks(titles),
        title_weight=2.0,
    )
    first = int(known.movie_ids.max()) + 1
    return NewMovies(
        movie_ids=np.arange(first, first + count, dtype=np.int64),
        ranking_items=placed,
        rating_bias=rng.normal(0, 0.1, count).astype(np.float32),
        rating_items=rng.normal(0, 0.1, (count, star_rank)).astype(np.float32),
        threshold=fill_bar(sample, placed, scale, audience, 2, 0.3),
        slots=2,
        audience=audience.astype(np.float32),
        row=row,
    )


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return round(time.perf_counter() - started, 1)


def write_app_artifacts(spark, home: Path, movie_side, rated):
    """The catalog (every movie of `movie_side`, new ones included), profiles and fold-in
    file the app loads, as the serving assets write them (the recommendations are
    written by the caller)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from cinematch_assets.storage import serving_files as files
    from cinematch_assets.transforms.serving import user_profiles

    genres = np.array(["Action", "Comedy", "Drama", "Romance", "Sci-Fi", "Thriller"])
    new = movie_side.new
    ids = np.concatenate([movie_side.movie_ids, [] if new is None else new.movie_ids])
    ids = ids.astype(np.int64)
    counts = rated.groupBy("movieId").agg(F.count("*").alias("n"), F.avg("rating").alias("a"))
    stats = counts.toPandas().set_index("movieId").reindex(ids)
    catalog = pa.table(
        {
            "movieId": ids.astype(np.int32),
            "display_title": [f"Movie {i}" for i in ids],
            "title": [f"Movie {i} ({1950 + i % 70})" for i in ids],
            "release_year": (1950 + ids % 70).astype(np.int32),
            "genres": [[str(genres[i % 6]), str(genres[(i * 7) % 6])] for i in ids],
            "tmdbId": ids.astype(np.int32),
            "imdbId": [f"{i:07d}" for i in ids],
            "tags": [[] for _ in ids],
            "rating_count": stats["n"].fillna(0).astype(np.int64).to_numpy(),
            "avg_rating": stats["a"].to_numpy(),
            "bayesian_avg": stats["a"].fillna(3.5).to_numpy(),
        }
    )
    files.serving_root(home).mkdir(parents=True, exist_ok=True)
    pq.write_table(catalog, files.catalog_path(home))
    pq.write_table(user_profiles(rated).toArrow(), files.profiles_path(home))
    model_factors.write_model_factors(movie_side, files.factors_path(home))


def app_metrics(home: Path, lookups: int = 1000, fold_ins: int = 300) -> dict:
    """Run in a fresh process: first render, then lookups and fold-ins, then peak memory."""
    import resource

    started = time.perf_counter()
    os.environ["CINEMATCH_HOME"] = str(home)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=120).run()
    first_render = time.perf_counter() - started
    rendered_at = time.time()
    if at.exception:
        raise RuntimeError(f"the app failed: {at.exception}")
    from cinematch_assets.serving.catalog import Catalog
    from cinematch_assets.serving.known_users import Recommendations, load_shard_index
    from cinematch_assets.serving.new_users import FoldIn
    from cinematch_assets.storage import serving_files as files

    rng = np.random.default_rng(1)
    users = rng.integers(1, Recommendations.load(home).users + 1, lookups)
    lookup_ms = []
    for user in users:
        load_shard_index.cache_clear()  # the worst case: every lookup reads its shard's index
        t = time.perf_counter()
        found = Recommendations.load(home).lookup(int(user))
        lookup_ms.append((time.perf_counter() - t) * 1000)
        assert found is not None
    catalog = Catalog.load(files.catalog_path(home))
    foldin = FoldIn.load(files.factors_path(home), catalog)
    fold_ms, row_ms = [], []
    for _ in range(fold_ins):
        rated = rng.choice(foldin.movie_ids, int(rng.integers(3, 21)), replace=False)
        ratings = dict(zip(rated.tolist(), (rng.integers(1, 11, len(rated)) / 2).tolist(),
                           strict=True))  # fmt: skip
        t = time.perf_counter()
        foldin.recommend(ratings, n=10)
        fold_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        foldin.new_for_you(ratings)  # the New for you row the app shows under the list
        row_ms.append((time.perf_counter() - t) * 1000)
    return {
        "rendered_at": rendered_at,
        "first_render_seconds": round(first_render, 2),
        "lookup_ms": {"p50": round(np.percentile(lookup_ms, 50), 2),
                      "p95": round(np.percentile(lookup_ms, 95), 2)},
        "fold_in_ms": {"p50": round(np.percentile(fold_ms, 50), 2),
                       "p95": round(np.percentile(fold_ms, 95), 2)},
        "new_for_you_ms": {"p50": round(np.percentile(row_ms, 50), 2),
                           "p95": round(np.percentile(row_ms, 95), 2)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }  # fmt: skip


def candidate_scoring(items, ranking, rating, rated, n: int, users: int) -> dict:
    """The champion's default candidate orders of the ranking model (every stars weight x
    popularity penalty, floor 3) for `users` users: each scored on its own, then all in
    one pass that shares the model's scores and the stars (`ModelItems.rankers`)."""
    from cinematch_assets.assets.ml import ChampionConfig
    from cinematch_assets.ml.lists.recommend import recommend_candidates
    from cinematch_assets.ml.selection.champion import candidate_policies

    config = ChampionConfig()
    policies = candidate_policies(
        ["als"], config.stars_weights, config.popularity_penalties, config.star_floor
    )
    sample = ranking.users.limit(users).cache()
    sample.count()
    history = rated.select("userId", "movieId", "rating")

    def scored(rankers) -> float:
        lists = recommend_candidates(
            rankers, sample, history, n, stars=items.rating, star_users=rating.users
        )
        return timed(lambda: lists.write.format("noop").mode("overwrite").save())

    alone = scored({p.name: items.ranker(p) for p in policies})
    together = scored(items.rankers(policies))
    sample.unpersist()
    return {
        "users": users,
        "orders": len(policies),
        "each_alone_seconds": alone,
        "together_seconds": together,
        "speedup": round(alone / together, 2),
    }


def run(args) -> dict:
    """Every measure, on factors and files in a scratch folder removed afterwards (its
    serving files kept under `--keep-home`, for the API's and the feedback loop's
    benchmarks)."""
    with tempfile.TemporaryDirectory(prefix="cinematch-bench-serving-") as scratch:
        report = measure(args, Path(scratch))
        if args.keep_home:
            shutil.copytree(Path(scratch) / "home", args.keep_home, dirs_exist_ok=True)
        return report


def measure(args, scratch: Path) -> dict:
    from cinematch_assets.ml.lists.recommend import model_items, new_for_you_lists, served_lists
    from cinematch_assets.ml.models.ranking import RankingModel, RankingParams
    from cinematch_assets.ml.models.rating import RatingModel, RatingParams
    from cinematch_assets.resources.spark import SparkResource
    from cinematch_assets.storage import serving_files as files
    from cinematch_assets.storage.retention import folder_bytes
    from cinematch_assets.transforms.serving import write_json_shards

    resource = SparkResource()
    spark = resource.spark_session
    users = synthetic_factors(spark, args.users, args.rank, 1, "userId").cache()
    items = synthetic_factors(spark, args.movies, args.rank, 100, "movieId").cache()
    rating_users = synthetic_factors(spark, args.users, args.rank, 200, "userId").cache()
    rating_items = synthetic_factors(spark, args.movies, args.rank, 300, "movieId").cache()
    rated = synthetic_rated(spark, args.users, args.movies, args.rated)
    for table in (users, items, rating_users, rating_items):
        table.count()
    ranking = RankingModel(
        users.drop("bias"),
        items.drop("bias"),
        RankingParams(args.rank, 0.1, 2.0, 10, "decay_weight"),
    )
    rating = RatingModel(
        3.5,
        rating_users,
        rating_items,
        RatingParams(rank=args.rank, reg_param=0.15, bias_damping=3.0),
    )
    movie_side = model_items(ranking, rating, rated)  # collected to the driver once
    new = content_placed(users, movie_side, args.new_movies) if args.new_movies else None
    movie_side = replace(movie_side, new=new)
    serving = served_lists(
        movie_side,
        ranking.users,
        rating.users,
        rated.select("userId", "movieId", "rating"),
        args.n,
    )
    report: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "users": args.users,
        "movies": args.movies,
        "new_movies": args.new_movies,
        "new_threshold": None if new is None else round(new.threshold, 3),
        "rank": args.rank,
        "rated_per_user": args.rated,
        "n": args.n,
        "machine": {"cpus": os.cpu_count(), "spark_driver_memory": resource.driver_memory},
    }
    report["serving_top_n_seconds"] = timed(
        lambda: serving.write.format("noop").mode("overwrite").save()
    )
    report["candidates"] = candidate_scoring(
        movie_side, ranking, rating, rated, args.n, args.candidate_users
    )
    model = als_model_with(spark, users, items, args.rank, scratch)
    spark_users = users if not args.spark_users else users.limit(args.spark_users)
    report["spark_users"] = args.spark_users or args.users
    report["recommend_for_all_users_seconds"] = timed(
        lambda: (
            model.recommendForUserSubset(spark_users, args.n)
            .write.format("noop")
            .mode("overwrite")
            .save()
            if args.spark_users
            else model.recommendForAllUsers(args.n).write.format("noop").mode("overwrite").save()
        )
    )
    per_user = report["recommend_for_all_users_seconds"] / report["spark_users"]
    report["speedup_per_user"] = round(per_user / (report["serving_top_n_seconds"] / args.users), 1)
    home = scratch / "home"
    lists = serving.cache()
    lists.count()
    report["users_with_new_movies"] = lists.filter("new").select("userId").distinct().count()
    history = rated.select("userId", "movieId", "rating")
    rows = new_for_you_lists(movie_side, ranking.users, rating.users, history)
    report["new_for_you_seconds"] = timed(
        lambda: rows.write.format("noop").mode("overwrite").save()
    )
    rows = rows.cache()
    report["users_with_a_new_for_you_row"] = rows.select("userId").distinct().count()
    shards = files.shard_count(args.users)
    report["json_export_seconds"] = timed(
        lambda: write_json_shards(
            lists, files.recommendations_dir(home) / "v1", shards, rows, history
        )
    )
    files.publish_recommendations(
        home, "v1", {"shards": shards, "users": args.users, "n": args.n, "created": "bench"}
    )
    write_app_artifacts(spark, home, movie_side, rated)
    spark.stop()
    spawned_at = time.time()
    measured = subprocess.run(
        [sys.executable, "-m", "benchmarks.serving", "--app-only", str(home)],
        check=True,
        capture_output=True,
        text=True,
    )
    report["app"] = json.loads(measured.stdout.strip().splitlines()[-1])
    # From spawning a fresh Python to the first page rendered on the artifacts.
    report["app"]["cold_start_seconds"] = round(report["app"].pop("rendered_at") - spawned_at, 2)
    report["app"]["artifact_bytes"] = folder_bytes(files.serving_root(home))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=330_000)
    parser.add_argument("--movies", type=int, default=73_000, help="movies the models know")
    parser.add_argument(
        "--new-movies",
        type=int,
        default=13_000,
        help="movies below the Gold threshold, placed from content (0: none)",
    )
    parser.add_argument("--rank", type=int, default=20)
    parser.add_argument("--rated", type=int, default=100, help="ratings per user")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument(
        "--spark-users",
        type=int,
        default=0,
        help="time Spark's recommender on this many users only (recommendForUserSubset); "
        "the speed-up is then per user",
    )
    parser.add_argument(
        "--candidate-users",
        type=int,
        default=20_000,
        help="users whose candidate orders are scored (alone, then together)",
    )
    parser.add_argument(
        "--keep-home", type=Path, help="keep the serving files made, as a data root here"
    )
    parser.add_argument("--app-only", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.app_only:
        print(json.dumps(app_metrics(Path(args.app_only))))
        return 0
    report = run(args)
    out_dir = settings.cinematch_home() / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"serving-{args.users}x{args.movies}-{int(time.time())}.json"
    (out_dir / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {out_dir / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

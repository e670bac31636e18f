"""`make bench` (content): the content vectors and the content mapping at ML-33M's shape.

Inputs shaped like ml-latest (the 33M release): `--movies` movies with MovieLens-like
genres and years, `--tag-pairs` (movie, tag) pairs over a Zipf-distributed vocabulary,
and the genome (`--genome-movies` x `--genome-tags` relevance scores). Measured: building
the vectors (`content_vectors`), the ridge mapping to factors of the models' ranks on the
`--known` most-rated movies with its regularization search, and peak memory.

    python -m benchmarks.content
    python -m benchmarks.content --movies 10000 --genome-movies 0
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import pandas as pd

from cinematch_assets.ml.models.content import RidgeFit, content_vectors, held_out_mask, tune_ridge
from cinematch_assets.sources.synthetic import GENRES

REGS = (0.3, 3.0, 30.0, 300.0)


def inputs(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(args.seed)
    ids = np.arange(1, args.movies + 1)
    genres = [list(rng.choice(GENRES, size=rng.integers(1, 4), replace=False)) for _ in ids]
    years = rng.integers(1900, 2024, size=len(ids)).astype(float)
    years[rng.random(len(ids)) < 0.01] = np.nan
    movies = pd.DataFrame({"movieId": ids, "genres": genres, "release_year": years})
    vocabulary = np.array([f"tag {i}" for i in range(args.tag_vocabulary)])
    zipf = rng.zipf(1.3, size=args.tag_pairs) % args.tag_vocabulary
    tags = pd.DataFrame(
        {
            "movieId": rng.choice(ids, size=args.tag_pairs),
            "tag_key": vocabulary[zipf],
            "users": rng.geometric(0.5, size=args.tag_pairs),
        }
    ).drop_duplicates(["movieId", "tag_key"])
    genome_ids = rng.choice(ids, size=args.genome_movies, replace=False)
    genome = pd.DataFrame(
        {
            "movieId": np.repeat(genome_ids, args.genome_tags),
            "tag": np.tile([f"genome {i}" for i in range(args.genome_tags)], len(genome_ids)),
            "relevance": rng.random(len(genome_ids) * args.genome_tags),
        }
    )
    return movies, tags, genome


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=86_000)
    parser.add_argument("--known", type=int, default=73_000)
    parser.add_argument("--tag-pairs", type=int, default=1_000_000)
    parser.add_argument("--tag-vocabulary", type=int, default=60_000)
    parser.add_argument("--genome-movies", type=int, default=16_000)
    parser.add_argument("--genome-tags", type=int, default=1_128)
    parser.add_argument("--vocabulary", type=int, default=500)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    movies, tags, genome = inputs(args)
    before = peak_mb()
    started = time.perf_counter()
    vectors = content_vectors(movies, tags, genome, vocabulary=args.vocabulary)
    vector_seconds = time.perf_counter() - started

    # The mapping as `fit_content_mapping` runs it: X^T X of the tuning part and of all
    # the known movies once, solved for both models' targets and every regularization.
    rng = np.random.default_rng(args.seed)
    known = vectors.matrix[: args.known]
    held = held_out_mask(np.arange(len(known)), 0.1, args.seed)
    started = time.perf_counter()
    tuning_fit, full_fit = RidgeFit(known[~held]), RidgeFit(known)
    normal_seconds = time.perf_counter() - started
    for width in (20, 51):  # ranking factors; rating bias + factors
        y = rng.normal(size=(len(known), width)).astype(np.float32)
        search = tune_ridge(known, y, REGS, held, fit=tuning_fit)
        full_fit.solve(y, search.best).predict(vectors.matrix[args.known :])
    mapping_seconds = time.perf_counter() - started

    report = {
        "movies": args.movies,
        "features": len(vectors.names),
        "vectors_mb": round(vectors.matrix.nbytes / 2**20, 1),
        "content_vectors_seconds": round(vector_seconds, 1),
        "mapping_seconds": round(mapping_seconds, 1),
        "normal_equations_seconds": round(normal_seconds, 1),
        "inputs_peak_mb": round(before),
        "peak_rss_mb": round(peak_mb()),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

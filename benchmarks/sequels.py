"""`make bench` (sequels): does an unrated sequel reach its franchise's fans on a release
the project was never tuned on? A release cut from a MovieLens archive at a date (the
2016 archive before 2010: 76k ratings, 497 users), with the next film of two franchises
in its catalog but unrated, with its genres and two tags (Toy Story 3; Shrek Forever
After, whose MovieLens title carries an "a.k.a." second title), through the product job.
Reports per sequel the share of the franchise's fans (4 stars or more for one of its
films) and of the other users whose New for you row holds it, and the title weight
validation chose, as JSON under $CINEMATCH_HOME/benchmarks/.

    python -m benchmarks.sequels --archive ../shared/data/movielens/ml-latest-small-2016.zip
"""

from __future__ import annotations

import argparse
import json
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import DagsterInstance

from cinematch_assets import keys, settings
from cinematch_assets.definitions import build_definitions, build_resources
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.storage import serving_files as files
from cinematch_assets.storage.delta_reader import read_delta

# Each sequel, its franchise's earlier films and the two tags it gets (ml-latest-small ids).
SEQUELS = {
    78499: ((1, 3114), ("pixar", "animation")),  # Toy Story 3; Toy Story 1 and 2
    78637: ((4306, 8360, 53121), ("dreamworks", "animation")),  # Shrek Forever After
}


def cut_release(archive: Path, cut: datetime, folder: Path) -> Path:
    """The archive's ratings and tags before `cut`, the movies rated or tagged by then,
    and the SEQUELS unrated with their tags, in MovieLens' CSV format. `archive`: a zip
    or an extracted folder."""
    if archive.is_dir():
        source = next(archive.glob("**/ratings.csv")).parent
    else:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(folder / "archive")
        source = next((folder / "archive").glob("*/ratings.csv")).parent
    read = {name: pd.read_csv(source / f"{name}.csv", dtype=str) for name in
            ("ratings", "tags", "movies", "links")}  # fmt: skip
    before = str(int(cut.timestamp()))
    ratings, tags = (read[n][read[n]["timestamp"].astype(int) < int(before)] for n in
                     ("ratings", "tags"))  # fmt: skip
    sequels = {str(movie) for movie in SEQUELS}
    ratings = ratings[~ratings["movieId"].isin(sequels)]
    tags = tags[~tags["movieId"].isin(sequels)]
    users = sorted(ratings["userId"].unique(), key=int)
    added = [
        {"userId": users[i], "movieId": str(movie), "tag": tag, "timestamp": before}
        for movie, (_, names) in SEQUELS.items()
        for i, tag in enumerate(names)
    ]
    tags = pd.concat([tags, pd.DataFrame(added)])
    kept = set(ratings["movieId"]) | set(tags["movieId"])
    release = folder / "release"
    release.mkdir()
    for name, table in (("ratings", ratings), ("tags", tags),
                        ("movies", read["movies"]), ("links", read["links"])):  # fmt: skip
        table[table["movieId"].isin(kept)].to_csv(release / f"{name}.csv", index=False)
    return release


def reach(home: Path) -> dict[str, dict]:
    """Per sequel: how many fans, the share of them and of the others it reaches."""
    manifest = files.read_manifest(home)
    folder = files.recommendations_dir(home) / manifest["version"]
    rows: dict[int, set[int]] = {}
    for shard in range(manifest["shards"]):
        lists, _ = files.read_shard(folder / files.shard_name(shard))
        for user, entries in lists.items():
            rows[int(user)] = {e["movieId"] for e in files.split_rows(entries)[1]}
    ratings = read_delta(home.joinpath("lake", *keys.RATINGS_CLEAN)).to_pandas()
    users = np.array(sorted(rows))
    found = {}
    for sequel, (franchise, _) in SEQUELS.items():
        liked = ratings["movieId"].isin(franchise) & (ratings["rating"] >= 4)
        fan = np.isin(users, ratings.loc[liked, "userId"].unique())
        holds = np.array([sequel in rows[user] for user in users])
        found[str(sequel)] = {
            "fans": int(fan.sum()),
            "fans_reached": round(float(holds[fan].mean()), 4),
            "others_reached": round(float(holds[~fan].mean()), 4),
        }
    return found


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, required=True, help="a zip or a folder")
    parser.add_argument("--cut", default="2010-01-01", help="the release's date (UTC)")
    args = parser.parse_args(argv)
    cut = datetime.fromisoformat(args.cut).replace(tzinfo=UTC)
    with tempfile.TemporaryDirectory() as scratch:
        release = cut_release(args.archive, cut, Path(scratch))
        home = Path(scratch) / "home"
        definitions = build_definitions(build_resources(DataRoot(home=str(home))))
        result = definitions.resolve_job_def("cinematch_product").execute_in_process(
            run_config={
                "ops": {"raw__movielens_archive": {"config": {"local_path": str(release)}}}
            },
            instance=DagsterInstance.ephemeral(),
        )
        if not result.success:
            raise SystemExit("the product job failed on the cut release")
        content = read_delta(home.joinpath("lake", *keys.CONTENT_MODEL)).to_pylist()[0]
        report = {
            "archive": args.archive.name,
            "cut": args.cut,
            "title_weight": content["title_weight"],
            "title_weight_users": content["title_weight_users"],
            "sequels": reach(home),
        }
    out = settings.cinematch_home() / "benchmarks" / "sequels.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

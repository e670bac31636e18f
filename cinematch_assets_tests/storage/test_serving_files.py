"""Publishing the served lists: overlapping runs, dead writers, broken manifests, and
files that reach the disk before their name does."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cinematch_assets.storage import atomic_files
from cinematch_assets.storage import serving_files as files

SHARDS = 3


def write_version(home: Path, folder: Path, tag: str) -> None:
    """User n in shard n, with a list of one movie and two ratings."""
    for shard in range(SHARDS):
        rated = files.Ratings.of({shard: {10: 4.0, 11: 2.5}})
        files.write_json_shard(folder, shard, {str(shard): [{"movieId": 1, "tag": tag}]}, rated)


def manifest(tag: str) -> dict:
    return {"shards": SHARDS, "users": SHARDS, "n": 1, "created": tag}


def complete(home: Path, version: str) -> bool:
    folder = files.recommendations_dir(home) / version
    return all((folder / files.shard_name(s)).is_file() for s in range(SHARDS))


def test_a_version_written_meanwhile_survives_an_older_publish(tmp_path):
    """Shards of A, then of B; publish A, then B: B must still be there (the review's case)."""
    with files.new_version(tmp_path) as (a, folder_a):
        write_version(tmp_path, folder_a, "a")
        with files.new_version(tmp_path) as (b, folder_b):
            write_version(tmp_path, folder_b, "b")
            files.publish_recommendations(tmp_path, a, manifest("a"))
            assert complete(tmp_path, b)
            files.publish_recommendations(tmp_path, b, manifest("b"))
    assert files.published_version(tmp_path) == b and complete(tmp_path, b)
    assert complete(tmp_path, a)  # the version it replaced stays for readers of the old one


def test_overlapping_publishes_never_remove_the_published_version(tmp_path):
    """Two writers publishing over and over while a reader checks, again and again, that the
    version the manifest names is complete on disk."""
    problems: list[str] = []
    done = threading.Event()

    def writer(name: str) -> None:
        rng = random.Random(name)
        for i in range(60):
            with files.new_version(tmp_path) as (version, folder):
                write_version(tmp_path, folder, f"{name}{i}")
                time.sleep(rng.random() * 0.004)
                files.publish_recommendations(tmp_path, version, manifest(f"{name}{i}"))

    def reader() -> None:
        while not done.is_set():
            version = files.published_version(tmp_path)
            # Missing files while still published after the look: the published version
            # lost its files.
            if (
                version
                and not complete(tmp_path, version)
                and files.published_version(tmp_path) == version
            ):
                problems.append(version)

    threads = [threading.Thread(target=writer, args=(n,)) for n in "ab"]
    checker = threading.Thread(target=reader)
    checker.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    checker.join()
    assert problems == []
    final = files.published_version(tmp_path)
    assert final and complete(tmp_path, final)
    versions = [p for p in files.recommendations_dir(tmp_path).iterdir() if p.is_dir()]
    assert len(versions) <= 2  # the published one and the one it replaced


WRITER_THAT_DIES = """
import os, sys
from pathlib import Path

import pytest
from cinematch_assets.storage import serving_files as files
with files.new_version(Path(sys.argv[1])) as (version, folder):
    files.write_json_shard(folder, 0, {"1": []})
    print(version, flush=True)
    os._exit(9)  # killed mid-write: no cleanup runs
"""


def test_a_dead_writers_folder_goes_at_the_next_publish(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", WRITER_THAT_DIES, str(tmp_path)], capture_output=True, text=True
    )
    assert dead.returncode == 9, dead.stderr
    orphan = dead.stdout.strip()
    assert (files.recommendations_dir(tmp_path) / orphan).is_dir()
    with files.new_version(tmp_path) as (version, folder):
        write_version(tmp_path, folder, "live")
        files.publish_recommendations(tmp_path, version, manifest("live"))
    left = {p.name for p in files.recommendations_dir(tmp_path).iterdir()}
    assert left == {version, "manifest.json", ".publish.lock"}


def test_a_broken_manifest_is_repaired_by_the_next_publish(tmp_path):
    path = files.manifest_path(tmp_path)
    for broken in ("", '{"version": "2026', "[1, 2]", '{"version": 7}'):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(broken)
        assert files.published_version(tmp_path) is None
        with files.new_version(tmp_path) as (version, folder):
            write_version(tmp_path, folder, "fix")
            files.publish_recommendations(tmp_path, version, manifest("fix"))
        assert json.loads(path.read_text())["version"] == version


def test_atomic_writes_reach_the_disk_before_the_rename(tmp_path, monkeypatch):
    """fsync of the file before it takes its name, and of the folder after: a power loss
    cannot leave a zero-length manifest."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync " + os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic_files.os, "fsync", fsync)
    monkeypatch.setattr(atomic_files.os, "replace", replace)
    target = tmp_path / "manifest.json"
    atomic_files.write_atomic(target, "{}")
    assert target.read_text() == "{}"
    assert len(events) == 3
    assert events[0].startswith("fsync .manifest.json.") and events[1] == "rename"
    assert events[2] == f"fsync {tmp_path.name}"


def test_a_shard_is_json_and_its_index_reads_one_users_list(tmp_path):
    """The whole shard parses as the JSON object it always was; through the index a reader
    gets each user's list alone, whatever its characters, and None for a user not in it."""
    lists = {
        "12": [{"movieId": 1, "reason": None}, {"movieId": 2, "title": "Amélie 🎬"}],
        "3": [],
        "100": [{"movieId": 7, "score": 0.5}],
    }
    files.write_json_shard(tmp_path, 0, lists)
    shard = tmp_path / files.shard_name(0)
    assert json.loads(shard.read_text(encoding="utf-8")) == lists
    index = files.read_shard_index(files.index_path(shard))
    assert index[:, 0].tolist() == [3, 12, 100]
    for user, entries in lists.items():
        assert files.read_user_list(shard, index, int(user)) == entries
    assert files.read_user_list(shard, index, 4) is None
    assert files.read_user_list(shard, index, 101) is None


def test_a_shard_keeps_its_users_ratings_beside_their_lists(tmp_path):
    """Each listed user's ratings, in half stars, read one user at a time; a user with a
    list and no ratings has none; ratings of users without a list are not kept."""
    lists = {"1": [{"movieId": 9}], "4": [], "7": [{"movieId": 2}]}
    given = {1: {5: 4.5, 3: 0.5}, 2: {1: 5.0}, 7: {8: 3.0, 2_000_000_000: 5.0}}
    files.write_json_shard(tmp_path, 0, lists, files.Ratings.of(given).grouped())
    shard = tmp_path / files.shard_name(0)
    index = files.read_shard_index(files.index_path(shard))
    assert files.read_user_ratings(shard, index, 1) == {3: 0.5, 5: 4.5}
    assert files.read_user_ratings(shard, index, 4) == {}
    assert files.read_user_ratings(shard, index, 7) == {8: 3.0, 2_000_000_000: 5.0}
    assert files.read_user_ratings(shard, index, 2) is None  # no list: not kept
    _, ratings = files.read_shard(shard)
    assert ratings.users.tolist() == [1, 1, 7, 7]
    assert np.load(files.rated_path(shard)).nbytes == 4 * 5  # 5 bytes a rating


def test_a_shard_shorter_than_its_index_is_an_error_not_a_wrong_list(tmp_path):
    files.write_json_shard(tmp_path, 0, {"1": [{"movieId": 1}], "2": [{"movieId": 2}]})
    shard = tmp_path / files.shard_name(0)
    index = files.read_shard_index(files.index_path(shard))
    shard.write_bytes(shard.read_bytes()[:30])
    with pytest.raises(ValueError, match="ends before user 2"):
        files.read_user_list(shard, index, 2)


def test_changed_lists_are_published_over_the_published_version(tmp_path):
    """Users' lists replaced, added and removed in a new version: the shards they fall in
    are rewritten, the others are the published files themselves (hard links), and the
    manifest keeps its fields with the user count moved."""
    with files.new_version(tmp_path) as (base, folder):
        write_version(tmp_path, folder, "base")
        files.publish_recommendations(tmp_path, base, manifest("base"))
    changed = {3: [{"movieId": 7}], 0: None}  # shard 0: user 3 added, user 0 removed
    published = files.publish_changed_lists(
        tmp_path, changed, {"note": 1}, base=base, rated={3: {4: 4.5, 5: 1.0}}
    )
    assert files.published_version(tmp_path) == published["version"] != base
    assert published["users"] == SHARDS and published["note"] == 1
    assert published["created"] == "base"
    new, old = (files.recommendations_dir(tmp_path) / v for v in (published["version"], base))
    shard0 = json.loads((new / files.shard_name(0)).read_text())
    assert shard0 == {"3": [{"movieId": 7}]}
    index = files.read_shard_index(new / files.index_name(0))
    assert files.read_user_list(new / files.shard_name(0), index, 3) == [{"movieId": 7}]
    assert files.read_user_ratings(new / files.shard_name(0), index, 3) == {4: 4.5, 5: 1.0}
    for shard in (1, 2):
        assert (new / files.shard_name(shard)).samefile(old / files.shard_name(shard))
        assert (new / files.rated_name(shard)).samefile(old / files.rated_name(shard))
        index = files.read_shard_index(new / files.index_name(shard))
        ratings = files.read_user_ratings(new / files.shard_name(shard), index, shard)
        assert ratings == {10: 4.0, 11: 2.5}
    listed = files.ListedUsers(tmp_path, published)
    assert 3 in listed and np.int64(1) in listed and 0 not in listed and 4 not in listed


def test_changed_lists_made_against_a_replaced_version_are_not_published(tmp_path):
    with files.new_version(tmp_path) as (base, folder):
        write_version(tmp_path, folder, "base")
        files.publish_recommendations(tmp_path, base, manifest("base"))
    with files.new_version(tmp_path) as (newer, folder):
        write_version(tmp_path, folder, "newer")
        files.publish_recommendations(tmp_path, newer, manifest("newer"))
    with pytest.raises(files.PublishedMeanwhile, match=f"{newer} was published since {base}"):
        files.publish_changed_lists(tmp_path, {1: []}, {}, base=base)
    assert files.published_version(tmp_path) == newer

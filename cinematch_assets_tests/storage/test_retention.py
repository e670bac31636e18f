"""Retention: the lake's size stays bounded however many runs rewrite its tables, and the
app's many small saves are merged without losing or changing a rating."""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from cinematch_assets.storage import app_ratings, retention
from cinematch_assets.storage.delta_reader import read_delta


def test_ten_rewrites_leave_one_version_past_the_retention_and_all_within_it(tmp_path):
    lake = tmp_path / "lake"
    table = lake / "silver" / "t"
    rows = pa.table({"n": list(range(50_000))})
    sizes = []
    for _ in range(10):
        write_deltalake(str(table), rows, mode="overwrite")
        sizes.append(retention.folder_bytes(lake))
    kept = retention.apply_retention(tmp_path, lake, retention_hours=168)
    assert kept.files_removed == 0 and kept.bytes_after == sizes[-1]
    kept = retention.apply_retention(tmp_path, lake, retention_hours=0)
    assert kept.tables == 1 and kept.files_removed == 9
    assert kept.bytes_after < 1.5 * sizes[0] < sizes[-1] / 5
    assert read_delta(table).num_rows == 50_000


def test_the_apps_small_saves_are_merged_and_every_rating_stands(tmp_path):
    movies = set(range(1, 200))
    user, key = app_ratings.create_account(tmp_path)
    for movie in range(1, retention.COMPACT_FROM_FILES + 6):
        stars = None if movie % 10 == 0 else 4.0
        app_ratings.save_ratings(tmp_path, user, key, {movie: stars}, movies,
                                 session="s", serving_version=None)  # fmt: skip
    before = app_ratings.saved_ratings(tmp_path, user, key)
    table = app_ratings.ratings_path(tmp_path)
    files = len(DeltaTable(str(table)).file_uris())
    kept = retention.apply_retention(tmp_path, tmp_path / "lake", retention_hours=0)
    assert kept.app_files_compacted == files > retention.COMPACT_FROM_FILES
    assert len(DeltaTable(str(table)).file_uris()) == 1
    assert app_ratings.saved_ratings(tmp_path, user, key) == before
    assert kept.bytes_after < kept.bytes_before


def test_a_table_with_nothing_to_remove_keeps_its_version(tmp_path):
    """Its version is what the app ratings sensor watches: no vacuum commit without a
    file to remove."""
    table = tmp_path / "lake" / "app" / "ratings"
    write_deltalake(str(table), pa.table({"n": [1]}), mode="append")
    retention.apply_retention(tmp_path, tmp_path / "lake", retention_hours=0)
    assert DeltaTable(str(table)).version() == 0

"""Folders published whole: the one rename-into-place the sources share."""

from __future__ import annotations

import pytest

from cinematch_assets.storage.atomic_files import replace_folder


def test_a_folder_replaces_the_old_one_whole_and_leaves_nothing_aside(tmp_path):
    dest, new = tmp_path / "release", tmp_path / ".tmp-new"
    dest.mkdir()
    (dest / "old.csv").write_text("old")
    new.mkdir()
    (new / "new.csv").write_text("new")
    replace_folder(new, dest, ".tmp-old-")
    assert [p.name for p in dest.iterdir()] == ["new.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]


def test_a_failed_rename_puts_the_old_folder_back(tmp_path):
    dest = tmp_path / "release"
    dest.mkdir()
    (dest / "old.csv").write_text("old")
    with pytest.raises(OSError):
        replace_folder(tmp_path / "never-written", dest, ".tmp-old-")
    assert (dest / "old.csv").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]

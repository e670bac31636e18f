"""Dense model matrices as files: what a name means, what is kept, what a reader shares."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cinematch_assets.storage.matrix_files import KEPT_FILES, read_matrix, write_matrix


def test_a_matrix_reads_back_equal_and_memory_mapped(tmp_path):
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    name = write_matrix(tmp_path, "weights", matrix)
    back = read_matrix(tmp_path, name, rows=np.arange(3), columns=4, written_by="ml/x")
    assert isinstance(back, np.memmap) and not back.flags.writeable
    np.testing.assert_array_equal(back, matrix)
    assert back.dtype == np.float32
    # One mapping per process: a second reader gets the same array.
    assert read_matrix(tmp_path, name, rows=np.arange(3), columns=4, written_by="ml/x") is back


def test_a_name_is_its_content(tmp_path):
    matrix = np.eye(3, dtype=np.float32)
    first = write_matrix(tmp_path, "weights", matrix)
    assert write_matrix(tmp_path, "weights", matrix.copy()) == first
    assert write_matrix(tmp_path, "weights", 2 * matrix) != first
    # Same bytes, another shape: another matrix.
    assert write_matrix(tmp_path, "weights", matrix.reshape(1, 9)) != first


def test_the_newest_files_are_kept_and_other_names_untouched(tmp_path):
    other = write_matrix(tmp_path, "vectors", np.zeros((2, 2), np.float32))
    names = []
    for step in range(KEPT_FILES + 2):
        names.append(write_matrix(tmp_path, "weights", np.full((2, 2), step, np.float32)))
        os.utime(tmp_path / names[-1], (step, step))  # ordered, whatever the clock's grain
    assert {p.name for p in tmp_path.glob("weights-*.npy")} == set(names[-KEPT_FILES:])
    assert (tmp_path / other).exists()


def test_a_missing_file_says_what_rebuilds_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="re-materialize ml/x"):
        read_matrix(tmp_path, "weights-0123.npy", rows=np.arange(1), columns=1, written_by="ml/x")


def test_a_matrix_that_does_not_match_its_table_says_what_rebuilds_it(tmp_path):
    name = write_matrix(tmp_path, "weights", np.zeros((3, 4), np.float32))
    for rows, columns in ((np.arange(2), 4), (np.arange(3), 5), (np.array([0, 2, 1]), 4)):
        with pytest.raises(ValueError, match="does not match its table.*re-materialize ml/x"):
            read_matrix(tmp_path, name, rows=rows, columns=columns, written_by="ml/x")

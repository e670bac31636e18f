"""Dense matrices a model keeps beside its Delta tables (EASE's item weights B, the movies'
content vectors): a matrix is not a table. Spark would hold it as one array row per movie
and bring it back through a sort and a JVM-side conversion (at 10k movies, 400 MB of B
took the whole driver heap); here it is one `.npy` file, read straight into NumPy and
memory-mapped, so every reader in a process (and the page cache across processes) shares
one copy. The Delta tables keep the lineage: which movie is which row, and the file's name.

A file is named by its content's hash: a name never changes meaning, so a reader holding
an older table version still finds the file it names. Each write keeps the newest
`KEPT_FILES` in its folder (a run still reading an older version keeps its mapping).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from cinematch_assets.storage.atomic_files import atomic_path

KEPT_FILES = 3
_CHUNK = 1 << 24


def write_matrix(folder: Path, name: str, matrix: np.ndarray) -> str:
    """`matrix` as `<folder>/<name>-<hash>.npy`, atomically; returns the file's name (what
    the model's Delta row records, relative to `folder`, so the data root can move)."""
    matrix = np.ascontiguousarray(matrix)
    digest = hashlib.blake2b(digest_size=10)
    digest.update(f"{matrix.dtype.str}{matrix.shape}".encode())
    flat = matrix.reshape(-1).view(np.uint8)
    for start in range(0, len(flat), _CHUNK):
        digest.update(flat[start : start + _CHUNK])
    file_name = f"{name}-{digest.hexdigest()}.npy"
    target = Path(folder) / file_name
    if not target.exists():
        with atomic_path(target) as temp, temp.open("wb") as out:
            np.save(out, matrix, allow_pickle=False)
    else:
        target.touch()  # the newest again, so cleaning up keeps it
    _keep_newest(Path(folder), name)
    return file_name


def read_matrix(
    folder: Path, file_name: str, *, rows: np.ndarray, columns: int, written_by: str
) -> np.ndarray:
    """The matrix `write_matrix` wrote, memory-mapped read-only and shared by every caller
    in this process. `rows`: the row numbers its table names, which must be 0..n-1 in
    order, for a matrix of n x `columns`. A missing or unreadable file raises
    FileNotFoundError, a matrix that does not match its table ValueError, both saying which
    and that re-materializing `written_by` rebuilds it."""
    path = (Path(folder) / file_name).resolve()
    try:
        matrix = _mapped(str(path))
    except (OSError, ValueError) as error:
        raise FileNotFoundError(
            f"model matrix {path} is missing or unreadable ({error}): re-materialize {written_by}"
        ) from error
    in_order = np.array_equal(rows, np.arange(len(rows)))
    if matrix.shape != (len(rows), columns) or not in_order:
        raise ValueError(
            f"model matrix {path} {matrix.shape} does not match its table ({len(rows)} rows "
            f"x {columns}): re-materialize {written_by}"
        )
    return matrix


@lru_cache(maxsize=8)
def _mapped(path: str) -> np.ndarray:
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _keep_newest(folder: Path, name: str) -> None:
    def modified(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except FileNotFoundError:  # an overlapping run removed it first
            return 0.0

    files = sorted(folder.glob(f"{name}-*.npy"), key=modified, reverse=True)
    for old in files[KEPT_FILES:]:
        old.unlink(missing_ok=True)

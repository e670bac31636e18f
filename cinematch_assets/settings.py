"""Where things live. Every path derives from CINEMATCH_HOME (default ./data)."""

from __future__ import annotations

import os
from pathlib import Path


def cinematch_home() -> Path:
    """The data root: lake, raw downloads, reports and serving artifacts live below it."""
    return Path(os.environ.get("CINEMATCH_HOME", "data")).expanduser().resolve()


def lake_root() -> Path:
    return cinematch_home() / "lake"


def raw_root() -> Path:
    return cinematch_home() / "raw"


def reports_root() -> Path:
    return cinematch_home() / "reports"


def models_root() -> Path:
    """Spark ML `save` of the fitted models (their factors are also lake tables)."""
    return cinematch_home() / "models"


def user_cache_dir() -> Path:
    """Per-user cache shared by all clones (the fetched Java runtime lives here)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cinematch"

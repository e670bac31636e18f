"""The one place environment variables are read. Each is read when asked for (never at
import time), so a test or a run can set it first; resources and configs take these as
their defaults, and run config overrides them.

(Java discovery, in `java`, takes the process environment as an argument: it looks for
Java where JAVA_HOME and PATH say, and fetches from CINEMATCH_JDK_INDEX_URL.)
"""

from __future__ import annotations

import os
from pathlib import Path

from cinematch_assets.sources.movielens import DEFAULT_BASE_URL, DEFAULT_VARIANT


def _get(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def cinematch_home() -> Path:
    """The data root (CINEMATCH_HOME, default ./data): lake, raw downloads, reports, models,
    serving files and checkpoints all live below it."""
    return Path(_get("CINEMATCH_HOME", "data")).expanduser().resolve()


def user_cache_dir() -> Path:
    """Per-user cache shared by all clones (the fetched Java runtime lives here)."""
    base = _get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cinematch"


# ------------------------------------------------------------------------ MovieLens


def movielens_variant() -> str:
    return _get("CINEMATCH_VARIANT", DEFAULT_VARIANT)


def movielens_local_path() -> str:
    """A local MovieLens zip or extracted folder to use instead of downloading."""
    return _get("CINEMATCH_MOVIELENS")


def movielens_base_url() -> str:
    return _get("CINEMATCH_MOVIELENS_URL", DEFAULT_BASE_URL)


# ---------------------------------------------------------------------------- Spark


def spark_master() -> str:
    return _get("CINEMATCH_SPARK_MASTER", "local[*]")


def spark_remote() -> str:
    """A Spark Connect URL (sc://host:15002); empty for a classic session."""
    return _get("CINEMATCH_SPARK_REMOTE")


def spark_driver_memory() -> str:
    """Local mode runs everything in the driver JVM: by default a quarter of RAM (1 to 32
    GB). The JVM's resident size grows to its heap and more, and the Python side (EASE's
    inverse, the list builders' workers) needs room beside it: at 40% a 1M-rating run
    peaked at 15 GB of a 24 GB machine's RAM."""
    if value := _get("CINEMATCH_SPARK_DRIVER_MEMORY"):
        return value
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "2g"
    return f"{min(max(int(total * 0.25 / 2**30), 1), 32)}g"


def spark_shuffle_partitions() -> int:
    """Spark's 200 is meant for clusters; locally a few per core avoids thousands of tiny
    tasks."""
    return int(_get("CINEMATCH_SPARK_SHUFFLE_PARTITIONS") or max(4, 2 * (os.cpu_count() or 2)))


def spark_ui() -> bool:
    return _get("CINEMATCH_SPARK_UI", "true").lower() == "true"


def spark_conf() -> str:
    """Extra `key=value` settings, separated by spaces or commas."""
    return _get("CINEMATCH_SPARK_CONF")


def delta_engine() -> str:
    """`delta-rs` (Spark writes Parquet, delta-rs commits) or `spark` (Spark's own Delta)."""
    return _get("CINEMATCH_DELTA_ENGINE", "delta-rs")


# ------------------------------------------------------------------------------ app


def tmdb_api_key() -> str | None:
    return _get("TMDB_API_KEY") or None


def tmdb_api_base(default: str) -> str:
    """TMDB's API, or a mirror / local stand-in (CINEMATCH_TMDB_API)."""
    return _get("CINEMATCH_TMDB_API", default).rstrip("/")


def fold_in_interval_seconds() -> int:
    """The least time between two light runs of app_ratings_sensor (CINEMATCH_FOLD_IN_INTERVAL,
    seconds, default 60): new app ratings wait at most this long, plus the run, to be served."""
    return max(int(_get("CINEMATCH_FOLD_IN_INTERVAL") or 60), 1)


def lake_retention_hours() -> int:
    """How long the lake keeps the files of replaced table versions (time travel), in hours
    (CINEMATCH_LAKE_RETENTION_HOURS, default 168: 7 days)."""
    return max(int(_get("CINEMATCH_LAKE_RETENTION_HOURS") or 168), 0)

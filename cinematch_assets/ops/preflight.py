"""`make materialize` (and so `make demo`) runs this before Dagster starts.

It checks in seconds that the configured MovieLens source can be used (the same
variables as the raw asset: CINEMATCH_MOVIELENS, CINEMATCH_VARIANT,
CINEMATCH_MOVIELENS_URL), so that an offline machine or a missing or corrupt local
archive ends with one clear message on the last lines of the screen, not inside a
Dagster traceback.

    python -m cinematch_assets.ops.preflight
"""

from __future__ import annotations

import sys

from cinematch_assets.assets.raw import MovieLensConfig, check_source
from cinematch_assets.resources.data_root import DataRoot
from cinematch_assets.sources.movielens import MovieLensError


def main() -> int:
    try:
        source = check_source(MovieLensConfig(), DataRoot().raw)
    except (MovieLensError, ValueError) as exc:
        print(f"\nCannot start: the MovieLens data is not available.\n{exc}\n", file=sys.stderr)
        return 1
    print(f"MovieLens source: {source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

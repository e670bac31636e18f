"""Movie posters from TMDB (by tmdbId), cached, never in the way.

No key, no tmdbId, a refused key (401), an unknown movie (404), a slow answer (over
`timeout` seconds), a broken connection or an answer that is not what TMDB sends (a cut
body, a garbage status line, a huge header, JSON nested too deep): every one of these
gives None, and the card shows its placeholder. Without a key nothing touches the network. The
key travels only in the request to TMDB: it is never logged, never part of a returned URL
and never in an error message.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from cinematch_assets import settings

TMDB_API = "https://api.themoviedb.org/3"
IMAGE_BASE = "https://image.tmdb.org/t/p/w342"
TIMEOUT_SECONDS = 3.0
TTL_SECONDS = 3600.0


def api_base() -> str:
    """TMDB's API, or a mirror / local stand-in from CINEMATCH_TMDB_API."""
    return settings.tmdb_api_base(TMDB_API)


def tmdb_id_of(value: object) -> int | None:
    """A usable tmdbId from a catalog cell (None, NaN, 0 and negatives are not)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def fetch_poster_url(
    tmdb_id: int, api_key: str, *, base: str | None = None, timeout: float = TIMEOUT_SECONDS
) -> str | None:
    """The poster image URL TMDB gives for `tmdb_id`, or None on any failure."""
    query = urllib.parse.urlencode({"api_key": api_key})
    url = f"{base or api_base()}/movie/{int(tmdb_id)}?{query}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read(1_000_000))
    # Any failure of the network, the HTTP exchange or the JSON (http.client alone raises
    # a dozen kinds, RecursionError comes from json) ends in the placeholder.
    except Exception:
        return None
    path = body.get("poster_path") if isinstance(body, dict) else None
    if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in "\"'<> "):
        return None
    return IMAGE_BASE + path


class PosterCache:
    """Poster URLs per tmdbId for `ttl` seconds (misses too: a failing movie is not asked
    again on every rerun), fetched a few at a time."""

    def __init__(self, ttl: float = TTL_SECONDS, *, base: str | None = None) -> None:
        self.ttl = ttl
        self.base = base
        self._entries: dict[int, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def get_many(self, tmdb_ids: Iterable[object], api_key: str | None) -> list[str | None]:
        ids = [tmdb_id_of(value) for value in tmdb_ids]
        if not api_key:
            return [None] * len(ids)
        now = time.monotonic()
        with self._lock:
            fresh = {
                i: url for i, (at, url) in self._entries.items() if i in ids and now - at < self.ttl
            }
        missing = sorted({i for i in ids if i is not None and i not in fresh})
        if missing:
            with ThreadPoolExecutor(max_workers=min(8, len(missing))) as pool:
                urls = list(
                    pool.map(lambda i: fetch_poster_url(i, api_key, base=self.base), missing)
                )
            with self._lock:
                for i, url in zip(missing, urls, strict=True):
                    self._entries[i] = (now, url)
                    fresh[i] = url
        return [None if i is None else fresh.get(i) for i in ids]

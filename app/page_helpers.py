"""What the Streamlit pages need besides Streamlit: text for widgets that render Markdown
(shown as written), the community's opinion in words, and a session's bound on saving
ratings. Everything the pages answer comes from `cinematch_assets.serving`."""

from __future__ import annotations

import re
import time

# Markdown (and Streamlit's extensions: LaTeX between dollars, :colour[...] directives)
# gives these characters a meaning; a backslash makes each one literal.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")
# Where GitHub-flavoured Markdown's bare-link finder starts: before "://", after "www",
# before "@".
WORD_JOINER = "\u2060"
_BARE_LINK = re.compile(r"(?i)(?<=[a-z])(?=\\:)|(?<=\bwww)(?=\\\.)|(?=@)")


def plain(text: object) -> str:
    """`text` for a widget that renders Markdown, shown as written: a title such as
    `M*A*S*H` or `$1,000,000 Duck`, or a crafted `[link](https://...)`, stays text.
    Streamlit also turns bare addresses (https://..., www..., a@b.c) into links after
    parsing, which no escape prevents: an invisible word joiner breaks each one."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")
    return _BARE_LINK.sub(WORD_JOINER, escaped)


def community_line(average: float | None, count: int) -> str:
    """What the community thinks of a movie, in words: "Community 3.91 (232 ratings)",
    "Community 4.00 (1 rating)", or "Not rated yet"."""
    if not count:
        return "Not rated yet"
    return f"Community {average:.2f} ({count:,} rating{'' if count == 1 else 's'})"


class SaveLimit:
    """At most `saves` saves in any `seconds`: a session's bound on writing ratings."""

    def __init__(self, saves: int = 30, seconds: float = 60.0) -> None:
        self.saves, self.seconds = saves, seconds
        self._times: list[float] = []

    def allow(self, now: float | None = None) -> bool:
        """Count a save at `now` (monotonic seconds) if the bound allows it."""
        now = time.monotonic() if now is None else now
        self._times = [t for t in self._times if now - t < self.seconds]
        if len(self._times) >= self.saves:
            return False
        self._times.append(now)
        return True

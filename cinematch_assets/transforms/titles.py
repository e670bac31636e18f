"""Silver: MovieLens titles split into a clean title, a release year and a display title.

MovieLens writes titles as `Name (YYYY)`, with an alternate title in parentheses and a
trailing article for sorting: `City of Lost Children, The (Cité des enfants perdus, La) (1995)`.
Everything here is a Spark Column expression (Java regexes, no Python UDFs), so it runs
on a cluster and over Spark Connect without Python workers.

Only a plausible trailing year is taken out of the title. Any other trailing parenthetical,
including an out-of-range one such as `(1066)` or `(2105)`, stays in `title_clean` and
leaves `release_year` null: we never guess a year, and we never lose title text.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cinematch_assets.conventions import ARTICLES

MIN_YEAR = 1870  # the first motion pictures; an earlier "year" is part of the title

# Java regexes (Spark's dialect). `(?x)` ignores layout and allows comments.
_SPACE = r"[\s\p{Z}]"  # ASCII whitespace and Unicode spaces (no-break space, ...)

_YEAR_SUFFIX = r"""(?xs)
    ^ (?<title> .*\S )             # the title: anything, so a year alone stays the title
    \s* \(
        (?<year> \d{4} )           # the release year, or the first year of a TV run ...
        (?: \s* [-–] \s* \d{0,4} )?  # ... in (1975-1979) or the open run (2007-)
    \) $
"""
_TITLE, _YEAR = 1, 2


_ARTICLE_CHOICE = "|".join(ARTICLES)
_TRAILING_ARTICLE = rf"""(?x)
    ^ (?<main> (?: [^()] | \( [^()]* \) )+? )  # the main title; its parentheses balanced, so
                                               # the comma is not inside an alternate title
    , \s (?<article> {_ARTICLE_CHOICE} )
    (?<alt> \s+ \( .* \) )?                    # alternate titles, kept after the main one
    $
"""
_MAIN, _ARTICLE, _ALT = 1, 2, 3


def default_max_year() -> int:
    """Next calendar year: the latest plausible release year (films are listed before release)."""
    return date.today().year + 1


def _strip(text: Column) -> Column:
    # F.trim strips only ASCII spaces.
    return F.regexp_replace(text, rf"^{_SPACE}+|{_SPACE}+$", "")


def _display(title_clean: Column) -> Column:
    """`Big Bang Theory, The` -> `The Big Bang Theory`; `Avventura, L'` -> `L'Avventura`."""
    article = F.regexp_extract(title_clean, _TRAILING_ARTICLE, _ARTICLE)
    glue = F.when(article.endswith("'"), F.lit("")).otherwise(F.lit(" "))
    moved = F.concat(
        article,
        glue,
        F.regexp_extract(title_clean, _TRAILING_ARTICLE, _MAIN),
        F.regexp_extract(title_clean, _TRAILING_ARTICLE, _ALT),
    )
    return F.when(article == "", title_clean).otherwise(moved)


def title_columns(title: Column | str, *, max_year: int | None = None) -> dict[str, Column]:
    """{"title_clean", "release_year", "display_title"} for a raw MovieLens title column."""
    max_year = default_max_year() if max_year is None else max_year
    # A blank title is no title: null, like the year it lacks.
    raw = F.nullif(_strip(F.col(title) if isinstance(title, str) else title), F.lit(""))
    year = F.regexp_extract(raw, _YEAR_SUFFIX, _YEAR).try_cast("int")  # "" -> null
    plausible = year.between(MIN_YEAR, max_year)
    release_year = F.when(plausible, year)
    title_clean = F.when(plausible, _strip(F.regexp_extract(raw, _YEAR_SUFFIX, _TITLE)))
    title_clean = title_clean.otherwise(raw)
    return {
        "title_clean": title_clean,
        "release_year": release_year,
        "display_title": _display(title_clean),
    }


def parse_titles(
    df: DataFrame, title_col: str = "title", *, max_year: int | None = None
) -> DataFrame:
    """`df` plus title_clean (string), release_year (int, null if none) and display_title."""
    return df.withColumns(title_columns(df[title_col], max_year=max_year))

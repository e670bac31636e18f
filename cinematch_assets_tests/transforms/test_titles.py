"""Silver title parsing: clean title, release year and display title, on crafted and real titles."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import date

import pytest
from pyspark.sql import types as T

from cinematch_assets.transforms.titles import (
    MIN_YEAR,
    default_max_year,
    parse_titles,
    title_columns,
)

NEXT_YEAR = default_max_year()

# raw title -> (title_clean, release_year, display_title). Quoted ones are real MovieLens titles.
CASES: dict[str | None, tuple[str | None, int | None, str | None]] = {
    # The plain shape, and trailing whitespace (14 real titles, one with two spaces).
    "Toy Story (1995)": ("Toy Story", 1995, "Toy Story"),
    "Rocky VI (1986) ": ("Rocky VI", 1986, "Rocky VI"),
    "Pressure Point  (1962) ": ("Pressure Point", 1962, "Pressure Point"),
    "Blind Side, The  (2009)": ("Blind Side, The", 2009, "The Blind Side"),
    "Toy Story (1995)\t\u00a0": ("Toy Story", 1995, "Toy Story"),
    # TV runs: closed, open, with an en dash.
    "Fawlty Towers (1975-1979)": ("Fawlty Towers", 1975, "Fawlty Towers"),
    "Big Bang Theory, The (2007-)": ("Big Bang Theory, The", 2007, "The Big Bang Theory"),
    "Big Bang Theory, The (2007–)": ("Big Bang Theory, The", 2007, "The Big Bang Theory"),
    "Fawlty Towers (1975 – 1979)": ("Fawlty Towers", 1975, "Fawlty Towers"),
    # No year at all (the only two real ones).
    "Li'l Quinquin": ("Li'l Quinquin", None, "Li'l Quinquin"),
    "Elämältä kaiken sain": ("Elämältä kaiken sain", None, "Elämältä kaiken sain"),
    # Parentheses inside titles: alternate titles, a leading one, one before the article.
    "City of Lost Children, The (Cité des enfants perdus, La) (1995)": (
        "City of Lost Children, The (Cité des enfants perdus, La)",
        1995,
        "The City of Lost Children (Cité des enfants perdus, La)",
    ),
    "(500) Days of Summer (2009)": ("(500) Days of Summer", 2009, "(500) Days of Summer"),
    "Human Centipede II (Full Sequence), The (2011)": (
        "Human Centipede II (Full Sequence), The",
        2011,
        "The Human Centipede II (Full Sequence)",
    ),
    "Trou, Le (Hole, The) (Night Watch, The) (1960)": (
        "Trou, Le (Hole, The) (Night Watch, The)",
        1960,
        "Le Trou (Hole, The) (Night Watch, The)",
    ),
    "Something (a.k.a. Other)": ("Something (a.k.a. Other)", None, "Something (a.k.a. Other)"),
    "Twelve Monkeys (a.k.a. 12 Monkeys) (1995)": (
        "Twelve Monkeys (a.k.a. 12 Monkeys)",
        1995,
        "Twelve Monkeys (a.k.a. 12 Monkeys)",
    ),
    # Years and numbers in the title itself are not the release year.
    "2001: A Space Odyssey (1968)": ("2001: A Space Odyssey", 1968, "2001: A Space Odyssey"),
    "1984 (1956)": ("1984", 1956, "1984"),
    "Blade Runner 2049 (2017)": ("Blade Runner 2049", 2017, "Blade Runner 2049"),
    "1984 (Nineteen Eighty-Four) (1984)": (
        "1984 (Nineteen Eighty-Four)",
        1984,
        "1984 (Nineteen Eighty-Four)",
    ),
    "Airport 1975 (1974)": ("Airport 1975", 1974, "Airport 1975"),
    "8 1/2 (8½) (1963)": ("8 1/2 (8½)", 1963, "8 1/2 (8½)"),
    "Alien³ (a.k.a. Alien 3) (1992)": ("Alien³ (a.k.a. Alien 3)", 1992, "Alien³ (a.k.a. Alien 3)"),
    # Implausible years stay in the title and give no year; the bounds are inclusive.
    "Battle of Hastings (1066)": ("Battle of Hastings (1066)", None, "Battle of Hastings (1066)"),
    "Too Early (1869)": ("Too Early (1869)", None, "Too Early (1869)"),
    "Roundhay Garden Scene (1870)": ("Roundhay Garden Scene", 1870, "Roundhay Garden Scene"),
    f"Upcoming ({NEXT_YEAR})": ("Upcoming", NEXT_YEAR, "Upcoming"),
    f"Typo ({NEXT_YEAR + 1})": (f"Typo ({NEXT_YEAR + 1})", None, f"Typo ({NEXT_YEAR + 1})"),
    "Five Digits (19955)": ("Five Digits (19955)", None, "Five Digits (19955)"),
    "(1995)": ("(1995)", None, "(1995)"),  # a year alone is the title, not an empty one
    # Trailing articles, English and foreign; L' joins without a space.
    "Shawshank Redemption, The (1994)": (
        "Shawshank Redemption, The",
        1994,
        "The Shawshank Redemption",
    ),
    "Goofy Movie, A (1995)": ("Goofy Movie, A", 1995, "A Goofy Movie"),
    "Andalusian Dog, An (Chien andalou, Un) (1929)": (
        "Andalusian Dog, An (Chien andalou, Un)",
        1929,
        "An Andalusian Dog (Chien andalou, Un)",
    ),
    "Misérables, Les (1995)": ("Misérables, Les", 1995, "Les Misérables"),
    "Dolce Vita, La (1960)": ("Dolce Vita, La", 1960, "La Dolce Vita"),
    "Samouraï, Le (Godson, The) (1967)": (
        "Samouraï, Le (Godson, The)",
        1967,
        "Le Samouraï (Godson, The)",
    ),
    "Avventura, L' (1960)": ("Avventura, L'", 1960, "L'Avventura"),
    "Eclisse, L' (Eclipse) (1962)": ("Eclisse, L' (Eclipse)", 1962, "L'Eclisse (Eclipse)"),
    "Posto, Il (1961)": ("Posto, Il", 1961, "Il Posto"),
    "Vitelloni, I (a.k.a. The Young and the Passionate) (1953)": (
        "Vitelloni, I (a.k.a. The Young and the Passionate)",
        1953,
        "I Vitelloni (a.k.a. The Young and the Passionate)",
    ),
    "Mariachi, El (1992)": ("Mariachi, El", 1992, "El Mariachi"),
    "Acacias, Las (2011)": ("Acacias, Las", 2011, "Las Acacias"),
    "Boot, Das (Boat, The) (1981)": ("Boot, Das (Boat, The)", 1981, "Das Boot (Boat, The)"),
    "Baader Meinhof Komplex, Der (2008)": (
        "Baader Meinhof Komplex, Der",
        2008,
        "Der Baader Meinhof Komplex",
    ),
    # Only the main title's article moves: not a lowercase "the", not one in an alternate title.
    "Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)": (
        "Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il)",
        1966,
        "The Good, the Bad and the Ugly (Buono, il brutto, il cattivo, Il)",
    ),
    "Hate (Haine, La) (1995)": ("Hate (Haine, La)", 1995, "Hate (Haine, La)"),
    "Ace of Aces (a.k.a. Super Ace, The) (As des as, L') (1982)": (
        "Ace of Aces (a.k.a. Super Ace, The) (As des as, L')",
        1982,
        "Ace of Aces (a.k.a. Super Ace, The) (As des as, L')",
    ),
    # Commas that are not article suffixes.
    "Monsters, Inc. (2001)": ("Monsters, Inc.", 2001, "Monsters, Inc."),
    "Steamboat Bill, Jr. (1928)": ("Steamboat Bill, Jr.", 1928, "Steamboat Bill, Jr."),
    "Bless Me, Ultima (2013)": ("Bless Me, Ultima", 2013, "Bless Me, Ultima"),
    "Honey, I Shrunk the Kids (1989)": (
        "Honey, I Shrunk the Kids",
        1989,
        "Honey, I Shrunk the Kids",
    ),
    "I Love You, Man (2009)": ("I Love You, Man", 2009, "I Love You, Man"),
    "One, Two, Three (1961)": ("One, Two, Three", 1961, "One, Two, Three"),
    # Non-ASCII and odd spacing inside the title survive untouched.
    "M. Hulot’s Holiday (Mr. Hulot's Holiday) (Vacances de Monsieur Hulot, Les) (1953)": (
        "M. Hulot’s Holiday (Mr. Hulot's Holiday) (Vacances de Monsieur Hulot, Les)",
        1953,
        "M. Hulot’s Holiday (Mr. Hulot's Holiday) (Vacances de Monsieur Hulot, Les)",
    ),
    "Tie Me Up! Tie Me Down! (¡Átame!) (1990)": (
        "Tie Me Up! Tie Me Down! (¡Átame!)",
        1990,
        "Tie Me Up! Tie Me Down! (¡Átame!)",
    ),
    "Man Escaped, A (Un  condamné à mort s'est échappé ou Le vent souffle où il veut) (1956)": (
        "Man Escaped, A (Un  condamné à mort s'est échappé ou Le vent souffle où il veut)",
        1956,
        "A Man Escaped (Un  condamné à mort s'est échappé ou Le vent souffle où il veut)",
    ),
    "千と千尋の神隠し (2001)": ("千と千尋の神隠し", 2001, "千と千尋の神隠し"),
    # Missing and blank titles give nulls.
    None: (None, None, None),
    "   ": (None, None, None),
}


@pytest.fixture(scope="module")
def parsed_cases(spark) -> dict[str | None, tuple[str | None, int | None, str | None]]:
    """Every case parsed in one Spark job (with the default max_year)."""
    df = spark.createDataFrame([(title,) for title in CASES], "title string")
    rows = parse_titles(df).collect()
    return {r.title: (r.title_clean, r.release_year, r.display_title) for r in rows}


@pytest.mark.parametrize("title", list(CASES))
def test_title_case(parsed_cases, title):
    assert parsed_cases[title] == CASES[title]


def test_schema_and_no_python_workers(spark):
    df = parse_titles(
        spark.createDataFrame([("Toy Story (1995)", 1)], "name string, id int"), "name"
    )
    assert [(f.name, f.dataType) for f in df.schema] == [
        ("name", T.StringType()),
        ("id", T.IntegerType()),
        ("title_clean", T.StringType()),
        ("release_year", T.IntegerType()),
        ("display_title", T.StringType()),
    ]
    # Pure Column expressions: no Python UDF anywhere in the plan.
    plan = df._jdf.queryExecution().executedPlan().toString()
    assert "Python" not in plan


def test_max_year_and_column_api(spark):
    df = spark.createDataFrame([("Future (2030)",), ("Future (2031)",)], "t string")
    cols = title_columns("t", max_year=2030)
    got = [tuple(r) for r in df.select(cols["release_year"], cols["title_clean"]).collect()]
    assert got == [(2030, "Future"), (None, "Future (2031)")]
    assert default_max_year() == date.today().year + 1


def read_real_titles(archive) -> list[str]:
    with zipfile.ZipFile(archive) as zf:
        name = next(n for n in zf.namelist() if n.endswith("movies.csv"))
        with zf.open(name) as raw:
            return [row["title"] for row in csv.DictReader(io.TextIOWrapper(raw, "utf-8"))]


def has_trailing_year(title: str) -> bool:
    """Independent check: the text after the last "(" is YYYY), YYYY-) or YYYY-YYYY)."""
    last = title.strip().rpartition("(")[2]
    match = re.fullmatch(r"(\d{4})(-\d{4}|-)?\)", last, re.ASCII)
    return bool(match) and MIN_YEAR <= int(match[1]) <= NEXT_YEAR


@pytest.mark.realdata
def test_real_movielens_titles(spark, shared_archive):
    titles = read_real_titles(shared_archive)
    assert len(titles) == 10_329
    df = spark.createDataFrame([(t,) for t in titles], "title string")
    rows = parse_titles(df).collect()

    years = [r.release_year for r in rows]
    assert all(y is None or MIN_YEAR <= y <= NEXT_YEAR for y in years)
    assert years.count(None) == sum(not has_trailing_year(t) for t in titles) == 2
    for r in rows:
        assert r.title_clean and r.title_clean == r.title_clean.strip(), r.title
        assert not re.search(r"\(\d{4}\)$", r.title_clean), r.title
        assert r.display_title and r.display_title == r.display_title.strip(), r.title

    by_title = {r.title: (r.title_clean, r.release_year, r.display_title) for r in rows}
    assert by_title["Toy Story (1995)"] == ("Toy Story", 1995, "Toy Story")
    assert by_title["Babe Ruth Story, The (1948) "] == (
        "Babe Ruth Story, The",
        1948,
        "The Babe Ruth Story",
    )
    assert by_title["Fawlty Towers (1975-1979)"] == ("Fawlty Towers", 1975, "Fawlty Towers")
    assert by_title["Big Bang Theory, The (2007-)"][1:] == (2007, "The Big Bang Theory")
    assert by_title["Li'l Quinquin"] == ("Li'l Quinquin", None, "Li'l Quinquin")
    assert by_title["Atalante, L' (1934)"][2] == "L'Atalante"
    godzilla = "Godzilla 1985: The Legend Is Reborn (Gojira) (Godzilla) (Return of Godzilla, The)"
    assert by_title[f"{godzilla} (1984)"] == (godzilla, 1984, godzilla)
    # Non-ASCII text survives: every raw title still contains its clean title.
    assert all(r.title_clean in r.title for r in rows)
    # 2,321 main titles carry a trailing article; all of them move to the front.
    moved = [r for r in rows if r.display_title != r.title_clean]
    assert len(moved) == 2321

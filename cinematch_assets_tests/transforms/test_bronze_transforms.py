"""Bronze parsing: explicit schemas, ingest columns, quarantine with reasons, line accounting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cinematch_assets.transforms.bronze import (
    BRONZE_TABLES,
    NOT_AN_APP_USER,
    QUARANTINE_SCHEMA,
    QUARANTINED,
    BronzeFormatError,
    bronze_schema,
    empty_bronze,
    parse_csv,
    split_app_ratings,
)
from cinematch_assets.transforms.reconcile import KEPT

RATINGS = BRONZE_TABLES["ratings"]
MOVIES = BRONZE_TABLES["movies"]


def columns(schema):
    """Names and types; nullability is not part of the contract (Delta stores all nullable)."""
    return [(f.name, f.dataType) for f in schema]


def write(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_file_names_and_headers_match_movielens():
    assert RATINGS.file_name == "ratings.csv"
    assert BRONZE_TABLES["genome_scores"].file_name == "genome-scores.csv"
    assert RATINGS.header == "userId,movieId,rating,timestamp"
    assert BRONZE_TABLES["links"].header == "movieId,imdbId,tmdbId"


def test_good_lines_load_with_types_and_ingest_columns(spark, tmp_path):
    path = write(
        tmp_path,
        "ratings.csv",
        b"userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n",
    )
    parsed = parse_csv(spark, path, RATINGS, batch_id="run-1")
    assert columns(parsed.rows.schema) == columns(bronze_schema(RATINGS))
    got = [tuple(r)[:4] + (r.source_file, r.batch_id) for r in parsed.rows.collect()]
    assert sorted(got) == [
        (1, 31, 2.5, 1260759144, "ratings.csv", "run-1"),
        (1, 1029, 3.0, 1260759179, "ratings.csv", "run-1"),
    ]
    assert all(r.ingest_time is not None for r in parsed.rows.collect())
    assert parsed.quarantine.count() == 0
    assert parsed.counts == {"header": 1, "blank": 0, "kept": 2}
    assert parsed.input_lines == 3


def test_malformed_lines_are_quarantined_with_reasons(spark, tmp_path):
    content = (
        b"userId,movieId,rating,timestamp\n"
        b"1,2,3.5,100\n"
        b"1,3,abc,100\n"  # not a number
        b"1,4,4.0\n"  # too few fields
        b"1,5,4.0,100,7\n"  # too many fields
        b"\n"  # blank line: counted, not data
        b",7,1.0,5\n"  # missing key
        b'2,"8,3.0,1\n'  # unbalanced quote
        b"3,9,4.0,1\xff\n"  # bad encoding
        b"4,10,5.0,1700000000\n"
    )
    path = write(tmp_path, "ratings.csv", content)
    parsed = parse_csv(spark, path, RATINGS, batch_id="b")

    assert sorted(r.movieId for r in parsed.rows.collect()) == [2, 10]
    reasons = {r.line: r.reason for r in parsed.quarantine.collect()}
    assert reasons["1,3,abc,100"] == "rating is not double: abc"
    assert reasons["1,4,4.0"].startswith("expected 4 fields")
    assert reasons["1,5,4.0,100,7"].startswith("expected 4 fields")
    assert reasons[",7,1.0,5"] == "missing userId"
    assert reasons['2,"8,3.0,1'].startswith("expected 4 fields")
    assert reasons["3,9,4.0,1\ufffd"] == "invalid UTF-8"
    assert columns(parsed.quarantine.schema) == columns(QUARANTINE_SCHEMA)
    assert {r.source_file for r in parsed.quarantine.collect()} == {"ratings.csv"}

    counts = parsed.counts
    assert counts["kept"] == 2 and counts["header"] == 1 and counts["blank"] == 1
    assert counts["quarantined: rating is not double"] == 1
    assert counts["quarantined: invalid UTF-8"] == 1
    # Every input line is accounted for.
    assert parsed.input_lines == content.count(b"\n")
    assert counts["kept"] + parsed.quarantine.count() + 2 == parsed.input_lines


NOT_EXACTLY_NUMBERS = {
    b"1,\x0012,4.0,100": "movieId is not int: \x0012",  # a NUL byte from a damaged file
    b"1,12\x07,4.0,100": "movieId is not int: 12\x07",
    b"1,1 2,4.0,100": "movieId is not int: 1 2",  # embedded space
    b"1, 12,4.0,100": "movieId is not int:  12",
    b"+1,12,4.0,100": "userId is not int: +1",  # ids have no sign
    b"1,-12,4.0,100": "movieId is not int: -12",
    b"1,12,4.0\t,100": "rating is not double: 4.0\t",
    b"1,12,NaN,100": "rating is not double: NaN",
    b"1,12,4.0,1e9": "timestamp is not bigint: 1e9",
    b"1,99999999999,4.0,100": "movieId is not int: 99999999999",  # overflows an int
}


def test_numbers_are_taken_only_as_written_never_repaired(spark, tmp_path):
    """Spark's casts would trim control characters and spaces, turning a corrupted line
    into a clean-looking rating: Bronze quarantines it instead."""
    good = [b"1,12,4.0,100", b"2,13,-1,100", b"3,14,+4.5,100", b"4,15,.5,100", b"5,16,4E0,7"]
    content = b"userId,movieId,rating,timestamp\n" + b"\n".join([*good, *NOT_EXACTLY_NUMBERS])
    path = write(tmp_path, "ratings.csv", content + b"\n")
    parsed = parse_csv(spark, path, RATINGS, batch_id="b")
    reasons = {r.line.encode(): r.reason for r in parsed.quarantine.collect()}
    assert reasons == {line: reason for line, reason in NOT_EXACTLY_NUMBERS.items()}
    # Signs and exponents are decimal notation for a double: loaded as written (Silver
    # then sets an off-scale rating aside with its reason).
    loaded = sorted((r.userId, r.rating, r.timestamp) for r in parsed.rows.collect())
    assert loaded == [(1, 4.0, 100), (2, -1.0, 100), (3, 4.5, 100), (4, 0.5, 100), (5, 4.0, 7)]
    assert parsed.counts["kept"] + len(reasons) + 1 == parsed.input_lines


def test_quoted_titles_with_commas_and_non_ascii(spark, tmp_path):
    content = (
        "movieId,title,genres\n"
        '1,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",Drama|Sci-Fi\n'
        '2,"Shawshank Redemption, The (1994)",Crime|Drama\n'
        "3,Li'l Quinquin ,(no genres listed)\n"
    ).encode()
    parsed = parse_csv(spark, write(tmp_path, "movies.csv", content), MOVIES, batch_id="b")
    titles = {r.movieId: r.title for r in parsed.rows.collect()}
    assert titles[1] == "City of Lost Children, The (Cité des enfants perdus, La) (1995)"
    assert titles[3] == "Li'l Quinquin "  # kept as-is in Bronze
    assert parsed.quarantine.count() == 0


def test_doubled_quotes_follow_rfc_4180(spark, tmp_path):
    """ml-latest has titles that open with a quote: the field then starts with three."""
    content = (
        b"movieId,title,genres\n"
        b'1,"""Great Performances"" Cats (1998)",Musical\n'
        b'2,"Sweet ""Empire"" City (1999)",Drama\n'
        b"3,Back\\slash (2000),Drama\n"
    )
    parsed = parse_csv(spark, write(tmp_path, "movies.csv", content), MOVIES, batch_id="b")
    assert parsed.quarantine.count() == 0
    titles = {r.movieId: r.title for r in parsed.rows.collect()}
    assert titles == {
        1: '"Great Performances" Cats (1998)',
        2: 'Sweet "Empire" City (1999)',
        3: "Back\\slash (2000)",
    }


def test_imdb_id_keeps_its_zero_padding(spark, tmp_path):
    path = write(tmp_path, "links.csv", b"movieId,imdbId,tmdbId\n1,0114709,862\n2,0113497,\n")
    parsed = parse_csv(spark, path, BRONZE_TABLES["links"], batch_id="b")
    got = sorted((r.movieId, r.imdbId, r.tmdbId) for r in parsed.rows.collect())
    assert got == [(1, "0114709", 862), (2, "0113497", None)]


def test_wrong_header_is_a_clear_error(spark, tmp_path):
    path = write(tmp_path, "ratings.csv", b"movieId,userId,rating,timestamp\n1,2,3.0,4\n")
    with pytest.raises(BronzeFormatError, match="expected 'userId,movieId,rating,timestamp'"):
        parse_csv(spark, path, RATINGS, batch_id="b")


def test_byte_order_mark_and_crlf_are_tolerated(spark, tmp_path):
    path = write(
        tmp_path, "ratings.csv", b"\xef\xbb\xbfuserId,movieId,rating,timestamp\r\n1,2,3.0,4\r\n"
    )
    parsed = parse_csv(spark, path, RATINGS, batch_id="b")
    assert parsed.counts == {"header": 1, "blank": 0, "kept": 1}
    assert parsed.rows.first().timestamp == 4


def test_absent_file_gives_empty_tables_with_schema(spark):
    empty = empty_bronze(spark, BRONZE_TABLES["genome_tags"])
    assert empty.rows.count() == 0 and empty.quarantine.count() == 0
    assert empty.rows.schema == bronze_schema(BRONZE_TABLES["genome_tags"])
    assert empty.input_lines == 0


def test_lines_ended_by_a_bare_carriage_return_load(spark, tmp_path):
    """Classic Mac line ends (CR only): Spark's reader splits on them, and so does the
    header check, which used to read the whole file as one line."""
    lines = [b"userId,movieId,rating,timestamp"] + [
        b"%d,%d,3.5,1260759144" % (u, m) for u in range(1, 40) for m in range(1, 40)
    ]
    path = write(tmp_path, "ratings.csv", b"\r".join(lines) + b"\r")
    parsed = parse_csv(spark, path, RATINGS, batch_id="b")
    assert parsed.counts == {"header": 1, "blank": 0, "kept": len(lines) - 1}


def test_a_file_without_line_breaks_gets_a_short_error(spark, tmp_path):
    path = write(tmp_path, "ratings.csv", b"userId,movieId,rating,timestamp;" * 100_000)
    with pytest.raises(BronzeFormatError) as error:
        parse_csv(spark, path, RATINGS, batch_id="b")
    message = str(error.value)
    assert "no line break in its first 4,096 bytes" in message and len(message) < 400
    long_header = write(tmp_path, "movies.csv", b"x" * 3000 + b"\n1,a,b\n")
    with pytest.raises(BronzeFormatError) as error:
        parse_csv(spark, long_header, MOVIES, batch_id="b")
    assert len(str(error.value)) < 400


def test_app_ratings_quarantine_rows_that_break_the_tables_contract(spark):
    """A removal (null rating) is kept for Silver; a row without a key or a time, of a
    user outside the app's range (a release user cannot be written as), or with an id
    past 32 bits, is quarantined."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    events = spark.createDataFrame(
        [
            (1_000_000_000, 1, 4.0, now, "s", "v1"),
            (1_000_000_000, 2, None, now, "s", "v1"),
            (510, 1, 5.0, now, "batch", None),
            (None, 1, 3.0, now, "s", "v1"),
            (1_000_000_001, None, 3.0, now, "s", "v1"),
            (1_000_000_001, 3, 3.0, None, "s", "v1"),
            (5_000_000_000, 3, 3.0, now, "batch", None),
        ],
        "userId long, movieId long, rating double, rated_at timestamp, session string, "
        "serving_version string",
    )
    parsed = split_app_ratings(events, source="app/ratings@v3", batch_id="run-1")
    assert sorted((r.movieId, r.rating) for r in parsed.rows.collect()) == [(1, 4.0), (2, None)]
    assert {r.reason for r in parsed.quarantine.collect()} == {
        NOT_AN_APP_USER,
        "missing userId",
        "missing movieId",
        "missing rated_at",
        "userId above 2147483647",
    }
    assert parsed.counts == {
        KEPT: 2,
        QUARANTINED + NOT_AN_APP_USER: 1,
        QUARANTINED + "missing userId": 1,
        QUARANTINED + "missing movieId": 1,
        QUARANTINED + "missing rated_at": 1,
        QUARANTINED + "userId above 2147483647": 1,
    }
    assert parsed.rows.first().source_file == "app/ratings@v3"
    parsed.release()

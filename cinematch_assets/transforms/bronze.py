"""Bronze: MovieLens CSVs as-is, with explicit schemas, ingest metadata and a quarantine.

Each line is parsed by Spark's CSV parser (`from_csv`) against an all-string schema,
then cast to the explicit types. A line that does not parse, has the wrong number of
fields, carries a value that is not exactly of its type (`NUMBER_SYNTAX`), lacks a key or
is not valid UTF-8 goes to the quarantine with the raw line and the reason.
Input lines = kept rows + dropped lines per reason (the header, blank lines, and each
quarantine reason), in the vocabulary of `reconcile`: nothing vanishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cinematch_assets.storage.app_ratings import APP_USERS_FROM, INT32_MAX
from cinematch_assets.transforms.reconcile import KEPT

CORRUPT = "_corrupt_record"
CSV_OPTIONS = {
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": CORRUPT,
    # RFC 4180, as GroupLens writes it: a quote inside a quoted field is doubled
    # ("""Great Performances"" Cats (1998)"). Spark's default escape is a backslash.
    "escape": '"',
}


@dataclass(frozen=True)
class CsvTable:
    """One MovieLens CSV file and its Bronze table."""

    name: str
    schema: T.StructType
    keys: tuple[str, ...]

    @property
    def file_name(self) -> str:
        return f"{self.name.replace('_', '-')}.csv"

    @property
    def header(self) -> str:
        return ",".join(self.schema.fieldNames())


def _schema(*fields: tuple[str, T.DataType]) -> T.StructType:
    return T.StructType([T.StructField(name, dtype, True) for name, dtype in fields])


INT, LONG, DOUBLE, STRING = T.IntegerType(), T.LongType(), T.DoubleType(), T.StringType()

BRONZE_TABLES: dict[str, CsvTable] = {
    table.name: table
    for table in (
        CsvTable(
            "ratings",
            _schema(("userId", INT), ("movieId", INT), ("rating", DOUBLE), ("timestamp", LONG)),
            keys=("userId", "movieId"),
        ),
        CsvTable(
            "movies", _schema(("movieId", INT), ("title", STRING), ("genres", STRING)), ("movieId",)
        ),
        CsvTable(
            "tags",
            _schema(("userId", INT), ("movieId", INT), ("tag", STRING), ("timestamp", LONG)),
            keys=("userId", "movieId"),
        ),
        # imdbId stays a string: its zero padding ("0114709") is part of the identifier.
        CsvTable(
            "links", _schema(("movieId", INT), ("imdbId", STRING), ("tmdbId", INT)), ("movieId",)
        ),
        CsvTable(
            "genome_scores",
            _schema(("movieId", INT), ("tagId", INT), ("relevance", DOUBLE)),
            keys=("movieId", "tagId"),
        ),
        CsvTable("genome_tags", _schema(("tagId", INT), ("tag", STRING)), keys=("tagId",)),
    )
}

# A number is loaded only as written, never repaired: Spark's casts trim spaces and control
# characters (a NUL byte from a damaged file would vanish). Integers (ids and Unix times)
# are plain digits; doubles are decimal notation with an optional sign and exponent.
# `\z` is the very end: `$` would also accept a trailing line break.
_DIGITS = r"\A[0-9]+\z"
NUMBER_SYNTAX: dict[T.DataType, str] = {
    INT: _DIGITS,
    LONG: _DIGITS,
    DOUBLE: r"\A[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\z",
}

INGEST_FIELDS = _schema(
    ("ingest_time", T.TimestampType()), ("source_file", STRING), ("batch_id", STRING)
)
QUARANTINE_SCHEMA = T.StructType(
    _schema(("line", STRING), ("reason", STRING)).fields + INGEST_FIELDS.fields
)


def bronze_schema(table: CsvTable) -> T.StructType:
    return T.StructType(table.schema.fields + INGEST_FIELDS.fields)


# A quarantined line's outcome: this prefix and the reason.
QUARANTINED = "quarantined: "


class BronzeFormatError(ValueError):
    """The file is not the MovieLens CSV it claims to be (wrong header)."""


# A MovieLens header is a few dozen bytes; reading more than this for it means the file
# has no line break where one belongs.
HEADER_BYTES = 4096


def read_header(path: Path) -> str | None:
    """The first line, ended by LF, CRLF or a bare CR (Spark's text reader splits on all
    three); None when the first HEADER_BYTES bytes hold no line end at all."""
    with path.open("rb") as handle:
        start = handle.read(HEADER_BYTES)
    text = start.decode("utf-8", errors="replace").lstrip("\ufeff")
    ends = [at for at in (text.find("\n"), text.find("\r")) if at >= 0]
    if not ends:
        return text if len(start) < HEADER_BYTES else None
    return text[: min(ends)]


def check_header(path: Path, table: CsvTable) -> None:
    header = read_header(path)
    if header is None:
        with path.open("rb") as handle:
            start = handle.read(60)
        raise BronzeFormatError(
            f"{path.name}: no line break in its first {HEADER_BYTES:,} bytes, so no header "
            f"line (it starts {start!r}); expected {table.header!r}."
        )
    if header != table.header:
        shown = header if len(header) <= 200 else header[:200] + "..."
        raise BronzeFormatError(
            f"{path.name}: header is {shown!r}, expected {table.header!r}. "
            "Is this a MovieLens export? Columns must be in this order."
        )


@dataclass(frozen=True)
class BronzeParse:
    """A parsed CSV: the loaded rows, the quarantine and the line accounting.

    The parse is cached so that counting and the two writes read the file once; call
    `release()` when both tables are written.
    """

    rows: DataFrame
    quarantine: DataFrame
    counts: dict[str, int]
    cached: DataFrame | None = None

    @property
    def input_lines(self) -> int:
        return sum(self.counts.values())

    @property
    def quarantined(self) -> int:
        return sum(n for outcome, n in self.counts.items() if outcome.startswith(QUARANTINED))

    def release(self) -> None:
        if self.cached is not None:
            self.cached.unpersist()


def _reason(parsed: Column, line: Column, table: CsvTable) -> Column:
    """Why a line is quarantined (the first problem found), or null for a good line."""
    problems = [
        # Spark keeps undecodable bytes as they are: test the bytes, not for U+FFFD.
        F.when(~F.is_valid_utf8(line), F.lit("invalid UTF-8")),
        F.when(
            parsed[CORRUPT].isNotNull(),
            F.lit(f"expected {len(table.schema)} fields ({table.header}) or bad quoting"),
        ),
    ]
    for field in table.schema:
        if field.dataType != STRING:
            raw = parsed[field.name]
            exact = (
                raw.rlike(NUMBER_SYNTAX[field.dataType]) & raw.try_cast(field.dataType).isNotNull()
            )
            problems.append(
                F.when(
                    raw.isNotNull() & ~exact,
                    F.concat(F.lit(f"{field.name} is not {field.dataType.simpleString()}: "), raw),
                )
            )
    problems += [F.when(parsed[key].isNull(), F.lit(f"missing {key}")) for key in table.keys]
    return F.coalesce(*problems)


def parse_csv(spark: SparkSession, path: Path, table: CsvTable, *, batch_id: str) -> BronzeParse:
    """Parse one MovieLens CSV into Bronze rows and quarantined lines."""
    check_header(path, table)
    strings = T.StructType(
        [T.StructField(f.name, STRING) for f in table.schema] + [T.StructField(CORRUPT, STRING)]
    )
    fields = F.from_csv("line", strings.simpleString(), CSV_OPTIONS)
    # A byte-order mark may precede the header (files saved by some editors).
    kind = (
        F.when(F.regexp_replace("line", "^\ufeff", "") == table.header, F.lit("header"))
        .when(F.col("line") == "", F.lit("blank"))
        .otherwise(F.lit("data"))
    )
    reason = _reason(F.col("fields"), F.col("line"), table)
    # Cached, so that the expensive parse runs once; otherwise Spark's optimizer inlines
    # `fields` into every filter and column that uses it and parses each line ~10 times.
    parsed = (
        spark.read.text(str(path))
        .select(F.col("value").alias("line"))
        .select("line", kind.alias("kind"), fields.alias("fields"))
        .select(
            "kind",
            reason.alias("reason"),
            *[F.col("fields")[f.name].try_cast(f.dataType).alias(f.name) for f in table.schema],
            F.when(reason.isNotNull(), F.make_valid_utf8("line")).alias("line"),
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    counts = _line_counts(parsed)
    data = parsed.filter(F.col("kind") == "data")
    # One ingest time for both tables of this batch.
    ingest = [
        F.lit(datetime.now(UTC)).alias("ingest_time"),
        F.lit(path.name).alias("source_file"),
        F.lit(batch_id).alias("batch_id"),
    ]
    return BronzeParse(
        rows=data.filter(F.col("reason").isNull()).select(*table.schema.fieldNames(), *ingest),
        quarantine=data.filter(F.col("reason").isNotNull()).select("line", "reason", *ingest),
        counts=counts,
        cached=parsed,
    )


def _line_counts(parsed: DataFrame) -> dict[str, int]:
    """Lines per outcome (`reconcile.reason_counts`' shape): kept, and dropped as header,
    blank, or one entry per quarantine reason (`QUARANTINED` + the reason)."""
    outcome = (
        F.when(F.col("kind") != "data", F.col("kind"))
        .when(F.col("reason").isNull(), F.lit(KEPT))
        .otherwise(F.concat(F.lit(QUARANTINED), F.col("reason")))
    )
    # Type errors quote the offending value: group them by column so counts stay readable.
    grouped = F.regexp_replace(outcome, r"^(quarantined: \S+ is not \S+):.*$", "$1")
    counts = {
        row["outcome"]: row["count"]
        for row in parsed.groupBy(grouped.alias("outcome")).count().collect()
    }
    return {"header": 0, "blank": 0, KEPT: 0, **counts}


def empty_bronze(spark: SparkSession, table: CsvTable) -> BronzeParse:
    """A file this MovieLens variant does not ship: empty tables that keep the schema."""
    return BronzeParse(
        rows=spark.createDataFrame([], bronze_schema(table)),
        quarantine=spark.createDataFrame([], QUARANTINE_SCHEMA),
        counts={"header": 0, "blank": 0, KEPT: 0},
    )


# ----------------------------------------------------------------- the app's ratings

APP_RATINGS_SCHEMA = _schema(
    ("userId", LONG),
    ("movieId", LONG),
    ("rating", DOUBLE),
    ("rated_at", T.TimestampType()),
    ("session", STRING),
    ("serving_version", STRING),
)
APP_QUARANTINE_SCHEMA = T.StructType(
    APP_RATINGS_SCHEMA.fields + [T.StructField("reason", STRING)] + INGEST_FIELDS.fields
)
NOT_AN_APP_USER = f"userId below the app's range (from {APP_USERS_FROM})"


def split_app_ratings(events: DataFrame, *, source: str, batch_id: str) -> BronzeParse:
    """The app's ratings table (`storage.app_ratings`, or any writer with its columns) as
    Bronze rows and a quarantine: a row without a user, movie or time, whose user is not
    an app user (the release's users are read-only), or with an id past 32 bits, is
    quarantined with its reason.
    A null rating (a removal) is kept: Silver applies it."""
    reason = F.coalesce(
        *[
            F.when(F.col(c).isNull(), F.lit(f"missing {c}"))
            for c in ("userId", "movieId", "rated_at")
        ],
        F.when(F.col("userId") < APP_USERS_FROM, F.lit(NOT_AN_APP_USER)),
        # Silver keeps ids as 32-bit ints, as the release and Spark's ALS have them.
        *[
            F.when(F.col(c) > INT32_MAX, F.lit(f"{c} above {INT32_MAX}"))
            for c in ("userId", "movieId")
        ],
    )
    marked = events.select(
        *[F.col(f.name).cast(f.dataType).alias(f.name) for f in APP_RATINGS_SCHEMA],
        reason.alias("reason"),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    outcome = F.when(F.col("reason").isNull(), F.lit(KEPT)).otherwise(
        F.concat(F.lit(QUARANTINED), F.col("reason"))
    )
    counts = {
        KEPT: 0,
        **{
            r["outcome"]: r["count"]
            for r in marked.groupBy(outcome.alias("outcome")).count().collect()
        },
    }
    ingest = [
        F.lit(datetime.now(UTC)).alias("ingest_time"),
        F.lit(source).alias("source_file"),
        F.lit(batch_id).alias("batch_id"),
    ]
    return BronzeParse(
        rows=marked.filter(F.col("reason").isNull()).select(
            *APP_RATINGS_SCHEMA.fieldNames(), *ingest
        ),
        quarantine=marked.filter(F.col("reason").isNotNull()).select(
            *APP_RATINGS_SCHEMA.fieldNames(), "reason", *ingest
        ),
        counts=counts,
        cached=marked,
    )

"""Fuzzing the type decisions: Postgres column mapping and text-column inference.

``type_mapping.map_column`` must return a usable Arrow type for any catalog
description; ``numeric_precision_scale`` must decode typmods exactly as PostgreSQL
does (checked against the server's ``numerictypmodin``/``format_type``);
``text_types.convert(values, infer_type(values))`` must never raise ``Widen`` and
must keep every value (no leading zero lost, no rounding).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from platform_assets.ingestion.files.text_types import (
    TIMESTAMP,
    TIMESTAMP_UTC,
    convert,
    infer_type,
)
from platform_assets.ingestion.postgres import catalog as pg_catalog
from platform_assets.ingestion.postgres.type_mapping import (
    MAX_DECIMAL128_PRECISION,
    Conversion,
    PgColumn,
    SelectAs,
    arrow_schema,
    map_column,
    numeric_precision_scale,
)
from platform_resources.config import PostgresSettings
from tests.security._fuzz import FUZZ
from tests.security._typed import KIND_VALUES, typed_value_matches

PG_TYPES = [
    "bool", "int2", "int4", "int8", "oid", "float4", "float8", "numeric", "money", "date", "time", "timetz",
    "timestamp", "timestamptz", "interval", "text", "varchar", "bpchar", "char", "name", "citext", "uuid",
    "json", "jsonb", "xml", "bytea", "inet", "cidr", "macaddr", "bit", "varbit", "tsvector", "point", "_int4",
    "_text", "_numeric", "_jsonb", "int4range", "hstore", "geometry", "my_enum", "record", "unknown", "void",
]
NO_SURROGATES = st.characters(blacklist_categories=("Cs",))
NAMES = st.one_of(st.sampled_from(PG_TYPES), st.text(alphabet=NO_SURROGATES, max_size=10))

COLUMNS = st.builds(
    PgColumn,
    name=st.text(alphabet=NO_SURROGATES, max_size=10),
    type_name=NAMES,
    declared_type=st.text(alphabet=NO_SURROGATES, max_size=20),
    position=st.integers(min_value=1, max_value=1600),
    nullable=st.booleans(),
    type_category=st.sampled_from(["", "A", "B", "N", "S", "U", "D"]),
    element_type_name=st.one_of(st.none(), NAMES),
    precision=st.one_of(st.none(), st.integers(min_value=-(2**31), max_value=2**31)),
    scale=st.one_of(st.none(), st.integers(min_value=-(2**31), max_value=2**31)),
)


@FUZZ
@given(COLUMNS)
@example(PgColumn("n", "numeric", "numeric(5,-2)", 1, precision=5, scale=-2))
@example(PgColumn("n", "numeric", "numeric(2,5)", 1, precision=2, scale=5))
@example(PgColumn("n", "numeric", "numeric(39,0)", 1, precision=39, scale=0))
@example(PgColumn("n", "numeric", "numeric(0,0)", 1, precision=0, scale=0))
@example(PgColumn("a", "_int4", "integer[]", 1, element_type_name="int4"))
@example(PgColumn("a", "int4", "int4", 1, element_type_name="text"))
def test_map_column_always_returns_a_usable_type(column):
    mapping = map_column(column)
    assert isinstance(mapping.arrow_type, pa.DataType) and isinstance(mapping.read_type, pa.DataType)
    schema = arrow_schema([mapping])  # the Parquet schema can be built
    assert schema.field(0).name == column.name
    if pa.types.is_decimal(mapping.arrow_type):
        assert column.type_name == "numeric"
        assert 0 < mapping.arrow_type.precision <= MAX_DECIMAL128_PRECISION
        assert 0 <= mapping.arrow_type.scale <= mapping.arrow_type.precision
        assert (mapping.arrow_type.precision, mapping.arrow_type.scale) == (column.precision, column.scale)
    if column.type_name == "numeric" and not pa.types.is_decimal(mapping.arrow_type):
        assert mapping.arrow_type == pa.string()  # kept as exact text, never a float
    if mapping.conversion is Conversion.HEX_TO_BINARY:
        assert column.type_name == "bytea" and mapping.arrow_type == pa.binary()
    if mapping.select_as is SelectAs.ARRAY_TO_JSON:
        assert pa.types.is_list(mapping.arrow_type) and mapping.read_type == pa.string()
    if mapping.conversion is Conversion.NONE:
        assert mapping.read_type == mapping.arrow_type


# --------------------------------------------------------------------------- numeric typmods


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    """A read-only session on the server's default database (nothing is written)."""
    conn = PostgresSettings.from_env().connect(application_name="data_platform:fuzz")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET default_transaction_read_only = on")
    yield conn
    conn.close()


def server_typmod(server: Any, modifiers: list[int]) -> int:
    with server.cursor() as cur:
        cur.execute("SELECT numerictypmodin(%s::cstring[])", ([str(m) for m in modifiers],))
        return cur.fetchone()[0]


def server_format(server: Any, typmod: int) -> tuple[int, int] | None:
    with server.cursor() as cur:
        cur.execute("SELECT format_type('numeric'::regtype, %s)", (typmod,))
        text = cur.fetchone()[0]
    match = re.fullmatch(r"numeric\((-?\d+),(-?\d+)\)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


@FUZZ
@given(st.integers(min_value=1, max_value=1000), st.one_of(st.none(), st.integers(min_value=-1000, max_value=1000)))
@example(1, 0)
@example(1000, 1000)
@example(1000, -1000)
@example(38, 38)
@example(5, -2)
@example(2, 5)
def test_numeric_typmod_decoding_matches_postgres(server, precision, scale):
    typmod = server_typmod(server, [precision] if scale is None else [precision, scale])
    expected = (precision, 0 if scale is None else scale)
    assert numeric_precision_scale(typmod) == expected == server_format(server, typmod)
    mapping = map_column(PgColumn("n", "numeric", "numeric", 1, precision=expected[0], scale=expected[1]))
    is_decimal = 0 <= expected[1] <= expected[0] <= MAX_DECIMAL128_PRECISION
    assert mapping.arrow_type == (pa.decimal128(*expected) if is_decimal else pa.string())


@FUZZ
@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
@example(-1)
@example(0)
@example(3)
@example(4)
@example(2**31 - 1)
def test_any_typmod_decodes_like_format_type(server, typmod):
    decoded = numeric_precision_scale(typmod)
    if typmod < 4:
        assert decoded is None  # -1: unconstrained; 0..3 are never produced by numerictypmodin
    else:
        assert decoded == server_format(server, typmod)


def describe(select: str) -> list[PgColumn]:
    conn = PostgresSettings.from_env().connect(application_name="data_platform:fuzz")
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN READ ONLY")
            columns = pg_catalog.describe_query(cur, select, "fuzz")
            cur.execute("ROLLBACK")
    finally:
        conn.close()
    return columns


def test_describe_query_reads_numeric_precision_and_scale_from_postgres():
    cases = [(2, 5), (10, 2), (38, 38), (39, 0), (1000, 0)]
    select = ", ".join(f"NULL::numeric({p},{s}) AS n{i}" for i, (p, s) in enumerate(cases))
    columns = describe(f"SELECT {select}, NULL::numeric AS free")
    assert [(c.precision, c.scale) for c in columns] == [*cases, (None, None)]
    assert [map_column(c).arrow_type for c in columns] == [
        pa.string(), pa.decimal128(10, 2), pa.decimal128(38, 38), pa.string(), pa.string(), pa.string()
    ]


def test_describe_query_reads_negative_numeric_scale():
    [column] = describe("SELECT NULL::numeric(5,-2) AS n")
    assert (column.precision, column.scale) == (5, -2)


# --------------------------------------------------------------------------- text columns

YEAR_ZERO = re.compile(r"0000-[0-9]{2}-[0-9]{2}")
ANY_TEXT = st.text(alphabet=st.one_of(st.sampled_from(list("0123456789+-.eEnaifTtrueFALSZ :-")), NO_SURROGATES),
                   max_size=12)


@st.composite
def text_columns(draw: st.DrawFn) -> list[str | None]:
    kind = draw(st.sampled_from(["any", "any", "mixed", *KIND_VALUES]))
    if kind == "any":
        values = ANY_TEXT
    elif kind == "mixed":
        values = st.one_of(ANY_TEXT, *KIND_VALUES.values())
    else:
        values = KIND_VALUES[kind]
    return draw(st.lists(st.one_of(st.none(), values, values, values), max_size=10))


@FUZZ
@given(text_columns())
@example(["007", "1"])
@example(["-0", "+5", "12"])
@example(["9223372036854775807", "-9223372036854775808"])
@example(["9223372036854775808"])
@example(["1e400", "0.1"])
@example(["nan", "inf", "-Infinity"])
@example(["2024-02-30"])
@example(["2024-01-01 23:59:60"])
@example(["2024-01-01T10:00+05:30", "2024-01-01T10:00Z"])
@example(["2024-01-01T10:00", "2024-01-01T10:00Z"])
@example(["TRUE", "false", None])
@example([None, None])
@example(["", "1"])
def test_inferred_type_converts_every_value_exactly(values):
    if any(v is not None and YEAR_ZERO.match(v) for v in values):
        return  # year 0000: the known bug of test_csv_with_year_zero_date_fails_cleanly (test_fuzz_csv)
    array = pa.array(values, pa.string())
    arrow_type = infer_type(array)
    converted = convert(array, arrow_type, "c")  # never raises Widen
    assert converted.type == arrow_type and len(converted) == len(values)
    for text, actual in zip(values, converted.to_pylist()):
        if text is None:
            assert actual is None
            continue
        assert actual is not None and typed_value_matches(text, actual, arrow_type), (arrow_type, text, actual)
        if arrow_type == pa.int64():
            # back to text: the same number, and the text had no leading zero to lose
            assert str(actual) == text.lstrip("+") or text in ("-0", "+0")
        if arrow_type == pa.string():
            assert actual == text
    if arrow_type in (TIMESTAMP, TIMESTAMP_UTC):
        assert pc_min_max_ok(converted)


def pc_min_max_ok(array: pa.Array) -> bool:
    """Timestamps convert to values Python can represent (no silent overflow)."""
    return all(v is None or 1 <= v.year <= 9999 for v in array.to_pylist())

"""Unit tests for platform_assets.ingestion.postgres.type_mapping (catalog type -> Arrow type)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from platform_assets.ingestion.postgres.type_mapping import (
    MAX_DECIMAL128_PRECISION,
    ColumnMapping,
    Conversion,
    PgColumn,
    SelectAs,
    arrow_schema,
    map_column,
    numeric_precision_scale,
)


def col(
    type_name: str,
    *,
    name: str = "c",
    declared: str | None = None,
    element: str | None = None,
    precision: int | None = None,
    scale: int | None = None,
    nullable: bool = True,
    position: int = 1,
) -> PgColumn:
    return PgColumn(
        name=name,
        type_name=type_name,
        declared_type=declared or type_name,
        position=position,
        nullable=nullable,
        element_type_name=element,
        precision=precision,
        scale=scale,
    )


# --------------------------------------------------------------------------- scalars

EXACT_SCALARS = [
    ("bool", pa.bool_()),
    ("int2", pa.int16()),
    ("int4", pa.int32()),
    ("int8", pa.int64()),
    ("oid", pa.int64()),  # unsigned 32-bit: needs int64
    ("float4", pa.float32()),
    ("float8", pa.float64()),
    ("date", pa.date32()),
    ("time", pa.time64("us")),
    ("timestamp", pa.timestamp("us")),
    ("timestamptz", pa.timestamp("us", tz="UTC")),
]

TEXT_LIKE = ["text", "varchar", "bpchar", "char", "name", "citext", "uuid", "json", "jsonb", "xml"]


@pytest.mark.parametrize(("type_name", "expected"), EXACT_SCALARS, ids=[t for t, _ in EXACT_SCALARS])
def test_scalar_types_map_to_their_exact_arrow_type(type_name: str, expected: pa.DataType) -> None:
    m = map_column(col(type_name))
    assert m.arrow_type == expected
    assert m.read_type == expected  # parsed straight from CSV as the final type
    assert m.select_as is SelectAs.PLAIN
    assert m.conversion is Conversion.NONE
    assert m.lossless_text is False


def test_timestamp_kinds_differ_only_by_timezone() -> None:
    naive = map_column(col("timestamp")).arrow_type
    aware = map_column(col("timestamptz")).arrow_type
    assert naive.tz is None
    assert aware.tz == "UTC"
    assert naive.unit == aware.unit == "us"


@pytest.mark.parametrize("type_name", TEXT_LIKE)
def test_text_like_types_are_strings_but_not_flagged_lossless_text(type_name: str) -> None:
    m = map_column(col(type_name))
    assert m.arrow_type == pa.string()
    assert m.read_type == pa.string()
    assert m.select_as is SelectAs.PLAIN
    assert m.conversion is Conversion.NONE
    # these *are* text: keeping their text form is not a fallback
    assert m.lossless_text is False


@pytest.mark.parametrize(
    "type_name",
    [
        "interval",
        "money",
        "inet",
        "cidr",
        "macaddr",
        "timetz",
        "point",
        "tsvector",
        "bit",
        "varbit",
        "int4range",
        "tstzrange",
        "hstore",
        "my_enum",
    ],
)
def test_unknown_types_keep_their_postgres_text_form(type_name: str) -> None:
    m = map_column(col(type_name))
    assert m.arrow_type == pa.string()
    assert m.read_type == pa.string()
    assert m.select_as is SelectAs.PLAIN
    assert m.conversion is Conversion.NONE
    assert m.lossless_text is True


# --------------------------------------------------------------------------- numeric


@pytest.mark.parametrize(
    ("precision", "scale"),
    [(10, 2), (1, 0), (5, 5), (18, 4), (38, 0), (38, 38), (MAX_DECIMAL128_PRECISION, 10)],
)
def test_constrained_numeric_maps_to_decimal128(precision: int, scale: int) -> None:
    m = map_column(col("numeric", declared=f"numeric({precision},{scale})", precision=precision, scale=scale))
    assert m.arrow_type == pa.decimal128(precision, scale)
    assert m.read_type == pa.decimal128(precision, scale)
    assert m.conversion is Conversion.NONE
    assert m.select_as is SelectAs.PLAIN
    assert m.lossless_text is False


@pytest.mark.parametrize(
    ("precision", "scale"),
    [
        pytest.param(None, None, id="unconstrained"),
        pytest.param(10, None, id="scale-missing"),
        pytest.param(None, 2, id="precision-missing"),
        pytest.param(39, 2, id="precision-39"),
        pytest.param(1000, 10, id="precision-1000"),
        pytest.param(5, -2, id="negative-scale"),
        pytest.param(3, 5, id="scale-above-precision"),
        pytest.param(0, 0, id="precision-0"),
    ],
)
def test_numeric_without_a_decimal128_twin_is_kept_as_text(
    precision: int | None, scale: int | None
) -> None:
    m = map_column(col("numeric", precision=precision, scale=scale))
    assert m.arrow_type == pa.string()
    assert m.read_type == pa.string()
    assert m.conversion is Conversion.NONE
    assert m.lossless_text is True


def test_max_decimal128_precision_is_38() -> None:
    assert MAX_DECIMAL128_PRECISION == 38


# --------------------------------------------------------------------------- bytea


def test_bytea_is_read_as_hex_text_then_converted_to_binary() -> None:
    m = map_column(col("bytea"))
    assert m.arrow_type == pa.binary()
    assert m.read_type == pa.string()
    assert m.conversion is Conversion.HEX_TO_BINARY
    assert m.select_as is SelectAs.PLAIN
    assert m.lossless_text is False


# --------------------------------------------------------------------------- arrays

LIST_ELEMENTS = [
    ("bool", pa.bool_()),
    ("int2", pa.int16()),
    ("int4", pa.int32()),
    ("int8", pa.int64()),
    ("float4", pa.float32()),
    ("float8", pa.float64()),
    ("text", pa.string()),
    ("varchar", pa.string()),
    ("bpchar", pa.string()),
    ("name", pa.string()),
    ("citext", pa.string()),
    ("uuid", pa.string()),
]


@pytest.mark.parametrize(("element", "item_type"), LIST_ELEMENTS, ids=[e for e, _ in LIST_ELEMENTS])
def test_arrays_of_supported_elements_become_lists_via_json(element: str, item_type: pa.DataType) -> None:
    m = map_column(col(f"_{element}", declared=f"{element}[]", element=element))
    assert m.arrow_type == pa.list_(item_type)
    assert m.read_type == pa.string()  # array_to_json text
    assert m.select_as is SelectAs.ARRAY_TO_JSON
    assert m.conversion is Conversion.JSON_TO_LIST
    assert m.lossless_text is False


@pytest.mark.parametrize(
    "element",
    ["numeric", "date", "timestamp", "timestamptz", "time", "json", "jsonb", "bytea", "interval", "oid", "char", "inet"],
)
def test_arrays_of_unsupported_elements_keep_their_text_form(element: str) -> None:
    m = map_column(col(f"_{element}", declared=f"{element}[]", element=element))
    assert m.arrow_type == pa.string()
    assert m.read_type == pa.string()
    assert m.select_as is SelectAs.PLAIN
    assert m.conversion is Conversion.NONE
    assert m.lossless_text is True


def test_mapping_keeps_the_column() -> None:
    c = col("int4", name="qty", position=7)
    assert map_column(c).column is c


# --------------------------------------------------------------------------- typmod

# typmod = ((precision << 16) | (scale & 0x7ff)) + 4, as numerictypmodin computes it.
TYPMODS = [
    (655366, (10, 2)),
    (2490372, (38, 0)),
    (65540, (1, 0)),
    (196617, (3, 5)),
    (329730, (5, -2)),
    (460803, (7, -1)),
    (65537004, (1000, 1000)),
    (65537052, (1000, -1000)),
]


@pytest.mark.parametrize(("typmod", "expected"), TYPMODS, ids=[f"{p}-{s}" for _, (p, s) in TYPMODS])
def test_numeric_precision_scale_decodes_typmod(typmod: int, expected: tuple[int, int]) -> None:
    assert numeric_precision_scale(typmod) == expected


@pytest.mark.parametrize("typmod", [-1, 0, 1, 2, 3])
def test_numeric_precision_scale_unconstrained(typmod: int) -> None:
    assert numeric_precision_scale(typmod) is None


@pytest.mark.parametrize(
    "args", ["{10,2}", "{38,0}", "{39,2}", "{1}", "{5,-2}", "{3,5}", "{1000,1000}", "{1000,-1000}", "{12,-1000}"]
)
def test_numeric_precision_scale_matches_postgres(fetch, args: str) -> None:
    """Cross-check the decoding against the server's own typmod encoder."""
    [(typmod, formatted)] = fetch(
        "SELECT numerictypmodin(%s::cstring[]), format_type('numeric'::regtype, numerictypmodin(%s::cstring[]))",
        (args, args),
    )
    precision, scale = numeric_precision_scale(typmod)
    assert formatted == f"numeric({precision},{scale})"


# --------------------------------------------------------------------------- schema


def test_arrow_schema_fields_types_nullability_and_pg_type_metadata() -> None:
    columns = [
        col("int8", name="id", declared="bigint", nullable=False, position=1),
        col("varchar", name="label", declared="character varying(20)", position=2),
        col("numeric", name="amount", declared="numeric(10,2)", precision=10, scale=2, position=3),
        col("_int4", name="tags", declared="integer[]", element="int4", position=4),
        col("interval", name="age", declared="interval", nullable=False, position=5),
    ]
    schema = arrow_schema([map_column(c) for c in columns])

    assert schema.names == ["id", "label", "amount", "tags", "age"]
    assert [f.type for f in schema] == [
        pa.int64(),
        pa.string(),
        pa.decimal128(10, 2),
        pa.list_(pa.int32()),
        pa.string(),
    ]
    assert [f.nullable for f in schema] == [False, True, True, True, False]
    assert [f.metadata for f in schema] == [
        {b"pg_type": b"bigint"},
        {b"pg_type": b"character varying(20)"},
        {b"pg_type": b"numeric(10,2)"},
        {b"pg_type": b"integer[]"},
        {b"pg_type": b"interval"},
    ]
    assert schema.metadata is None


def test_arrow_schema_metadata_is_utf8_encoded() -> None:
    schema = arrow_schema([map_column(col("my_enum", name="état", declared="schéma.état"))])
    assert schema.field("état").metadata == {b"pg_type": "schéma.état".encode()}


def test_arrow_schema_of_no_columns_is_empty() -> None:
    assert arrow_schema([]) == pa.schema([])


def test_arrow_schema_uses_the_final_type_not_the_read_type() -> None:
    m = map_column(col("bytea", name="blob", declared="bytea"))
    assert isinstance(m, ColumnMapping)
    assert arrow_schema([m]).field("blob").type == pa.binary()

"""PostgreSQL-to-Arrow type mapping, decided from the catalog, never from data.

Rows are extracted with ``COPY (SELECT ...) TO STDOUT (FORMAT text)`` and parsed by
``pyarrow.csv`` with an explicit type per column (see ``copy_reader``). Each column
therefore has three parts: the SQL expression selected, the Arrow type its text is parsed as, and
the final Arrow type (different only where a conversion follows, e.g. bytea hex
text to binary). Types without an exact Arrow twin keep their Postgres text form,
so nothing is rounded or dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pyarrow as pa

MAX_DECIMAL128_PRECISION = 38


class Conversion(str, Enum):
    """How the parsed column becomes the final column."""

    NONE = "none"
    HEX_TO_BINARY = "hex_to_binary"
    JSON_TO_LIST = "json_to_list"


class SelectAs(str, Enum):
    """How a column is written in the extract's SELECT list."""

    PLAIN = "plain"
    ARRAY_TO_JSON = "array_to_json"


@dataclass(frozen=True)
class PgColumn:
    """A result column as the Postgres catalog describes it.

    ``type_name`` is the base type's ``pg_type.typname`` (domains resolved);
    ``element_type_name`` is set for arrays; ``precision``/``scale`` are set for
    constrained ``numeric``.
    """

    name: str
    type_name: str
    declared_type: str
    position: int
    nullable: bool = True
    type_category: str = ""
    element_type_name: str | None = None
    precision: int | None = None
    scale: int | None = None


@dataclass(frozen=True)
class ColumnMapping:
    column: PgColumn
    arrow_type: pa.DataType
    read_type: pa.DataType
    select_as: SelectAs = SelectAs.PLAIN
    conversion: Conversion = Conversion.NONE

    @property
    def lossless_text(self) -> bool:
        """True when the column is kept as its Postgres text form."""
        return self.arrow_type == pa.string() and self.column.type_name not in _TEXT_TYPES


_TEXT_TYPES = frozenset(
    {"text", "varchar", "bpchar", "char", "name", "citext", "uuid", "json", "jsonb", "xml"}
)

_SCALARS: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "oid": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    **{name: pa.string() for name in _TEXT_TYPES},
}

# Array elements whose JSON form converts exactly to an Arrow list item.
_LIST_ELEMENTS: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    **{name: pa.string() for name in ("text", "varchar", "bpchar", "name", "citext", "uuid")},
}


def numeric_precision_scale(typmod: int) -> tuple[int, int] | None:
    """Decode a ``numeric`` typmod into (precision, scale); None when unconstrained."""
    if typmod < 4:
        return None
    packed = typmod - 4
    precision = (packed >> 16) & 0xFFFF
    scale = packed & 0x7FF
    if packed & 0x400:  # negative scales (PG15+) are stored as 11-bit two's complement
        scale -= 0x800
    return precision, scale


def map_column(column: PgColumn) -> ColumnMapping:
    """Return how ``column`` is extracted and typed in Parquet."""
    name = column.type_name
    if name in _SCALARS:
        arrow_type = _SCALARS[name]
        return ColumnMapping(column, arrow_type, arrow_type)
    if name == "numeric":
        return _map_numeric(column)
    if name == "bytea":
        return ColumnMapping(column, pa.binary(), pa.string(), conversion=Conversion.HEX_TO_BINARY)
    if column.element_type_name in _LIST_ELEMENTS:
        return ColumnMapping(
            column,
            pa.list_(_LIST_ELEMENTS[column.element_type_name]),
            pa.string(),
            select_as=SelectAs.ARRAY_TO_JSON,
            conversion=Conversion.JSON_TO_LIST,
        )
    return ColumnMapping(column, pa.string(), pa.string())


def _map_numeric(column: PgColumn) -> ColumnMapping:
    precision, scale = column.precision, column.scale
    if (
        precision is None
        or scale is None
        or not 0 <= scale <= precision
        or not 0 < precision <= MAX_DECIMAL128_PRECISION
    ):
        return ColumnMapping(column, pa.string(), pa.string())
    arrow_type = pa.decimal128(precision, scale)
    return ColumnMapping(column, arrow_type, arrow_type)


def arrow_schema(mappings: list[ColumnMapping]) -> pa.Schema:
    """The Parquet schema of an extract; source types are kept as field metadata."""
    return pa.schema(
        [
            pa.field(
                m.column.name,
                m.arrow_type,
                nullable=m.column.nullable,
                metadata={b"pg_type": m.column.declared_type.encode()},
            )
            for m in mappings
        ]
    )

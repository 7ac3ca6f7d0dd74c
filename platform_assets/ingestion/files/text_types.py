"""Type inference and exact conversion for columns read as text (CSV fields, JSON strings).

CSV fields take every rule below; a top-level JSON string field takes only the date
and timestamp rules (``temporal_type``): JSON has its own numbers and booleans, so a
JSON string ``"007"`` or ``"true"`` stays text.

Rules, applied to the non-null values of a column:

- ``true``/``false`` (any case): ``bool``;
- integers without leading zeros that fit 64 bits: ``int64`` (missing values stay null,
  the column stays integer);
- decimal or exponent numbers without leading zeros (``nan``/``inf`` too): ``float64``;
- ISO dates ``YYYY-MM-DD``: ``date32``;
- ISO timestamps: ``timestamp[us]`` when none carries an offset, ``timestamp[us, UTC]``
  when all do;
- anything else, including numbers with leading zeros (``007``, zip codes): ``string``.

Conversion is strict: a value that does not fit the chosen type raises ``Widen``
so that the reader can restart with that column as text, never truncate or round.
Numbers must be written as the patterns above say (no hexadecimal, no spaces) and
keep their value: a finite number that a float would make infinite (``1e400``) or
zero (``1e-400``), or an integer a float cannot hold exactly (beyond 2^53), does not
fit a float column. Ordinary rounding of a decimal to the nearest float is fine.
"""

from __future__ import annotations

import re
import struct

import pyarrow as pa
import pyarrow.compute as pc

INTEGER = r"^[+-]?(0|[1-9][0-9]*)$"
FLOAT = r"^[+-]?((([1-9][0-9]*|0)?\.[0-9]+|([1-9][0-9]*|0)\.?)([eE][+-]?[0-9]+)?|nan|NaN|inf|Inf|infinity|Infinity)$"
BOOLEAN = r"^(?i:true|false)$"
DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
TIMESTAMP_NAIVE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?$"
TIMESTAMP_ZONED = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
)

INFINITY_TEXT = r"^[+-]?(inf|Inf|infinity|Infinity)$"
ZERO_TEXT = r"^[+-]?0*\.?0*([eE][+-]?[0-9]+)?$"
# Beyond this, a float cannot hold every integer exactly.
EXACT_INTEGER_LIMIT = {32: 2**24, 64: 2**53}

TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")
TIMESTAMP = pa.timestamp("us")

TEMPORAL_RULES: list[tuple[pa.DataType, str]] = [
    (pa.date32(), DATE),
    (TIMESTAMP, TIMESTAMP_NAIVE),
    (TIMESTAMP_UTC, TIMESTAMP_ZONED),
]
# Most specific first: the first rule every value matches decides the type.
_RULES: list[tuple[pa.DataType, str]] = [
    (pa.bool_(), BOOLEAN),
    (pa.int64(), INTEGER),
    (pa.float64(), FLOAT),
    *TEMPORAL_RULES,
]

_PINNABLE: dict[str, pa.DataType] = {
    "string": pa.string(),
    "bool": pa.bool_(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "date": pa.date32(),
    "timestamp": TIMESTAMP,
    "timestamptz": TIMESTAMP_UTC,
}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


class Widen(Exception):
    """A value of ``column`` does not fit its inferred type."""

    def __init__(self, column: str, value: str | None):
        super().__init__(f"column {column!r}: value {value!r} does not fit the inferred type")
        self.column = column
        self.value = value


def parse_pinned_type(name: str) -> pa.DataType:
    """A registry type name (``int64``, ``decimal(12,2)``, ``timestamptz``, ...) as Arrow."""
    text = name.strip().lower()
    if text in _PINNABLE:
        return _PINNABLE[text]
    match = _DECIMAL.match(text)
    if match and 0 < int(match.group(1)) <= 38 and int(match.group(2)) <= int(match.group(1)):
        return pa.decimal128(int(match.group(1)), int(match.group(2)))
    raise ValueError(
        f"unknown column type {name!r}; use one of {sorted(_PINNABLE)} or decimal(p,s) with p <= 38"
    )


def infer_type(values: pa.Array) -> pa.DataType:
    """The narrowest type every non-null value of a text column converts to exactly.

    The number patterns already exclude leading zeros; an integer column too wide
    for int64 stays text rather than becoming an inexact float.
    """
    present = pc.drop_null(values)
    if len(present) == 0:
        return pa.string()
    for arrow_type, pattern in _RULES:
        if pc.all(pc.match_substring_regex(present, pattern)).as_py():
            if _fits(present, arrow_type):
                return arrow_type
            if arrow_type == pa.int64():
                return pa.string()
    return pa.string()


def temporal_type(values: pa.Array) -> pa.DataType | None:
    """``date32`` or a timestamp type when every non-null value is an ISO date or
    timestamp that converts exactly (the CSV rules); None otherwise, or without values."""
    present = pc.drop_null(values)
    if len(present) == 0:
        return None
    for arrow_type, pattern in TEMPORAL_RULES:
        if pc.all(pc.match_substring_regex(present, pattern)).as_py() and _fits(present, arrow_type):
            return arrow_type
    return None


def convert_temporal(values: pa.Array, arrow_type: pa.DataType, column: str) -> pa.Array:
    """``convert`` for a date or timestamp column, holding every value to its ISO pattern
    first: Arrow's cast alone also takes a bare date or an hour-only time into a timestamp."""
    _refuse_unwritten(values, dict(TEMPORAL_RULES)[arrow_type], column)
    return convert(values, arrow_type, column)


def convert_strict(values: pa.Array, arrow_type: pa.DataType, column: str) -> pa.Array:
    """``convert``, with dates and timestamps held to their patterns (``convert_temporal``)."""
    if pa.types.is_date32(arrow_type) or pa.types.is_timestamp(arrow_type):
        return convert_temporal(values, arrow_type, column)
    return convert(values, arrow_type, column)


def _fits(values: pa.Array, arrow_type: pa.DataType) -> bool:
    try:
        convert(values, arrow_type, "")
    except Widen:
        return False
    return True


def convert(values: pa.Array, arrow_type: pa.DataType, column: str) -> pa.Array:
    """Convert a text column exactly, or raise Widen naming the first value that doesn't fit."""
    if arrow_type == pa.string():
        return values
    if pa.types.is_floating(arrow_type):
        _refuse_unwritten(values, FLOAT, column)
    try:
        if arrow_type == pa.bool_():
            return _to_bool(values, column)
        converted = pc.cast(values, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise Widen(column, _first_failing(values, arrow_type)) from e
    if pa.types.is_integer(arrow_type):
        _refuse_unwritten(_not_canonical(values, converted), INTEGER, column)
    if pa.types.is_floating(arrow_type):
        _refuse_changed_values(values, converted, arrow_type, column)
    return converted


def _refuse_unwritten(values: pa.Array, pattern: str, column: str) -> None:
    """Widen unless every value is written as ``pattern`` says (nulls are skipped: a batch
    of nulls only, whose ``all`` is null, fits any type)."""
    written = pc.match_substring_regex(values, pattern)
    if pc.all(written).as_py() is False:
        raise Widen(column, _first(values, pc.invert(written)))


def _not_canonical(values: pa.Array, integers: pa.Array) -> pa.Array:
    """The texts Arrow's cast read as integers that are not those integers as Arrow writes
    them (a sign, leading zeros): only those need the pattern's verdict."""
    return pc.filter(values, pc.not_equal(pc.cast(integers, pa.string()), values))  # drops the nulls


def _refuse_changed_values(values: pa.Array, floats: pa.Array, arrow_type: pa.DataType, column: str) -> None:
    """Widen when a float changed a number: made it infinite or zero, or rounded an integer.

    Only the values whose float is infinite, zero or beyond the exact-integer limit can
    have changed: their text is tested, the rest is not looked at again."""
    zero = _float_scalar(0.0, arrow_type)
    limit = _float_scalar(float(EXACT_INTEGER_LIMIT[arrow_type.bit_width]), arrow_type)
    suspect = pc.or_(pc.equal(floats, zero), pc.greater_equal(pc.abs(floats), limit))
    if not pc.any(suspect).as_py():  # nulls are skipped, and dropped by the filter
        return
    values, floats = pc.filter(values, suspect), pc.filter(floats, suspect)
    overflow = pc.and_(pc.is_inf(floats), pc.invert(pc.match_substring_regex(values, INFINITY_TEXT)))
    underflow = pc.and_(pc.equal(floats, zero), pc.invert(pc.match_substring_regex(values, ZERO_TEXT)))
    inexact = pc.and_(pc.match_substring_regex(values, INTEGER), pc.greater_equal(pc.abs(floats), limit))
    changed = pc.or_(pc.or_(overflow, underflow), inexact)
    if pc.any(changed).as_py():
        raise Widen(column, _first(values, changed))


def _float_scalar(value: float, arrow_type: pa.DataType) -> pa.Scalar:
    """Built from its bytes: ``pa.scalar`` and ``pa.array`` of a Python number make pyarrow
    import pandas (a third of a second and 40 MiB in a fresh process)."""
    raw = struct.pack("<d" if arrow_type.bit_width == 64 else "<f", value)
    return pa.Array.from_buffers(arrow_type, 1, [None, pa.py_buffer(raw)])[0]


def _to_bool(values: pa.Array, column: str) -> pa.Array:
    # Patterns rather than Python scalars: converting a Python value to Arrow makes
    # pyarrow import pandas (a third of a second in a fresh process).
    _refuse_unwritten(values, BOOLEAN, column)
    return pc.match_substring_regex(values, "^(?i:true)$")


def _first(values: pa.Array, mask: pa.Array) -> str | None:
    hits = pc.filter(values, mask)  # drops the values whose mask is null
    return hits[0].as_py() if len(hits) else None


def _first_failing(values: pa.Array, arrow_type: pa.DataType) -> str | None:
    for value in values.to_pylist():
        if value is None:
            continue
        try:
            pc.cast(pa.array([value]), arrow_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return value
    return None

"""The type a JSON value takes in Parquet (``JType``), inferred over every record of a file.

Numbers widen from int to float; other mixes, values too deep for Parquet readers,
empty objects and numbers a float64 cannot hold become JSON text, which keeps them
losslessly. A top-level string field whose every value is an ISO date or timestamp
becomes ``date32`` or a timestamp, by the same rules as a CSV column (``temporal``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from platform_assets.ingestion.files.text_types import (
    DATE,
    TIMESTAMP,
    TIMESTAMP_NAIVE,
    TIMESTAMP_UTC,
    TIMESTAMP_ZONED,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT_EXACT_INT = 2**53
# Deeper nesting is kept as JSON text: Parquet readers refuse very deep schemas.
MAX_NESTING = 32
TEMPORAL_ARROW = {"date": pa.date32(), "timestamp": TIMESTAMP, "timestamptz": TIMESTAMP_UTC}
_TEMPORAL = [("date", re.compile(DATE)), ("timestamp", re.compile(TIMESTAMP_NAIVE)),
             ("timestamptz", re.compile(TIMESTAMP_ZONED))]


class NumberText(str):
    """A JSON number a float64 cannot hold (it would become infinite or zero): kept as its text."""


@dataclass
class JType:
    """Inferred type of a JSON value; ``kind`` is null, bool, int, float, str, struct, list or json.

    ``float_safe`` is False for an int column holding a value a float64 cannot
    represent exactly (beyond 2^53): mixed with floats it becomes JSON text instead.
    ``temporal`` (``str`` only): ``date``, ``timestamp`` or ``timestamptz`` when every
    string is an ISO value of that kind.
    """

    kind: str = "null"
    fields: dict[str, JType] = field(default_factory=dict)
    item: JType | None = None
    float_safe: bool = True
    temporal: str | None = None


def temporal_kind(text: str) -> str | None:
    """The ISO date/timestamp kind of ``text`` (the CSV patterns, and a valid calendar value)."""
    if len(text) < 10 or not text[:4].isascii() or not text[:4].isdigit():
        return None
    for kind, pattern in _TEMPORAL:
        if pattern.fullmatch(text):
            try:
                (dt.date.fromisoformat if kind == "date" else dt.datetime.fromisoformat)(text)
            except ValueError:
                return None
            return kind
    return None


def record_type_of(record: dict[str, Any]) -> JType:
    """A record's type; only its own string fields are checked for ISO dates and timestamps
    (nested strings stay text, so their values are not parsed)."""
    fields = {name: type_of(value) for name, value in record.items()}
    for name, t in fields.items():
        if t.kind == "str":
            t.temporal = temporal_kind(record[name])
    return JType("struct", fields=fields)


def type_of(value: Any) -> JType:
    if value is None:
        return JType("null")
    if isinstance(value, bool):
        return JType("bool")
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return JType("json")
        return JType("int", float_safe=abs(value) <= FLOAT_EXACT_INT)
    if isinstance(value, float):
        return JType("float")
    if isinstance(value, NumberText):
        return JType("json")
    if isinstance(value, str):
        return JType("str")
    if isinstance(value, dict):
        return JType("struct", fields={k: type_of(v) for k, v in value.items()})
    if isinstance(value, list):
        item = JType("null")
        for element in value:
            item = merge(item, type_of(element))
        return JType("list", item=item)
    return JType("json")


def merge(a: JType, b: JType) -> JType:
    """The type both values fit: numbers widen to float, other mixes become JSON text."""
    if a.kind == "null":
        return b
    if b.kind == "null":
        return a
    if {a.kind, b.kind} == {"int", "float"}:
        return JType("float") if a.float_safe and b.float_safe else JType("json")
    if a.kind != b.kind or a.kind == "json":
        return JType("json")
    if a.kind == "int":
        return JType("int", float_safe=a.float_safe and b.float_safe)
    if a.kind == "str":
        return a if a.temporal == b.temporal else JType("str")
    if a.kind == "struct":
        fields = dict(a.fields)
        for name, t in b.fields.items():
            fields[name] = merge(fields[name], t) if name in fields else t
        return JType("struct", fields=fields)
    if a.kind == "list":
        return JType("list", item=merge(a.item or JType(), b.item or JType()))
    return a


def to_arrow(t: JType, depth: int = 0) -> pa.DataType:
    if t.kind == "bool":
        return pa.bool_()
    if t.kind == "int":
        return pa.int64()
    if t.kind == "float":
        return pa.float64()
    if _as_text(t, depth):
        return pa.string()  # only empty objects, or nested too deep: kept as JSON text
    if t.kind == "struct":
        return pa.struct([pa.field(n, to_arrow(c, depth + 1)) for n, c in t.fields.items()])
    if t.kind == "list":
        return pa.list_(to_arrow(t.item or JType(), depth + 1))
    return pa.string()


def _as_text(t: JType, depth: int) -> bool:
    nested = t.kind in ("struct", "list")
    return nested and (depth >= MAX_NESTING or (t.kind == "struct" and not t.fields))


def conform(value: Any, t: JType, depth: int = 0) -> Any:
    """``value`` shaped for ``to_arrow(t)``: JSON-text columns get the value's JSON text."""
    if value is None:
        return None
    if t.kind in ("json", "null") or _as_text(t, depth):
        if isinstance(value, str) and t.kind == "null" and not isinstance(value, NumberText):
            return value
        return json_text(value)
    if t.kind == "float":
        return float(value)
    if t.kind == "struct":
        return {n: conform(value.get(n), c, depth + 1) for n, c in t.fields.items()}
    if t.kind == "list":
        item = t.item or JType()
        return [conform(v, item, depth + 1) for v in value]
    return value


def json_text(value: Any) -> str:
    """The value as JSON text; numbers a float cannot hold keep the text they were written with."""
    if isinstance(value, NumberText):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(json_text(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def with_text_columns(record_type: JType, text_columns: frozenset[str]) -> JType:
    """``record_type`` whose ``text_columns`` hold JSON text unless they hold strings only."""
    def as_text(t: JType) -> JType:
        if t.kind == "str":
            return JType("str")
        return t if t.kind in ("null", "json") else JType("json")

    fields = {name: as_text(t) if name in text_columns else t for name, t in record_type.fields.items()}
    return JType("struct", fields=fields)


def record_schema(record_type: JType, temporal: bool = True) -> pa.Schema:
    """The Arrow schema of records of ``record_type`` (its fields are one level deep);
    ``temporal=False``: date and timestamp fields as the text they are read as."""
    return pa.schema([
        pa.field(n, TEMPORAL_ARROW[t.temporal] if temporal and t.kind == "str" and t.temporal else to_arrow(t, 1))
        for n, t in record_type.fields.items()
    ])

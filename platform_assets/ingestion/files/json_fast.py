"""The fast path for newline-delimited JSON: pyarrow's streaming reader, when it is exact.

pyarrow reads NDJSON many times faster than Python, but some text it reads inexactly
or not at all (see ``ndjson_needs_exact_path`` and ``_refuse_inexact_floats``): such a
file raises ``pa.ArrowInvalid`` here and takes the exact path (``json_reader``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from platform_assets.ingestion.files.csv_reader import open_input
from platform_assets.ingestion.files.json_reader import (
    DEFAULT_BLOCK_BYTES,
    MAX_RECORD_CHARS,
)
from platform_assets.ingestion.files.json_types import FLOAT_EXACT_INT, MAX_NESTING
from platform_assets.ingestion.files.text_types import (
    Widen,
    convert_temporal,
    temporal_type,
)
from platform_assets.ingestion.sink.memory import STREAM_BLOCK_BYTES

SCAN_CHUNK = 4 * 1024 * 1024


def fast_ndjson_batches(
    path: Path, block_size: int = DEFAULT_BLOCK_BYTES, text_columns: frozenset[str] = frozenset()
) -> Iterator[pa.RecordBatch]:
    """pyarrow's streaming reader with the first block's schema (dates and timestamps by our rules).

    The schema comes from a first block of ``block_size``; the rows are then streamed
    in smaller blocks (``STREAM_BLOCK_BYTES``), which hold less memory. Raises
    pa.ArrowInvalid when the exact path must read the file instead: a later block
    disagrees with that schema, or the text holds what pyarrow reads inexactly or
    not at all (see ``ndjson_needs_exact_path``).
    """
    reason = ndjson_needs_exact_path(path)
    if reason:
        raise pa.ArrowInvalid(f"{reason}; reading exactly")
    with open_input(path) as stream:
        first = pa_json.open_json(stream, read_options=pa_json.ReadOptions(block_size=block_size))
        schema = _as_exact_schema(first.schema)
    if any(not pa.types.is_string(schema.field(n).type) for n in text_columns if n in schema.names):
        raise pa.ArrowInvalid("a column earlier files held as text; reading exactly")
    if not schema.names:
        raise pa.ArrowInvalid("records without fields; reading exactly")
    if _nesting(schema) > MAX_NESTING:
        raise pa.ArrowInvalid("values nested deeper than Parquet readers accept; reading exactly")
    with open_input(path) as stream:
        reader = pa_json.open_json(
            stream,
            read_options=pa_json.ReadOptions(block_size=min(block_size, STREAM_BLOCK_BYTES)),
            parse_options=pa_json.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="error", newlines_in_values=False
            ),
        )
        temporal: _TemporalFields | None = None
        for batch in reader:
            _refuse_inexact_floats(batch)
            temporal = temporal or _TemporalFields(batch, text_columns)
            yield temporal.typed(batch)


class _TemporalFields:
    """Top-level text fields that hold ISO dates or timestamps, decided on the first batch.

    A later value that does not convert, or values in a field the first block held only
    nulls in, raise pa.ArrowInvalid: the exact path then decides over the whole file, so
    both paths give a file the same types.
    """

    def __init__(self, first_block: pa.RecordBatch, text_columns: frozenset[str]) -> None:
        self.types: dict[str, pa.DataType] = {}
        self.undecided: set[str] = set()
        for name, column in zip(first_block.schema.names, first_block.columns):
            if not pa.types.is_string(column.type) or name in text_columns:
                continue
            if column.null_count == len(column):
                self.undecided.add(name)
            elif (found := temporal_type(column)) is not None:
                self.types[name] = found

    def typed(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if not self.types and not self.undecided:
            return batch
        columns, fields = [], []
        for name, column in zip(batch.schema.names, batch.columns):
            if name in self.undecided and column.null_count < len(column):
                raise pa.ArrowInvalid(f"field {name!r} has its first values after the first block; reading exactly")
            if name in self.types:
                try:
                    column = convert_temporal(column, self.types[name], name)
                except Widen as e:
                    raise pa.ArrowInvalid(f"{e}; reading exactly") from e
            columns.append(column)
            fields.append(pa.field(name, column.type))
        return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))


def _refuse_inexact_floats(batch: pa.RecordBatch) -> None:
    """Floats pyarrow may have changed send the file to the exact path: integers beyond
    2^53 or int64 (made floats), numbers too large for a float (JSON has no infinity),
    and NaN or Infinity, which are not JSON (pyarrow accepts them)."""
    for column in batch.columns:
        for floats in _float_leaves(column):
            if len(floats) and (
                pc.any(pc.is_nan(floats)).as_py()
                or (pc.max(pc.abs(floats)).as_py() or 0) >= FLOAT_EXACT_INT
            ):
                raise pa.ArrowInvalid("a float may not be exact (or is not JSON); reading exactly")


def _float_leaves(array: pa.Array) -> Iterator[pa.Array]:
    kind = array.type
    if pa.types.is_floating(kind):
        yield array
    elif pa.types.is_struct(kind):
        for i in range(kind.num_fields):
            yield from _float_leaves(pc.struct_field(array, [i]))
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        yield from _float_leaves(pc.list_flatten(array))


def _nesting(schema_or_type: pa.Schema | pa.DataType) -> int:
    types = [f.type for f in schema_or_type] if isinstance(schema_or_type, pa.Schema) else [schema_or_type]
    depth = 0
    for kind in types:
        if pa.types.is_struct(kind):
            depth = max(depth, 1 + _nesting(pa.schema(list(kind))))
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
            depth = max(depth, 1 + _nesting(kind.value_type))
    return depth


# Text the fast path must not see: a bare ``null`` line (pyarrow makes it a row of NULLs),
# exponents below -99 and decimals with hundreds of leading zeros (pyarrow makes
# underflowing numbers 0), and two objects on one line (pyarrow makes them two rows).
# Each pattern starts with a literal, which ``re`` finds at memory-scan speed: one
# alternation of them all walked every byte through every branch (9 s for 277 MB).
_LINE_ENDING_IN_NULL = re.compile(rb"null[ \t\r]*(?:\n|$)")
_BARE_NULL = re.compile(rb"[ \t\r]*null[ \t\r]*")
_UNDERFLOW = (re.compile(rb"e-[0-9]{3}"), re.compile(rb"E-[0-9]{3}"))
_ZERO_RUN = b"." + b"0" * 290
_TWO_OBJECTS = re.compile(rb"\}[ \t\r]*\{")
# pyarrow's parser recurses: deeply nested lines can exhaust its stack. A line with fewer
# opening brackets than this cannot be nested deeper.
MAX_FAST_PATH_BRACKETS = 512


def ndjson_needs_exact_path(path: Path) -> str | None:
    """Why pyarrow must not parse this NDJSON file, or None (one pass over its bytes)."""
    pending = b""
    with open_input(path) as stream:
        while chunk := stream.read(SCAN_CHUNK):
            data = pending + chunk
            end = data.rfind(b"\n") + 1
            lines, pending = data[:end], data[end:]
            if pending and len(pending) > MAX_RECORD_CHARS:
                return "a line longer than the fast path reads"
            reason = _hazard(lines)
            if reason:
                return reason
    return _hazard(pending) if pending else None


def _hazard(lines: bytes) -> str | None:
    if _has_bare_null(lines) or _TWO_OBJECTS.search(lines):
        return "a line that is not one object"
    if any(p.search(lines) for p in _UNDERFLOW) or _ZERO_RUN in lines:
        return "a number a float may turn into 0"
    if _has_deep_line(lines):
        return "a line with many nested values"
    return None


def _has_bare_null(lines: bytes) -> bool:
    for match in _LINE_ENDING_IN_NULL.finditer(lines):
        start = lines.rfind(b"\n", 0, match.start()) + 1
        end = lines.find(b"\n", match.start())
        if _BARE_NULL.fullmatch(lines, start, len(lines) if end < 0 else end):
            return True
    return False


def _has_deep_line(lines: bytes) -> bool:
    """A line with ``MAX_FAST_PATH_BRACKETS`` opening brackets (only lines that long can)."""
    ends = np.flatnonzero(np.frombuffer(lines, dtype=np.uint8) == ord("\n"))
    starts = np.concatenate(([0], ends + 1))
    stops = np.append(ends, len(lines))
    for i in np.flatnonzero(stops - starts >= MAX_FAST_PATH_BRACKETS):
        line = lines[starts[i]:stops[i]]
        if line.count(b"[") + line.count(b"{") >= MAX_FAST_PATH_BRACKETS:
            return True
    return False


def _as_exact_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, _exact_type(f.type)) for f in schema])


def _exact_type(t: pa.DataType) -> pa.DataType:
    """pyarrow infers timestamps from strings and ``null`` for all-null fields; keep both as text."""
    if pa.types.is_timestamp(t) or pa.types.is_null(t):
        return pa.string()
    if pa.types.is_struct(t):
        if t.num_fields == 0:
            return pa.string()
        return pa.struct([pa.field(t.field(i).name, _exact_type(t.field(i).type)) for i in range(t.num_fields)])
    if pa.types.is_list(t):
        return pa.list_(_exact_type(t.value_type))
    return t

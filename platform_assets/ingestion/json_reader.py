"""Streams a JSON file (array of objects, or newline-delimited) as Arrow batches.

The layout is detected from the content, not the extension. Newline-delimited files
take pyarrow's streaming reader with the schema of the first block; if any later
block disagrees (new field, changed type), or for JSON arrays and files with a
byte-order mark, the exact path runs instead: a first pass infers one schema over
every record, a second converts them in chunks. Nested objects and arrays become
structs and lists when their shape is consistent, and JSON text when it is not.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from platform_assets.ingestion.csv_reader import open_input
from platform_assets.ingestion.errors import SchemaDetectionError
from platform_assets.ingestion.memory import STREAM_BLOCK_BYTES

Layout = Literal["array", "ndjson"]
CHUNK_RECORDS = 50_000
READ_CHUNK = 4 * 1024 * 1024
DEFAULT_BLOCK_BYTES = 4 * 1024 * 1024
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT_EXACT_INT = 2**53
# Deeper nesting is kept as JSON text: Parquet readers refuse very deep schemas.
MAX_NESTING = 32
# An array element (or NDJSON line) larger than this fails the file: memory stays bounded.
MAX_RECORD_CHARS = 64 * 1024 * 1024
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_ZERO_TEXT = re.compile(r"-?0*\.?0*([eE][+-]?[0-9]+)?")


class NumberText(str):
    """A JSON number a float64 cannot hold (it would become infinite or zero): kept as its text."""


def _parse_float(text: str) -> float | NumberText:
    value = float(text)
    if math.isinf(value) or (value == 0 and not _ZERO_TEXT.fullmatch(text)):
        return NumberText(text)
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value (JSON has no NaN or Infinity)")


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"an object repeats the key {repeated!r} (which value is meant is ambiguous)")
    return record


DECODER = json.JSONDecoder(
    parse_float=_parse_float, parse_constant=_refuse_constant, object_pairs_hook=_refuse_duplicate_keys
)


def detect_layout(path: Path) -> Layout:
    """``array`` or ``ndjson`` from the first significant character."""
    first = _first_significant(path)
    if first is None:
        raise SchemaDetectionError(
            f"Failed to read JSON {path}: the file is empty (no JSON value, only whitespace or a byte-order mark)"
        )
    if first == "[":
        return "array"
    if first == "{":
        return "ndjson"
    raise SchemaDetectionError(
        f"Failed to read JSON {path}: the document is a scalar ({first!r}...); "
        "expected an array of objects or one object per line"
    )


def _first_significant(path: Path) -> str | None:
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    try:
        with open_input(path) as stream:
            while chunk := stream.read(64 * 1024):
                text = decoder.decode(chunk).lstrip()
                if text:
                    return text[0]
            tail = decoder.decode(b"", final=True).strip()
            return tail[0] if tail else None
    except UnicodeDecodeError as e:
        raise SchemaDetectionError(f"Failed to read JSON {path}: the file is not valid UTF-8 ({e})") from e
    except (OSError, EOFError) as e:
        raise SchemaDetectionError(f"Failed to read JSON {path}: {_io_reason(e)}") from e


def has_bom(path: Path) -> bool:
    with open_input(path) as stream:
        return stream.read(3) == codecs.BOM_UTF8


# --- the exact path ------------------------------------------------------------------


@dataclass
class JType:
    """Inferred type of a JSON value; ``kind`` is null, bool, int, float, str, struct, list or json.

    ``float_safe`` is False for an int column holding a value a float64 cannot
    represent exactly (beyond 2^53): mixed with floats it becomes JSON text instead.
    """

    kind: str = "null"
    fields: dict[str, JType] = field(default_factory=dict)
    item: JType | None = None
    float_safe: bool = True


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


def records(path: Path, layout: Layout) -> Iterator[dict[str, Any]]:
    """Every record, with precise errors (line numbers for NDJSON, positions for arrays)."""
    if layout == "ndjson":
        yield from _ndjson_records(path)
    else:
        yield from _array_records(path)


def _text_lines(path: Path) -> Iterator[str]:
    """The file's lines, each at most ``MAX_RECORD_CHARS`` long (a longer one is refused)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    pending: list[str] = []
    pending_chars = 0
    number = 0
    try:
        with open_input(path) as stream:
            while True:
                chunk = stream.read(READ_CHUNK)
                text = decoder.decode(chunk, final=not chunk)
                *lines, rest = text.split("\n")
                if lines:
                    lines[0] = "".join([*pending, lines[0]])
                    pending, pending_chars = [], 0
                    number += len(lines)
                    yield from lines
                pending.append(rest)
                pending_chars += len(rest)
                if pending_chars > MAX_RECORD_CHARS:
                    raise SchemaDetectionError(
                        f"Failed to read JSON {path}: line {number + 1} is longer than "
                        f"{MAX_RECORD_CHARS // (1024 * 1024)} Mi characters; split the record"
                    )
                if not chunk:
                    break
    except UnicodeDecodeError as e:
        raise SchemaDetectionError(f"Failed to read JSON {path}: the file is not valid UTF-8 ({e})") from e
    except (OSError, EOFError) as e:
        raise SchemaDetectionError(f"Failed to read JSON {path}: {_io_reason(e)}") from e
    last = "".join(pending)
    if last:
        yield last


def _ndjson_records(path: Path) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(_text_lines(path), start=1):
        if not line.strip():
            continue
        try:
            value = DECODER.decode(line)
        except json.JSONDecodeError as e:
            raise SchemaDetectionError(
                f"Failed to read JSON {path}: line {number} is not valid JSON ({e.msg} at column {e.colno})"
            ) from e
        except (ValueError, RecursionError) as e:
            raise SchemaDetectionError(f"Failed to read JSON {path}: line {number}: {_reason(e)}") from e
        if not isinstance(value, dict):
            raise SchemaDetectionError(
                f"Failed to read JSON {path}: line {number} is not a JSON object"
            )
        yield value


def _array_records(path: Path) -> Iterator[dict[str, Any]]:
    """Objects of a top-level JSON array, decoded one element at a time.

    ``buffer[pos:]`` is the unread text; the buffer is compacted only when more
    text is appended. An element that does not decode is read further only while it
    could still be one cut by the chunk's end, and never beyond ``MAX_RECORD_CHARS``.
    """
    chunks = _text_chunks(path)
    buffer, pos, consumed = "", 0, 0  # consumed: characters dropped before ``buffer``
    exhausted = False

    def more() -> bool:
        nonlocal buffer, pos, consumed, exhausted
        chunk = next(chunks, None)
        if chunk is None:
            exhausted = True
            return False
        consumed += pos
        buffer, pos = buffer[pos:] + chunk, 0
        return True

    def next_char() -> str | None:
        nonlocal pos
        while True:
            match = _WHITESPACE.match(buffer, pos)
            pos = match.end()
            if pos < len(buffer):
                return buffer[pos]
            if exhausted or not more():
                return None

    def fail(message: str) -> SchemaDetectionError:
        return SchemaDetectionError(f"Failed to read JSON {path}: {message} (character {consumed + pos + 1})")

    if next_char() != "[":
        raise fail("expected '[' at the start")
    pos += 1
    index = 0
    while True:
        ch = next_char()
        if ch is None:
            raise fail("the array is not closed with ']' (truncated?)")
        if ch == "]":
            pos += 1
            if next_char() is not None:
                raise fail("unexpected data after the closing ']'")
            return
        if index:
            if ch != ",":
                raise fail(f"expected ',' or ']' after element {index}")
            pos += 1
            next_char()
        while True:
            try:
                value, end = DECODER.raw_decode(buffer, pos)
            except json.JSONDecodeError as e:
                if _cut_short(e, buffer) and len(buffer) - pos < MAX_RECORD_CHARS and not exhausted and more():
                    continue
                raise fail(
                    f"element {index + 1} is not valid JSON ({e.msg}), or larger than "
                    f"{MAX_RECORD_CHARS // (1024 * 1024)} MiB"
                ) from e
            except (ValueError, RecursionError) as e:
                raise fail(f"element {index + 1}: {_reason(e)}") from e
            if end == len(buffer) and not exhausted and more():
                continue  # a number or literal may go on in the next chunk
            break
        if not isinstance(value, dict):
            raise fail(f"element {index + 1} of the array is not an object")
        index += 1
        pos = end
        yield value


def _cut_short(error: json.JSONDecodeError, buffer: str) -> bool:
    """Whether the element may only be cut by the end of the text read so far (not malformed)."""
    return error.msg.startswith("Unterminated string") or error.pos >= len(buffer) - _CUT_SLACK


_CUT_SLACK = 16  # a literal or a key cut at the end of the buffer fails within these characters


def _text_chunks(path: Path) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    try:
        with open_input(path) as stream:
            while chunk := stream.read(READ_CHUNK):
                yield decoder.decode(chunk)
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError as e:
        raise SchemaDetectionError(f"Failed to read JSON {path}: the file is not valid UTF-8 ({e})") from e
    except (OSError, EOFError) as e:
        raise SchemaDetectionError(f"Failed to read JSON {path}: {_io_reason(e)}") from e


def infer_record_type(path: Path, layout: Layout) -> JType:
    """One type over every record of the file (the exact path's first pass)."""
    result = JType("struct")
    for record in records(path, layout):
        result = merge(result, type_of(record) if record else JType("struct"))
    return result


def with_text_columns(record_type: JType, text_columns: frozenset[str]) -> JType:
    """``record_type`` whose ``text_columns`` hold JSON text unless they hold strings only."""
    fields = {
        name: JType("json") if name in text_columns and t.kind not in ("str", "null", "json") else t
        for name, t in record_type.fields.items()
    }
    return JType("struct", fields=fields)


def record_schema(record_type: JType) -> pa.Schema:
    """The Arrow schema of records of ``record_type`` (its fields are one level deep)."""
    return pa.schema([pa.field(n, to_arrow(t, 1)) for n, t in record_type.fields.items()])


def exact_batches(path: Path, layout: Layout, record_type: JType) -> Iterator[pa.RecordBatch]:
    schema = record_schema(record_type)
    chunk: list[dict[str, Any]] = []
    for record in records(path, layout):
        chunk.append(conform(record, record_type))
        if len(chunk) >= CHUNK_RECORDS:
            yield pa.RecordBatch.from_pylist(chunk, schema=schema)
            chunk = []
    if chunk:
        yield pa.RecordBatch.from_pylist(chunk, schema=schema)


# --- the fast path ---------------------------------------------------------------------


def fast_ndjson_batches(
    path: Path, block_size: int = DEFAULT_BLOCK_BYTES, text_columns: frozenset[str] = frozenset()
) -> Iterator[pa.RecordBatch]:
    """pyarrow's streaming reader with the first block's schema (timestamps kept as text).

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
        for batch in reader:
            _refuse_inexact_floats(batch)
            yield batch


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


# Lines the fast path must not see: a bare ``null`` (pyarrow makes it a row of NULLs),
# exponents below -99 and decimals with hundreds of leading zeros (pyarrow makes
# underflowing numbers 0), and two objects on one line (pyarrow makes them two rows).
_FAST_PATH_HAZARDS = re.compile(
    rb"(?:^|\n)[ \t\r]*null[ \t\r]*(?=\r?\n|$)|[eE]-[0-9]{3}|\.0{290}|\}[ \t\r]*\{"
)
# pyarrow's parser recurses: deeply nested lines can exhaust its stack. A line with fewer
# opening brackets than this cannot be nested deeper.
MAX_FAST_PATH_BRACKETS = 512


def ndjson_needs_exact_path(path: Path) -> str | None:
    """Why pyarrow must not parse this NDJSON file, or None (one pass over its bytes)."""
    pending = b""
    with open_input(path) as stream:
        while chunk := stream.read(READ_CHUNK):
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
    if _FAST_PATH_HAZARDS.search(lines):
        return "a line that is not one object, or a number a float may turn into 0"
    if lines.count(b"[") + lines.count(b"{") < MAX_FAST_PATH_BRACKETS:
        return None
    data = np.frombuffer(lines, dtype=np.uint8)
    opening = np.cumsum((data == ord("[")) | (data == ord("{")), dtype=np.int64)
    ends = np.flatnonzero(data == ord("\n"))
    per_line = np.diff(opening[ends], prepend=0) if len(ends) else opening[-1:]
    if len(ends) and ends[-1] != len(data) - 1:
        per_line = np.append(per_line, opening[-1] - opening[ends[-1]])
    if per_line.max(initial=0) >= MAX_FAST_PATH_BRACKETS:
        return "a line with many nested values"
    return None


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


def _reason(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "its values are nested too deeply to read"
    return str(error)


def _io_reason(error: BaseException) -> str:
    text = str(error).strip()
    if "gzip" in text.lower() or isinstance(error, EOFError):
        return f"the gzip stream is corrupt or truncated ({text})"
    return text

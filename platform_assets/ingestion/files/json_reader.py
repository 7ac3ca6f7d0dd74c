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
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from platform_assets.ingestion.errors import SchemaDetectionError
from platform_assets.ingestion.files.csv_reader import open_input
from platform_assets.ingestion.files.json_types import (
    JType,
    NumberText,
    conform,
    merge,
    record_schema,
    record_type_of,
)
from platform_assets.ingestion.files.text_types import convert

Layout = Literal["array", "ndjson"]
CHUNK_RECORDS = 50_000
READ_CHUNK = 4 * 1024 * 1024
DEFAULT_BLOCK_BYTES = 4 * 1024 * 1024
# An array element (or NDJSON line) larger than this fails the file: memory stays bounded.
MAX_RECORD_CHARS = 64 * 1024 * 1024
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_ZERO_TEXT = re.compile(r"-?0*\.?0*([eE][+-]?[0-9]+)?")


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
        result = merge(result, record_type_of(record))
    return result


def exact_batches(path: Path, layout: Layout, record_type: JType) -> Iterator[pa.RecordBatch]:
    """The records as ``record_schema(record_type)``; raises ``Widen`` for a date or
    timestamp field Arrow cannot convert (the caller reads it as text)."""
    text_schema, schema = record_schema(record_type, temporal=False), record_schema(record_type)
    chunk: list[dict[str, Any]] = []
    for record in records(path, layout):
        chunk.append(conform(record, record_type))
        if len(chunk) >= CHUNK_RECORDS:
            yield typed_batch(pa.RecordBatch.from_pylist(chunk, schema=text_schema), schema)
            chunk = []
    if chunk:
        yield typed_batch(pa.RecordBatch.from_pylist(chunk, schema=text_schema), schema)


def typed_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with its text date and timestamp fields converted to ``schema``'s types."""
    if batch.schema.equals(schema):
        return batch
    columns = [
        column if column.type == field.type else convert(column, field.type, field.name)
        for column, field in zip(batch.columns, schema)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _reason(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "its values are nested too deeply to read"
    return str(error)


def _io_reason(error: BaseException) -> str:
    text = str(error).strip()
    if "gzip" in text.lower() or isinstance(error, EOFError):
        return f"the gzip stream is corrupt or truncated ({text})"
    return text

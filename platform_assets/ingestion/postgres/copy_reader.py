"""Parses ``COPY (SELECT ...) TO STDOUT`` output (text format) into typed Arrow batches.

COPY's text format is one line per row, fields separated by tabs, NULL written
``\\N``, and the characters that would break that layout (backslash, tab, newline,
carriage return, backspace, form feed, vertical tab) written as backslash escapes.
So rows never span lines and nothing is quoted: pyarrow's CSV reader splits it with
quoting and escaping off, and typed columns (numbers, dates, timestamps, booleans,
whose text never holds those characters) parse directly. Text-like columns are
unescaped afterwards, only in the values that hold a backslash. PostgreSQL produces
text format with less work than CSV (no quoting decisions), which matters on a
machine whose cores the server and the parser share.

``parse_copy_text`` reads any byte stream of COPY output (see ``copy_streams`` for
the psql processes that feed it). ``read_copy`` is the fallback without psql:
psycopg2 pushes COPY data into a file object row by row while pyarrow's streaming
CSV reader pulls from one, so the COPY runs in a thread that writes into an OS pipe
and the caller's thread parses the other end. Memory holds a few blocks at a time.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.postgres.copy_lines import (
    CHUNK_BYTES,
    MAX_FIELD_BYTES,
    FieldTooLarge,
    whole_line_buffers,
)
from platform_assets.ingestion.postgres.type_mapping import ColumnMapping, Conversion
from platform_assets.ingestion.sink.memory import STREAM_BLOCK_BYTES

PIPE_BUFFER_BYTES = 1024 * 1024
COPY_NULL = "\\N"
# The escapes COPY TO writes in text format (it never writes octal or hex escapes).
_ESCAPED = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_FAILED_COLUMN = re.compile(r"In CSV column #(\d+): ")
_FAILED_VALUE = re.compile(r"(?:invalid value|The string) '(.*)'")
_NO_PARQUET_EQUIVALENT = re.compile(r"^-?(infinity|nan)$", re.IGNORECASE)


class RowLargerThanBlock(Exception):
    """A row of the COPY output does not fit in one read block; read again with larger blocks."""


class NotUtf8Text(IngestionError):
    """The source sent text that is not valid UTF-8 (only possible from a SQL_ASCII database)."""


def read_copy(
    cur: Any,
    copy_sql: str,
    mappings: list[ColumnMapping],
    source_name: str,
    framed: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of ``copy_sql`` as batches typed by ``mappings`` (see ``parse_copy_text``)."""
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb", buffering=PIPE_BUFFER_BYTES)
    writer = os.fdopen(write_fd, "wb", buffering=PIPE_BUFFER_BYTES)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            cur.copy_expert(copy_sql, writer, size=PIPE_BUFFER_BYTES)
        except BaseException as e:  # handed to the consumer thread below
            failure.append(e)
        finally:
            try:
                writer.close()
            except OSError:
                pass  # the reader stopped early and closed its end

    thread = threading.Thread(target=produce, name=f"copy-{source_name}", daemon=True)
    thread.start()
    try:
        yield from parse_copy_text(reader, mappings, source_name, lambda: bool(failure), framed)
    finally:
        reader.close()
        thread.join()
    if failure:
        raise IngestionError(
            f"{source_name}: reading from PostgreSQL failed: {str(failure[0]).strip()}"
        ) from failure[0]


def parse_copy_text(
    reader: Any,
    mappings: list[ColumnMapping],
    source_name: str,
    upstream_failed: Callable[[], bool],
    framed: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Typed batches from a stream of COPY text-format output.

    By default pyarrow streams it in 1 MiB blocks, the fastest way, and a row longer
    than a block raises ``RowLargerThanBlock``. ``framed`` cuts the stream into whole
    lines first (``copy_lines``), so rows of any size parse; fields over the limit
    raise ``FieldTooLarge``. A parse error caused by the producer failing
    (``upstream_failed``) is left for the caller to report with the producer's own error.
    """
    if not mappings:
        reader.read()
        return
    names = [m.column.name for m in mappings]
    try:
        if framed:
            for lines in whole_line_buffers(reader, names, source_name):
                parsed = pa_csv.read_csv(
                    pa.BufferReader(lines),
                    read_options=_read_options(names, len(lines) + 1),
                    parse_options=_PARSE_OPTIONS,
                    convert_options=_convert_options(mappings),
                )
                for batch in parsed.to_batches():
                    batch = convert_batch(batch, mappings, source_name)
                    if len(lines) > CHUNK_BYTES:
                        _refuse_large_fields(batch, source_name)
                    yield batch
            return
        stream = pa_csv.open_csv(
            reader,
            read_options=_read_options(names, STREAM_BLOCK_BYTES),
            parse_options=_PARSE_OPTIONS,
            convert_options=_convert_options(mappings),
        )
        for batch in stream:
            yield convert_batch(batch, mappings, source_name)
    except pa.ArrowInvalid as e:
        if upstream_failed():
            return  # the COPY failed; its error is the one to report
        if "Empty CSV file" in str(e):
            return
        raise conversion_error(e, names, source_name) from e


def _read_options(names: list[str], block_size: int) -> pa_csv.ReadOptions:
    # One thread per stream: parallel streams already keep the cores busy, and
    # pyarrow's own threads cost a third more CPU for no gain in wall time.
    return pa_csv.ReadOptions(column_names=names, block_size=block_size, use_threads=False)


# A one-column row holding an empty string is an empty line in COPY's output.
_PARSE_OPTIONS = pa_csv.ParseOptions(
    delimiter="\t", quote_char=False, escape_char=False, newlines_in_values=False, ignore_empty_lines=False,
)


def _convert_options(mappings: list[ColumnMapping]) -> pa_csv.ConvertOptions:
    return pa_csv.ConvertOptions(
        column_types={m.column.name: m.read_type for m in mappings},
        true_values=["t"],
        false_values=["f"],
        null_values=[COPY_NULL],
        strings_can_be_null=True,
    )


def _refuse_large_fields(batch: pa.RecordBatch, source_name: str) -> None:
    """FieldTooLarge for the first value over ``MAX_FIELD_BYTES`` (its row's fields as the key)."""
    for name, column in zip(batch.schema.names, batch.columns):
        if not (pa.types.is_string(column.type) or pa.types.is_binary(column.type)):
            continue
        sizes = pc.binary_length(column)
        too_large = pc.greater(sizes, MAX_FIELD_BYTES)
        if pc.any(too_large).as_py():
            row = pc.index(too_large, True).as_py()
            values = {
                other: batch.column(other)[row].as_py()
                for other in batch.schema.names
                if other != name and not _large(batch.column(other)[row])
            }
            raise FieldTooLarge(source_name, name, values)


def _large(value: pa.Scalar) -> bool:
    return isinstance(value, (pa.StringScalar, pa.BinaryScalar)) and value.is_valid and len(value.as_buffer()) > 256


def conversion_error(error: pa.ArrowInvalid, names: list[str], source_name: str) -> Exception:
    """The specific error for a value pyarrow could not parse."""
    text = str(error)
    if "straddling object" in text:
        return RowLargerThanBlock(text)
    failed = _FAILED_COLUMN.search(text)
    column = names[int(failed.group(1))] if failed and int(failed.group(1)) < len(names) else None
    where = f"column {column!r}" if column else "a column"
    if "invalid UTF8" in text:
        return NotUtf8Text(f"{source_name}: {where} holds text that is not valid UTF-8 ({text})")
    value = _FAILED_VALUE.search(text)
    if value and _NO_PARQUET_EQUIVALENT.match(value.group(1)):
        return IngestionError(
            f"{source_name}: {where} holds {value.group(1)!r}, which has no Parquet equivalent "
            "(an 'infinity' date or timestamp, or 'NaN' in a constrained numeric): cast the column "
            "in a custom query, e.g. NULLIF(col, 'infinity')"
        )
    return IngestionError(f"{source_name}: {where}: a value could not be converted to its Parquet type ({text})")


def convert_batch(
    batch: pa.RecordBatch, mappings: list[ColumnMapping], source_name: str
) -> pa.RecordBatch:
    """Unescape text columns, then apply the conversions (hex to binary, JSON arrays to lists)."""
    arrays = []
    for m, array in zip(mappings, batch.columns):
        if m.read_type == pa.string():
            array = unescape(array)
        if m.conversion is Conversion.HEX_TO_BINARY:
            array = pa.array(
                [None if v is None else bytes.fromhex(v[2:]) for v in array.to_pylist()],
                type=pa.binary(),
            )
        elif m.conversion is Conversion.JSON_TO_LIST:
            array = _json_lists(array, m, source_name)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def unescape(array: pa.Array) -> pa.Array:
    """Decode COPY's backslash escapes; only values holding a backslash are touched."""
    escaped = pc.match_substring(array, "\\")  # null where the value is null: left as is
    if not pc.sum(escaped).as_py():
        return array
    decoded = [_unescape_value(v) for v in pc.filter(array, escaped).to_pylist()]
    return pc.replace_with_mask(array, escaped, pa.array(decoded, pa.string()))


def _unescape_value(value: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPED.get(m.group(1), m.group(1)), value)


def _json_lists(array: pa.Array, mapping: ColumnMapping, source_name: str) -> pa.Array:
    values = [None if v is None else json.loads(v) for v in array.to_pylist()]
    if any(isinstance(item, list) for v in values if v for item in v):
        raise IngestionError(
            f"{source_name}: column {mapping.column.name!r} holds a multidimensional array; "
            "only one-dimensional arrays map to Parquet lists: cast it to text in a custom query"
        )
    if pa.types.is_floating(mapping.arrow_type.value_type):
        # array_to_json writes NaN and the infinities as the strings "NaN", "Infinity", "-Infinity".
        values = [None if v is None else [float(x) if isinstance(x, str) else x for x in v] for v in values]
    return pa.array(values, type=mapping.arrow_type)

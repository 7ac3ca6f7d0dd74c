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
from platform_assets.ingestion.memory import STREAM_BLOCK_BYTES
from platform_assets.ingestion.type_mapping import ColumnMapping, Conversion

PIPE_BUFFER_BYTES = 1024 * 1024
COPY_NULL = "\\N"
# The escapes COPY TO writes in text format (it never writes octal or hex escapes).
_ESCAPED = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def read_copy(
    cur: Any, copy_sql: str, mappings: list[ColumnMapping], source_name: str
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of ``copy_sql`` as batches typed by ``mappings``."""
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
        yield from parse_copy_text(reader, mappings, source_name, lambda: bool(failure))
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
) -> Iterator[pa.RecordBatch]:
    """Typed batches from a stream of COPY text-format output.

    A parse error caused by the producer failing (``upstream_failed``) is left for
    the caller to report with the producer's own error.
    """
    if not mappings:
        reader.read()
        return
    names = [m.column.name for m in mappings]
    try:
        stream = pa_csv.open_csv(
            reader,
            # One thread per stream: parallel streams already keep the cores busy, and
            # pyarrow's own threads cost a third more CPU for no gain in wall time.
            read_options=pa_csv.ReadOptions(
                column_names=names, block_size=STREAM_BLOCK_BYTES, use_threads=False
            ),
            # A one-column row holding an empty string is an empty line in COPY's output.
            parse_options=pa_csv.ParseOptions(
                delimiter="\t", quote_char=False, escape_char=False,
                newlines_in_values=False, ignore_empty_lines=False,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={m.column.name: m.read_type for m in mappings},
                true_values=["t"],
                false_values=["f"],
                null_values=[COPY_NULL],
                strings_can_be_null=True,
            ),
        )
        for batch in stream:
            yield convert_batch(batch, mappings, source_name)
    except pa.ArrowInvalid as e:
        if upstream_failed():
            return  # the COPY failed; its error is the one to report
        if "Empty CSV file" in str(e):
            return
        raise IngestionError(
            f"{source_name}: a value could not be converted to its Parquet type ({e}); "
            "values such as 'infinity' dates or 'NaN' numerics have no Parquet equivalent: "
            "cast the column in a custom query"
        ) from e


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

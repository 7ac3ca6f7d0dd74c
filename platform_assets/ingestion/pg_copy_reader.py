"""Parses ``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` output into typed Arrow batches.

``parse_copy_csv`` reads any byte stream of COPY output (see ``copy_streams`` for
the psql processes that feed it). ``read_copy`` is the fallback without psql:
psycopg2 pushes COPY data into a file object row by row while pyarrow's streaming
CSV reader pulls from one, so the COPY runs in a thread that writes into an OS pipe
and the caller's thread parses the other end. Memory holds one CSV block at a time.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv

from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.type_mapping import ColumnMapping, Conversion

CSV_BLOCK_BYTES = 4 * 1024 * 1024
PIPE_BUFFER_BYTES = 1024 * 1024


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
        yield from parse_copy_csv(reader, mappings, source_name, lambda: bool(failure))
    finally:
        reader.close()
        thread.join()
    if failure:
        raise IngestionError(
            f"{source_name}: reading from PostgreSQL failed: {str(failure[0]).strip()}"
        ) from failure[0]


def parse_copy_csv(
    reader: Any,
    mappings: list[ColumnMapping],
    source_name: str,
    upstream_failed: Callable[[], bool],
) -> Iterator[pa.RecordBatch]:
    """Typed batches from a stream of COPY csv output.

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
            read_options=pa_csv.ReadOptions(column_names=names, block_size=CSV_BLOCK_BYTES),
            # A one-column row holding NULL is an empty line in COPY's output.
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                column_types={m.column.name: m.read_type for m in mappings},
                true_values=["t"],
                false_values=["f"],
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
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
    """Apply the post-parse conversions (hex to binary, JSON arrays to lists)."""
    if all(m.conversion is Conversion.NONE for m in mappings):
        return batch
    arrays = []
    for m, array in zip(mappings, batch.columns):
        if m.conversion is Conversion.HEX_TO_BINARY:
            array = pa.array(
                [None if v is None else bytes.fromhex(v[2:]) for v in array.to_pylist()],
                type=pa.binary(),
            )
        elif m.conversion is Conversion.JSON_TO_LIST:
            array = _json_lists(array, m, source_name)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


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

"""Converts one CSV or JSON file into a local Parquet file, with its detected schema."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from platform_assets.ingestion.errors import SchemaDetectionError
from platform_assets.ingestion.files import (
    csv_reader,
    json_fast,
    json_reader,
    json_types,
)
from platform_assets.ingestion.files.csv_reader import CsvOptions
from platform_assets.ingestion.files.text_types import Widen
from platform_assets.ingestion.sink.parquet import (
    FileFollower,
    ParquetFile,
    ParquetSink,
    preview_rows,
)

# How often a CSV file is read again with larger blocks for a long row (x4 each time).
MAX_BLOCK_GROWTH = 6


@dataclass(frozen=True)
class ConvertedFile:
    parquet: ParquetFile
    schema: pa.Schema
    file_format: str
    preview: list[dict[str, Any]]
    pinned: frozenset[str] = frozenset()


SchemaHook = Callable[[pa.Schema, frozenset[str]], pa.Schema]


def _no_hook(schema: pa.Schema, pinned: frozenset[str]) -> pa.Schema:
    return schema


def convert_csv(
    path: Path,
    dest: Path,
    options: CsvOptions,
    schema_hook: SchemaHook = _no_hook,
    follower: FileFollower | None = None,
    text_columns: frozenset[str] = frozenset(),
) -> ConvertedFile:
    """CSV to Parquet; an unpinned column whose values stop fitting its type becomes text.

    ``text_columns`` start as text (the family's earlier files had them as text), so a
    column does not change type from one file to the next.
    """
    names = csv_reader.read_header(path, options)
    unknown = sorted(set(options.column_types) - set(names))
    if unknown:
        raise SchemaDetectionError(
            f"Failed to read CSV {path}: pinned columns {unknown} are not in the header {names}"
        )
    pinned = frozenset(options.column_types)
    types: dict[str, pa.DataType] = {n: pa.string() for n in names if n in text_columns}
    types.update(options.column_types)
    for _ in range(len(names) + MAX_BLOCK_GROWTH + 1):
        try:
            return _write(
                dest,
                csv_reader.typed_batches(path, names, options, types),
                empty_schema=pa.schema([pa.field(n, types.get(n, pa.string())) for n in names]),
                file_format="csv",
                pinned=pinned,
                schema_hook=schema_hook,
                follower=follower,
            )
        except Widen as e:
            if e.column in pinned:
                raise SchemaDetectionError(
                    f"Failed to read CSV {path}: value {e.value!r} of column {e.column!r} does not "
                    f"fit its pinned type {types[e.column]}"
                ) from e
            types[e.column] = pa.string()
        except csv_reader.RowBeyondBlock:
            options = options.with_larger_blocks()
    raise SchemaDetectionError(f"Failed to read CSV {path}: column types did not settle")


def convert_json(
    path: Path,
    dest: Path,
    schema_hook: SchemaHook = _no_hook,
    follower: FileFollower | None = None,
    text_columns: frozenset[str] = frozenset(),
) -> ConvertedFile:
    """JSON array or NDJSON to Parquet (fast streaming path when the shape allows).

    ``text_columns`` (columns the family's earlier files held as text) keep holding
    JSON text whatever this file's values are, so a column does not change type from
    one file to the next.
    """
    layout = json_reader.detect_layout(path)
    if layout == "ndjson" and not json_reader.has_bom(path):
        try:
            return _write(
                dest, json_fast.fast_ndjson_batches(path, text_columns=text_columns), None, "json",
                schema_hook=schema_hook, follower=follower,
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, EOFError):
            pass  # the exact path below either succeeds or names the precise problem
    record_type = json_reader.infer_record_type(path, layout)
    if not record_type.fields:
        raise SchemaDetectionError(f"Failed to read JSON {path}: it holds no fields (no records, or only empty objects)")
    for _ in range(len(record_type.fields) + 1):
        typed = json_types.with_text_columns(record_type, text_columns)
        try:
            return _write(
                dest, json_reader.exact_batches(path, layout, typed), json_types.record_schema(typed), "json",
                schema_hook=schema_hook, follower=follower,
            )
        except Widen as e:
            text_columns = text_columns | {e.column}  # a date Python accepts and Arrow does not: text
    raise SchemaDetectionError(f"Failed to read JSON {path}: column types did not settle")


def _write(
    dest: Path,
    batches: Iterable[pa.RecordBatch],
    empty_schema: pa.Schema | None,
    file_format: str,
    pinned: frozenset[str] = frozenset(),
    schema_hook: SchemaHook = _no_hook,
    follower: FileFollower | None = None,
) -> ConvertedFile:
    """Write ``batches``; ``schema_hook`` sees the schema before anything is written."""
    sink: ParquetSink | None = None
    preview: list[dict[str, Any]] = []
    try:
        for batch in batches:
            if sink is None:
                sink = ParquetSink(dest, schema_hook(batch.schema, pinned), follower=follower)
            batch = batch.replace_schema_metadata(sink.schema.metadata)
            if not preview and batch.num_rows:
                preview = preview_rows(batch)
            sink.write(batch)
        if sink is None:
            if empty_schema is None:
                raise SchemaDetectionError(f"Failed to read {file_format.upper()} {dest}: no records")
            sink = ParquetSink(dest, schema_hook(empty_schema, pinned), follower=follower)
        schema = sink.schema
        return ConvertedFile(sink.close(), schema, file_format, preview, pinned)
    except BaseException:
        if sink is not None:
            sink.abort()
        raise

"""The part of a PostgreSQL load that runs inside the source's snapshot.

In one read-only, repeatable-read transaction: read the column types, decide the
range read, stream ``COPY`` into a local Parquet file (merged with the partition's
previous object on a replay), and count, in the same snapshot, what the checks
compare with (the rows in the range, the NULL-watermark rows no load captured).

A row larger than a read block makes the COPY run again with rows framed line by
line (``copy_lines``): same snapshot, same rows, any row size.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from psycopg2 import sql

from platform_assets.ingestion import pg_catalog, query_builder
from platform_assets.ingestion.arrow_values import python_value
from platform_assets.ingestion.copy_lines import MAX_FIELD_BYTES, FieldTooLarge
from platform_assets.ingestion.copy_streams import extract_batches, psql_executable
from platform_assets.ingestion.errors import IngestionError, SchemaDetectionError, WatermarkError
from platform_assets.ingestion.load_planning import WatermarkColumn, incremental_range, window_range
from platform_assets.ingestion.null_watermarks import NullWatermarks, uncaptured_null_rows
from platform_assets.ingestion.object_merge import (
    HeldValues,
    PreviousObject,
    VersionKeys,
    kept_rows,
    merged_schema,
    version_columns,
)
from platform_assets.ingestion.parquet_sink import FileFollower, ParquetFile, ParquetSink, preview_rows
from platform_assets.ingestion.pg_copy_reader import NotUtf8Text, RowLargerThanBlock
from platform_assets.ingestion.query_builder import ExtractRange
from platform_assets.ingestion.schema_evolution import SchemaGate, with_changes_metadata
from platform_assets.ingestion.schema_metadata import column_entries
from platform_assets.ingestion.source_session import EXTRACT_APPLICATION_NAME, ExtractSnapshot, read_only_snapshot
from platform_assets.ingestion.tracking import StoredWatermark
from platform_assets.ingestion.type_mapping import ColumnMapping, arrow_schema, map_column
from platform_assets.ingestion.watermark_values import Window, WatermarkValue, check_column_type, parse_value

log = logging.getLogger(__name__)

PREVIEW_ROWS = 5
# Tables from this many heap pages (8 KiB each: 32 MiB) are read by parallel COPY streams.
PARALLEL_MIN_PAGES = 4096


@dataclass
class Extracted:
    mappings: list[ColumnMapping]
    extract_range: ExtractRange | None
    snapshot: ExtractSnapshot
    parquet: ParquetFile
    loaded_max: WatermarkValue | None
    watermark_column: WatermarkColumn | None
    preview: list[dict[str, Any]]
    row_versioned: bool
    rows_from_source: int
    rows_kept: int
    source_count: int | None
    null_watermarks: NullWatermarks | None


def extract_to_parquet(
    request: Any,
    services: Any,
    stored: StoredWatermark | None,
    local: Path,
    gate: SchemaGate,
    upload: FileFollower,
    previous: PreviousObject | None,
    null_capture_snapshot: str | None,
) -> Extracted:
    """Read ``request``'s rows in one snapshot into ``local`` (see module docstring)."""
    export = psql_executable() is not None
    with read_only_snapshot(services.source, request.source_name, export) as (cur, snapshot):
        kind = None
        if request.query is not None:
            columns = pg_catalog.describe_query(cur, request.query, request.source_name)
            row_versioned = False
        else:
            kind = pg_catalog.relation_kind(cur, request.schema, request.table)
            row_versioned = kind in pg_catalog.ROW_VERSIONED_KINDS
            columns = pg_catalog.describe_table(cur, request.schema, request.table)
        mappings = [map_column(c) for c in columns]
        watermark_column = _watermark_column(request, columns)
        key = _key_columns(cur, request, [c.name for c in columns], kind)
        extract_range = _read_range(request, watermark_column, stored, row_versioned)
        statements = [
            query_builder.copy_statement(select.as_string(cur))
            for select in _selects(cur, request, mappings, extract_range or ExtractRange(), kind)
        ]
        changes = gate.check(column_entries(mappings))
        if changes.flagged:
            log.warning("%s: schema changed: %s", request.source_name, changes.describe())
        schema = with_changes_metadata(arrow_schema(mappings), changes)
        held: HeldValues | None = None
        if previous is not None:
            schema = merged_schema(schema, previous.schema, request.source_name)
            version = version_columns(key, [c.name for c in columns],
                                      watermark_column.name if watermark_column else None, previous.schema,
                                      request.source_name)
            held = HeldValues(previous, version, schema.names[len(columns):], schema)
        nulls = _null_watermarks(cur, request, watermark_column, columns, key, extract_range,
                                 null_capture_snapshot, row_versioned)
        framed = False
        while True:
            try:
                written = _write(cur, services, snapshot, statements, mappings, schema, local, upload,
                                 request.source_name, watermark_column, previous, held, framed)
                break
            except RowLargerThanBlock:
                log.info("%s: a row is larger than a read block; reading again row by row", request.source_name)
                framed = True
            except FieldTooLarge as e:
                raise e.with_key(_large_field_key(cur, request, e, key, columns)) from e
            except NotUtf8Text as e:
                raise _not_utf8(str(e), snapshot) from e
            except IngestionError as e:
                if "invalid byte sequence for encoding" not in str(e):
                    raise
                raise _not_utf8(str(e), snapshot) from e
        source_count = _count(cur, request, extract_range) if request.reconcile else None
    parquet, loaded_max, preview, rows_from_source = written
    return Extracted(
        mappings=mappings,
        extract_range=extract_range,
        snapshot=snapshot,
        parquet=parquet,
        loaded_max=loaded_max,
        watermark_column=watermark_column,
        preview=preview,
        row_versioned=row_versioned,
        rows_from_source=rows_from_source,
        rows_kept=parquet.row_count - rows_from_source,
        source_count=source_count,
        null_watermarks=nulls,
    )


def _write(
    cur: Any,
    services: Any,
    snapshot: ExtractSnapshot,
    statements: list[str],
    mappings: list[ColumnMapping],
    schema: pa.Schema,
    local: Path,
    upload: FileFollower,
    source_name: str,
    watermark_column: WatermarkColumn | None,
    previous: PreviousObject | None,
    held: HeldValues | None,
    framed: bool,
) -> tuple[ParquetFile, WatermarkValue | None, list[dict[str, Any]], int]:
    sink = ParquetSink(local, schema, follower=upload)
    written_keys = VersionKeys(held.version) if held is not None else None
    loaded_max: WatermarkValue | None = None
    preview: list[dict[str, Any]] = []
    from_source = 0
    try:
        for batch in extract_batches(
            cur, services.source, snapshot.export_id, statements, mappings,
            source_name, EXTRACT_APPLICATION_NAME, framed,
        ):
            batch = _conform(batch, schema, source_name)
            if held is not None:
                batch = held.fill(batch)
            if watermark_column is not None and batch.num_rows:
                batch_max = python_value(pc.max(batch.column(watermark_column.name)))
                if batch_max is not None and (loaded_max is None or batch_max > loaded_max):
                    loaded_max = batch_max
            if not preview and batch.num_rows:
                preview = preview_rows(batch, PREVIEW_ROWS)
            if written_keys is not None:
                written_keys.add(batch)
            from_source += batch.num_rows
            sink.write(batch)
        if previous is not None and written_keys is not None:
            for batch in kept_rows(previous, written_keys, schema):
                sink.write(batch)
    except BaseException:
        sink.abort()
        raise
    return sink.close(), loaded_max, preview, from_source


def _conform(batch: pa.RecordBatch, schema: pa.Schema, source_name: str) -> pa.RecordBatch:
    """The extract's batch as ``schema``: a merge adds the previous object's extra columns (null)."""
    columns = list(batch.columns) + [pa.nulls(batch.num_rows, f.type) for f in list(schema)[batch.num_columns:]]
    try:
        return pa.RecordBatch.from_arrays(columns, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise IngestionError(f"{source_name}: extracted data does not match its schema: {e}") from e


def _selects(
    cur: Any, request: Any, mappings: list[ColumnMapping], extract_range: ExtractRange, kind: str | None
) -> list[Any]:
    """The SELECTs of the extract: one, or one per page range of a large plain table read in full."""
    if request.query is not None:
        return [query_builder.query_extract(request.query, mappings)]
    if extract_range.is_full and kind in ("r", "m") and psql_executable() is not None:
        pages = pg_catalog.relation_pages(cur, request.schema, request.table)
        if pages >= PARALLEL_MIN_PAGES:
            return [
                query_builder.table_extract(request.schema, request.table, mappings, extract_range, page_range)
                for page_range in query_builder.split_pages(pages, parallel_streams())
            ]
    return [query_builder.table_extract(request.schema, request.table, mappings, extract_range)]


def parallel_streams() -> int:
    """How many COPY streams read one large table (INGESTION_PARALLEL_STREAMS, default: cores)."""
    configured = os.environ.get("INGESTION_PARALLEL_STREAMS")
    return max(1, int(configured)) if configured else max(2, min(4, os.cpu_count() or 2))


def _watermark_column(request: Any, columns: list[Any]) -> WatermarkColumn | None:
    if not request.watermark_column:
        return None
    by_name = {c.name: c for c in columns}
    column = by_name.get(request.watermark_column)
    if column is None:
        raise WatermarkError(
            f"{request.source_name}: watermark column {request.watermark_column!r} does not exist; "
            f"columns are {sorted(by_name)}"
        )
    check_column_type(
        request.source_name, column.name, column.type_name, request.watermark_type or "timestamp"
    )
    return WatermarkColumn(column.name, column.type_name, request.watermark_type or "timestamp", column.nullable)


def _key_columns(cur: Any, request: Any, names: list[str], kind: str | None) -> list[str]:
    """The row's key: the table's primary key, else the registry's ``key_columns``, else none."""
    primary = (
        pg_catalog.primary_key(cur, request.schema, request.table)
        if request.query is None and kind in pg_catalog.ROW_VERSIONED_KINDS else []
    )
    if not request.key_columns:
        return primary
    if primary and list(request.key_columns) != primary:
        raise SchemaDetectionError(
            f"{request.source_name}: key_columns {list(request.key_columns)} are set, but the table's primary "
            f"key is {primary}, which is the row's key: remove key_columns from the registry (it is for views "
            "and tables without a primary key)"
        )
    missing = [c for c in request.key_columns if c not in names]
    if missing:
        raise SchemaDetectionError(
            f"{request.source_name}: key_columns {missing} are not columns of the source; "
            f"its columns are {names}: fix key_columns in the registry"
        )
    return list(request.key_columns)


def _read_range(
    request: Any, column: WatermarkColumn | None, stored: StoredWatermark | None, row_versioned: bool
) -> ExtractRange | None:
    """What the run reads (see ``partition_planning`` and ``load_planning``)."""
    if request.mode == "replay":
        return request.replay_range
    if column is None:
        return None
    base = ExtractRange(column=column.name, cast_type=column.pg_type)
    if request.mode == "incremental":
        return incremental_range(request.source_name, column, stored, row_versioned)
    if request.mode == "window":
        window = window_range(column, request.window or Window(None, None))
        return replace(window, include_nulls=request.include_nulls)
    if request.mode == "range":
        if stored is not None and stored.column != column.name:
            raise WatermarkError(
                f"{request.source_name}: the stored watermark is on column {stored.column!r} but the source "
                f"now uses {column.name!r}; its value cannot bound the new column's range. DELETE FROM "
                f"data_platform.watermarks WHERE source_name = '{request.source_name}' to extract again from "
                "the start (rows other partitions hold are loaded again), or set it to a value of the new column"
            )
        if request.lower is not None:
            parse_value(request.lower, column.pg_type)  # fail early on a bad manual UPDATE
        return replace(base, lower=request.lower, include_nulls=request.include_nulls)
    return base


def _null_watermarks(
    cur: Any,
    request: Any,
    column: WatermarkColumn | None,
    columns: list[Any],
    key: list[str],
    extract_range: ExtractRange | None,
    capture_snapshot: str | None,
    row_versioned: bool,
) -> NullWatermarks | None:
    """NULL-watermark rows no load captured (None: the column cannot hold NULL, or not a table)."""
    if column is None or not column.nullable or request.table is None:
        return None
    if extract_range is not None and (extract_range.include_nulls or extract_range.is_full):
        return NullWatermarks()  # this run reads them all
    return uncaptured_null_rows(
        cur, request.schema, request.table, column.name, key, [c.name for c in columns],
        capture_snapshot, row_versioned,
    )


def _count(cur: Any, request: Any, extract_range: ExtractRange | None) -> int:
    """The rows of the range read, counted in the extract's own snapshot."""
    if request.query is not None:
        statement = sql.SQL("SELECT count(*) FROM (\n{}\n) AS custom_query").format(
            sql.SQL(query_builder.custom_query_text(request.query, request.source_name))
        )
    else:
        statement = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
            query_builder.relation(request.schema, request.table),
            query_builder.range_condition(extract_range or ExtractRange()),
        )
    cur.execute(statement)
    return cur.fetchone()[0]


def _large_field_key(
    cur: Any, request: Any, error: FieldTooLarge, key: list[str], columns: list[Any]
) -> dict[str, Any] | None:
    """The key of the row holding the oversized field: from the fields read before it, else queried."""
    known = error.key or {}
    if key and all(k in known for k in key):
        return {k: known[k] for k in key}
    if not key:
        first = next(iter(known), None)
        return None if first is None else {first: known[first]}
    if request.query is not None:
        return None
    types = {c.name: c.type_name for c in columns}
    column = sql.Identifier(error.column)
    size = (
        sql.SQL("octet_length({})").format(column)
        if types.get(error.column) == "bytea"
        else sql.SQL("octet_length({}::text)").format(column)
    )
    cur.execute(
        sql.SQL("SELECT {} FROM {} WHERE {} > {} LIMIT 1").format(
            sql.SQL(", ").join(sql.Identifier(k) for k in key),
            query_builder.relation(request.schema, request.table), size, sql.Literal(MAX_FIELD_BYTES),
        )
    )
    row = cur.fetchone()
    return dict(zip(key, row)) if row else None


def _not_utf8(message: str, snapshot: ExtractSnapshot) -> IngestionError:
    """Text that is not UTF-8 can only come from a SQL_ASCII database: say so, and the fix."""
    if snapshot.server_encoding.upper() == "SQL_ASCII":
        return IngestionError(
            f"{message}. The source database's encoding is SQL_ASCII: PostgreSQL keeps its text as raw "
            "bytes and cannot convert them to UTF-8, and these bytes are not valid UTF-8. Select such a "
            "column as bytes in a custom query (convert_to(col, 'SQL_ASCII') AS col, stored as binary), or "
            "move the data to a database created with its real encoding (e.g. ENCODING 'LATIN1')"
        )
    return IngestionError(f"{message}; the source database's encoding is {snapshot.server_encoding}")

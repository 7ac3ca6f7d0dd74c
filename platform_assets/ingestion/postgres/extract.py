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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.ingestion.errors import (
    IngestionError,
)
from platform_assets.ingestion.postgres import catalog as pg_catalog
from platform_assets.ingestion.postgres import query_builder, snapshot_reads
from platform_assets.ingestion.postgres.copy_lines import FieldTooLarge
from platform_assets.ingestion.postgres.copy_reader import (
    NotUtf8Text,
    RowLargerThanBlock,
)
from platform_assets.ingestion.postgres.copy_streams import (
    extract_batches,
    psql_executable,
)
from platform_assets.ingestion.postgres.delete_capture import (
    CapturedDeletes,
    DeleteCapture,
    capture_deletes,
)
from platform_assets.ingestion.postgres.load_planning import (
    WatermarkColumn,
)
from platform_assets.ingestion.postgres.null_watermarks import (
    NullWatermarks,
)
from platform_assets.ingestion.postgres.query_builder import ExtractRange
from platform_assets.ingestion.postgres.session import (
    EXTRACT_APPLICATION_NAME,
    ExtractSnapshot,
    read_only_snapshot,
)
from platform_assets.ingestion.postgres.type_mapping import (
    ColumnMapping,
    arrow_schema,
    map_column,
)
from platform_assets.ingestion.postgres.watermark_values import (
    WatermarkValue,
)
from platform_assets.ingestion.sink.arrow_values import python_value
from platform_assets.ingestion.sink.object_merge import (
    HeldValues,
    PreviousObject,
    VersionKeys,
    kept_rows,
    merged_schema,
    version_columns,
)
from platform_assets.ingestion.sink.parquet import (
    FileFollower,
    ParquetFile,
    ParquetSink,
    preview_rows,
)
from platform_assets.ingestion.sink.schema_evolution import (
    SchemaGate,
    with_changes_metadata,
)
from platform_assets.ingestion.sink.schema_metadata import column_entries
from platform_assets.ingestion.tracking.watermark_store import StoredWatermark
from platform_resources.config import EngineSettings

log = logging.getLogger(__name__)

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
    deletes: CapturedDeletes | None = None
    key_columns: list[str] | None = None


def extract_to_parquet(
    request: Any,
    services: Any,
    stored: StoredWatermark | None,
    local: Path,
    gate: SchemaGate,
    upload: FileFollower,
    previous: PreviousObject | None,
    null_capture_snapshot: str | None,
    capture: DeleteCapture | None = None,
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
        watermark_column = snapshot_reads.watermark_column(request, columns)
        key = snapshot_reads.key_columns(cur, request, [c.name for c in columns], kind)
        extract_range = snapshot_reads.read_range(request, watermark_column, stored, row_versioned)
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
        nulls = snapshot_reads.null_watermarks(cur, request, watermark_column, columns, key, extract_range,
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
                raise e.with_key(snapshot_reads.large_field_key(cur, request, e, key, columns)) from e
            except NotUtf8Text as e:
                raise _not_utf8(str(e), snapshot) from e
            except IngestionError as e:
                if "invalid byte sequence for encoding" not in str(e):
                    raise
                raise _not_utf8(str(e), snapshot) from e
        source_count = snapshot_reads.count(cur, request, extract_range) if request.reconcile else None
        deletes = capture_deletes(cur, services.source, snapshot, request, mappings, key, capture) if capture else None
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
        deletes=deletes,
        key_columns=key,
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
                preview = preview_rows(batch)
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
    configured = EngineSettings.from_env().parallel_streams
    return configured or max(2, min(4, os.cpu_count() or 2))


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

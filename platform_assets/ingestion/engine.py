"""Runs one tracked load of a PostgreSQL table or query into the bronze layer.

Order of a run (each step's failure marks the run ``failed`` and leaves the watermark):

1. bootstrap the tracking tables; take the source's advisory lock; mark runs of the
   source left ``running`` by a crashed process ``failed``; insert this run ``running``;
2. in one read-only snapshot: read column types, decide the extract range, stream
   ``COPY`` into a local Parquet file;
3. upload the file (the object appears at its key only when complete);
4. in one platform transaction: mark the run ``success``, move the watermark, log the schema.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.ingestion import pg_catalog, query_builder, tracking
from platform_assets.ingestion.copy_streams import extract_batches, psql_executable
from platform_assets.ingestion.errors import IngestionError, WatermarkError
from platform_assets.ingestion.load_planning import (
    LoadMode,
    WatermarkColumn,
    catchup_floor,
    incremental_range,
    next_watermark,
    window_range,
)
from platform_assets.ingestion.arrow_values import python_value
from platform_assets.ingestion.parquet_sink import FileFollower, ParquetSink, preview_rows
from platform_assets.ingestion.query_builder import ExtractRange
from platform_assets.ingestion.schema_evolution import (
    SchemaGate,
    SchemaPolicy,
    with_changes_metadata,
)
from platform_assets.ingestion.schema_metadata import (
    column_entries,
    postgres_schema_metadata,
)
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.source_session import (
    EXTRACT_APPLICATION_NAME,
    ExtractSnapshot,
    read_only_snapshot,
)
from platform_assets.ingestion.tracked_run import tracked_run
from platform_assets.ingestion.type_mapping import (
    ColumnMapping,
    arrow_schema,
    map_column,
)
from platform_assets.ingestion.watermark_values import (
    WatermarkValue,
    Window,
    check_column_type,
)

log = logging.getLogger(__name__)

PREVIEW_ROWS = 5
# Tables from this many heap pages (8 KiB each: 32 MiB) are read by parallel COPY streams.
PARALLEL_MIN_PAGES = 4096


@dataclass(frozen=True)
class LoadRequest:
    """One load. ``schema``/``table`` for a relation, or ``query`` for a custom query."""

    source_name: str
    object_key: str
    execution_date: str
    mode: LoadMode = "full"
    schema: str | None = None
    table: str | None = None
    query: str | None = None
    watermark_column: str | None = None
    watermark_type: str | None = None
    window: Window | None = None
    # mode "replay": read exactly this recorded range; mode "incremental": read from
    # it instead of the stored watermark (a frontier partition loaded again).
    replay_range: ExtractRange | None = None
    schema_policy: SchemaPolicy = "evolve"
    partition_key: str | None = None
    dagster_run_id: str | None = None
    source_type: str = "postgres"


@dataclass
class _Extract:
    mappings: list[ColumnMapping]
    extract_range: ExtractRange | None
    snapshot: ExtractSnapshot
    row_count: int
    file_size_bytes: int
    checksum: str
    loaded_max: WatermarkValue | None
    watermark_column: WatermarkColumn | None
    preview: list[dict[str, Any]]
    row_versioned: bool


def run_load(request: LoadRequest, services: Services) -> dict[str, Any]:
    """Run one tracked load and return the guide's result dict."""
    start = tracking.RunStart(
        source_name=request.source_name,
        source_type=request.source_type,
        execution_date=request.execution_date,
        object_key=request.object_key,
        uri=services.uri(request.object_key),
        load_mode=request.mode,
        partition_key=request.partition_key,
        dagster_run_id=request.dagster_run_id,
        watermark_column=request.watermark_column,
    )
    with tracked_run(services, start) as (platform, run_id):
        return _load(request, services, platform, run_id, start.uri)


def _load(
    request: LoadRequest, services: Services, platform: Any, run_id: int, uri: str
) -> dict[str, Any]:
    stored = (
        tracking.read_watermark(platform, request.source_name) if request.watermark_column else None
    )
    gate = SchemaGate(
        request.source_name, request.schema_policy, tracking.last_schema(platform, request.source_name)
    )
    services.store.ensure_bucket(services.bronze_bucket)
    with tempfile.TemporaryDirectory(prefix="ingest-", dir=services.work_dir) as tmp:
        local = Path(tmp) / "data.parquet"
        upload = services.store.growing_upload(local, services.bronze_bucket, request.object_key)
        try:
            extract = _extract(request, services, stored, local, gate, upload)
            upload.complete(extract.file_size_bytes)
        except BaseException:
            upload.abort()
            raise

    watermark_before = stored.value if stored else None
    watermark_after, watermark_update = _watermark_update(
        request, platform, extract, stored, run_id
    )
    recorded_range = _recorded_range(request, extract.extract_range, watermark_after)
    schema = postgres_schema_metadata(
        extract.mappings, request.schema, request.table, request.query
    )
    tracking.commit_success(
        platform,
        run_id,
        request.source_name,
        request.execution_date,
        tracking.RunSuccess(
            row_count=extract.row_count,
            file_size_bytes=extract.file_size_bytes,
            checksum=extract.checksum,
            watermark_before=watermark_before,
            watermark_after=watermark_after,
            extract_range=recorded_range.to_json() if recorded_range else None,
            source_snapshot=str(extract.snapshot.snapshot),
            snapshot_taken_at=extract.snapshot.taken_at,
            needs_late_check=_needs_late_check(request, extract),
            schema_metadata=schema,
            schema_changes=None if gate.changes.empty else gate.changes.to_json(),
        ),
        watermark_update,
    )
    log.info("%s: %d rows -> %s", request.source_name, extract.row_count, uri)
    result: dict[str, Any] = {
        "uri": uri,
        "object_key": request.object_key,
        "row_count": extract.row_count,
        "file_size_bytes": extract.file_size_bytes,
        "checksum": extract.checksum,
        "source_name": request.source_name,
        "source_type": request.source_type,
        "execution_date": request.execution_date,
        "status": "success",
        "run_id": run_id,
        "load_mode": request.mode,
        "schema": schema,
        "schema_changes": gate.changes.to_json(),
        "extract_range": recorded_range.to_json() if recorded_range else None,
        "preview": extract.preview,
    }
    if request.watermark_column:
        result.update(
            watermark_column=request.watermark_column,
            watermark_type=request.watermark_type,
            watermark_before=watermark_before,
            watermark_after=watermark_after,
        )
    return result


def _extract(
    request: LoadRequest,
    services: Services,
    stored: tracking.StoredWatermark | None,
    local: Path,
    gate: SchemaGate,
    upload: FileFollower,
) -> _Extract:
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
        extract_range = _plan(request, watermark_column, stored, row_versioned)
        statements = [
            query_builder.copy_statement(select.as_string(cur))
            for select in _selects(cur, request, mappings, extract_range or ExtractRange(), kind)
        ]
        changes = gate.check(column_entries(mappings))
        if changes.flagged:
            log.warning("%s: schema changed: %s", request.source_name, changes.describe())
        schema = with_changes_metadata(arrow_schema(mappings), changes)
        sink = ParquetSink(local, schema, follower=upload)
        loaded_max: WatermarkValue | None = None
        preview: list[dict[str, Any]] = []
        try:
            for batch in extract_batches(
                cur, services.source, snapshot.export_id, statements, mappings,
                request.source_name, EXTRACT_APPLICATION_NAME,
            ):
                batch = _conform(batch, schema, request.source_name)
                if watermark_column is not None and batch.num_rows:
                    batch_max = python_value(pc.max(batch.column(watermark_column.name)))
                    if batch_max is not None and (loaded_max is None or batch_max > loaded_max):
                        loaded_max = batch_max
                if not preview and batch.num_rows:
                    preview = preview_rows(batch, PREVIEW_ROWS)
                sink.write(batch)
        except BaseException:
            sink.abort()
            raise
        written = sink.close()
    return _Extract(
        mappings=mappings,
        extract_range=extract_range,
        snapshot=snapshot,
        row_count=written.row_count,
        file_size_bytes=written.size_bytes,
        checksum=written.md5,
        loaded_max=loaded_max,
        watermark_column=watermark_column,
        preview=preview,
        row_versioned=row_versioned,
    )


def _selects(
    cur: Any,
    request: LoadRequest,
    mappings: list[ColumnMapping],
    extract_range: ExtractRange,
    kind: str | None,
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


def _conform(batch: pa.RecordBatch, schema: pa.Schema, source_name: str) -> pa.RecordBatch:
    try:
        return pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise IngestionError(f"{source_name}: extracted data does not match its schema: {e}") from e


def _watermark_column(request: LoadRequest, columns: list[Any]) -> WatermarkColumn | None:
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
    return WatermarkColumn(column.name, column.type_name, request.watermark_type or "timestamp")


def _plan(
    request: LoadRequest,
    column: WatermarkColumn | None,
    stored: tracking.StoredWatermark | None,
    row_versioned: bool,
) -> ExtractRange | None:
    if request.replay_range is not None:
        return request.replay_range
    if column is None:
        return None
    if request.mode == "incremental":
        return incremental_range(request.source_name, column, stored, row_versioned)
    if request.mode == "window":
        return window_range(column, request.window or Window(None, None))
    return ExtractRange(column=column.name, cast_type=column.pg_type)


def _recorded_range(
    request: LoadRequest, extract_range: ExtractRange | None, watermark_after: str | None
) -> ExtractRange | None:
    """The range as covered: an incremental run read everything up to the new watermark."""
    if request.mode != "incremental" or extract_range is None or watermark_after is None:
        return extract_range
    return replace(extract_range, upper=watermark_after, upper_inclusive=True)


def _watermark_update(
    request: LoadRequest,
    platform: Any,
    extract: _Extract,
    stored: tracking.StoredWatermark | None,
    run_id: int,
) -> tuple[str | None, tracking.WatermarkUpdate | None]:
    column = extract.watermark_column
    if column is None:
        return None, None
    before = stored.value if stored and stored.column == column.name else None
    after = next_watermark(before, extract.loaded_max, column.pg_type)
    snapshot = extract.snapshot
    if request.mode == "incremental":
        last_snapshot = str(snapshot.snapshot)
        open_before = snapshot.open_before
        floor = catchup_floor(
            open_before,
            snapshot.client_writers,
            before,
            after,
            tracking.watermark_as_of(platform, request.source_name, open_before.oldest_start)
            if open_before.oldest_start
            else None,
        )
    else:
        last_snapshot = stored.last_snapshot if stored else None
        floor = stored.catchup_floor if stored else None
    return after, tracking.WatermarkUpdate(
        column=column.name,
        value=after,
        watermark_type=column.watermark_type,
        last_snapshot=last_snapshot,
        catchup_floor=floor,
    )


def _needs_late_check(request: LoadRequest, extract: _Extract) -> bool:
    """Whether rows may still be committed into this partition's window later."""
    if request.mode != "window" or request.window is None or not extract.row_versioned:
        return False
    snapshot = extract.snapshot
    if not snapshot.open_before.none or snapshot.client_writers:
        return True
    end = request.window.end
    return end is None or end > snapshot.taken_at

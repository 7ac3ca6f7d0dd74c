"""Runs one tracked load of a PostgreSQL table or query into the bronze layer.

Order of a run (each step's failure marks the run ``failed`` and leaves the watermark):

1. with the source's advisory lock held: mark runs of the source left ``running``
   by a crashed process ``failed``; read the source's state; insert this run ``running``;
2. on a replay, download the partition's previous object (it is merged, see
   ``object_merge``);
3. in one read-only snapshot (``extract``): read column types, decide the range,
   stream ``COPY`` into a local Parquet file while it is uploaded (``sink.staged``);
4. complete the upload if the lock is still held (the object appears at its key only
   when complete);
5. in one platform transaction: mark the run ``success``, move the watermark, log the schema.

``run_load`` takes the lock for one run (the guide's functions); ``run_locked`` runs
inside a lock already held (a partition load and the late-row reloads it triggers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from platform_assets.ingestion.postgres.delete_capture import (
    DeletesRequest,
    prepare_capture,
    store_deletes,
)
from platform_assets.ingestion.postgres.extract import Extracted, extract_to_parquet
from platform_assets.ingestion.postgres.load_planning import (
    LoadMode,
    catchup_floor,
    next_watermark,
)
from platform_assets.ingestion.postgres.query_builder import ExtractRange
from platform_assets.ingestion.postgres.source_state import (
    SourceState,
    read_source_state,
)
from platform_assets.ingestion.postgres.watermark_values import (
    Window,
    format_value,
    parse_value,
)
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.sink.load_result import TableLoadResult
from platform_assets.ingestion.sink.object_merge import PreviousObject
from platform_assets.ingestion.sink.schema_evolution import SchemaGate, SchemaPolicy
from platform_assets.ingestion.sink.schema_metadata import postgres_schema_metadata
from platform_assets.ingestion.sink.staged import staged_upload
from platform_assets.ingestion.tracking import run_records, schema_log, watermark_store
from platform_assets.ingestion.tracking.run_scope import run_in_session, tracked_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadRequest:
    """One load. ``schema``/``table`` for a relation, or ``query`` for a custom query.

    Modes (see ``load_planning`` and ``partitions.postgres``): ``full``; ``incremental``
    (the guide's: past the stored watermark, plus a catch-up of late rows); ``window``
    (a timestamp partition's day); ``range`` (an integer partition: from ``lower`` on);
    ``replay`` (exactly ``replay_range``).
    """

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
    replay_range: ExtractRange | None = None
    lower: str | None = None
    include_nulls: bool = False
    previous_upper: str | None = None
    merge: bool = False
    """Merge into the partition's previous object (a replay keeps what bronze held)."""
    merge_from: str | None = None
    """Where the previous object is, when not at ``object_key`` (the key pattern changed)."""
    rebuild: bool = False
    watermark_reset: dict[str, Any] | None = None
    key_columns: tuple[str, ...] = ()
    reconcile: bool = False
    """Count the range's rows in the extract's snapshot (``source_count`` in the result)."""
    deletes: DeletesRequest | None = None
    """Set for sources that capture deletes."""
    schema_policy: SchemaPolicy = "evolve"
    partition_key: str | None = None
    dagster_run_id: str | None = None
    source_type: str = "postgres"

    @property
    def writes_watermark(self) -> bool:
        return self.watermark_column is not None and self.mode in ("incremental", "window", "range")


def run_load(request: LoadRequest, services: Services) -> TableLoadResult:
    """Run one tracked load, holding the source's lock."""
    start = _run_start(request, services)
    with tracked_run(services, start) as (platform, run_id):
        state = read_source_state(platform, request.source_name)
        if request.mode == "incremental" and request.watermark_reset is None:
            request = replace(request, watermark_reset=state.reset())
        return _load(request, services, platform, run_id, start.uri, state)


def run_locked(request: LoadRequest, services: Services, platform: Any, state: SourceState) -> TableLoadResult:
    """Run one tracked load with the source's lock already held on ``platform``."""
    start = _run_start(request, services)
    with run_in_session(platform, services, start) as run_id:
        return _load(request, services, platform, run_id, start.uri, state)


def _run_start(request: LoadRequest, services: Services) -> run_records.RunStart:
    return run_records.RunStart(
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


def _load(
    request: LoadRequest, services: Services, platform: Any, run_id: int, uri: str, state: SourceState
) -> TableLoadResult:
    stored = state.watermark if request.watermark_column else None
    gate = SchemaGate(
        request.source_name, request.schema_policy, schema_log.last_schema(platform, request.source_name),
        compare_nullability=request.query is None,
    )
    with staged_upload(services, request.object_key) as stage:
        previous = _previous_object(request, services, stage.directory)
        capture = prepare_capture(request, services, stage.directory)
        extract = extract_to_parquet(
            request, services, stored, stage.local, gate, stage.upload, previous, state.null_capture_snapshot,
            capture,
        )
        stage.publish(platform, request.source_name, extract.parquet.size_bytes)
        deletes = store_deletes(request, services, platform, extract.deletes, run_id)

    watermark_before = stored.value if stored else None
    watermark_after, watermark_update = _watermark_update(request, platform, extract, stored, watermark_before)
    recorded_range = _recorded_range(request, extract, watermark_after)
    schema = postgres_schema_metadata(extract.mappings, request.schema, request.table, request.query)
    run_records.commit_success(
        platform,
        run_id,
        request.source_name,
        request.execution_date,
        run_records.RunSuccess(
            row_count=extract.parquet.row_count,
            file_size_bytes=extract.parquet.size_bytes,
            checksum=extract.parquet.md5,
            watermark_before=watermark_before,
            watermark_after=watermark_after,
            extract_range=recorded_range.to_json() if recorded_range else None,
            source_snapshot=str(extract.snapshot.snapshot),
            snapshot_taken_at=extract.snapshot.taken_at,
            needs_late_check=_needs_late_check(request, extract),
            schema_metadata=schema,
            schema_changes=None if gate.changes.empty else gate.changes.to_json(),
            watermark_reset=request.watermark_reset,
            rebuild=request.rebuild,
            rows_kept=extract.rows_kept if request.merge else None,
            deleted_rows=deletes.rows if deletes else None,
            deletes_object_key=deletes.object_key if deletes else None,
            key_set_object_key=deletes.key_set if deletes else None,
        ),
        watermark_update,
    )
    log.info("%s: %d rows -> %s", request.source_name, extract.parquet.row_count, uri)
    return replace(
        _result(request, run_id, uri, extract, schema, gate, recorded_range, watermark_before, watermark_after),
        deleted_rows=deletes.rows if deletes else None,
        deletes_uri=services.uri(deletes.object_key) if deletes and deletes.object_key else None,
    )


def _previous_object(request: LoadRequest, services: Services, tmp: Path) -> PreviousObject | None:
    if not request.merge:
        return None
    path = tmp / "previous.parquet"
    key = request.merge_from or request.object_key
    if not services.store.download_if_exists(services.bronze_bucket, key, path):
        log.warning("%s: partition %s has no object at %s any more; loading it from the source only",
                    request.source_name, request.partition_key, key)
        return None
    return PreviousObject.open(path)


def _watermark_update(
    request: LoadRequest,
    platform: Any,
    extract: Extracted,
    stored: watermark_store.StoredWatermark | None,
    watermark_before: str | None,
) -> tuple[str | None, watermark_store.WatermarkUpdate | None]:
    column = extract.watermark_column
    if column is None:
        return None, None
    if not request.writes_watermark:
        return watermark_before, None
    before = watermark_before if stored and stored.column == column.name else None
    after = next_watermark(before, extract.loaded_max, column.pg_type)
    snapshot = extract.snapshot
    if request.mode == "incremental":
        last_snapshot = str(snapshot.snapshot)
        open_at_snapshot = snapshot.open_at_snapshot
        floor = catchup_floor(
            open_at_snapshot,
            snapshot.client_writers,
            before,
            after,
            watermark_store.watermark_as_of(platform, request.source_name, open_at_snapshot.oldest_start)
            if open_at_snapshot.oldest_start
            else None,
        )
    else:
        last_snapshot = stored.last_snapshot if stored else None
        floor = stored.catchup_floor if stored else None
    return after, watermark_store.WatermarkUpdate(
        column=column.name,
        value=after,
        watermark_type=column.watermark_type,
        last_snapshot=last_snapshot,
        catchup_floor=floor,
        read=stored,
    )


def _recorded_range(request: LoadRequest, extract: Extracted, watermark_after: str | None) -> ExtractRange | None:
    """The range as covered, bounded, so that replaying it reads the same rows.

    The guide's incremental run covered everything up to the new watermark (and, on
    a first run, the NULL-watermark rows). An integer partition's range ends at the
    largest value it loaded (never below its previous end); having loaded nothing,
    it is empty.
    """
    read = extract.extract_range
    if read is None:
        return None
    if request.mode == "incremental":
        first = read.lower is None and read.catchup is None
        if watermark_after is None:
            return replace(read, include_nulls=first, empty=not first)
        return replace(read, upper=watermark_after, upper_inclusive=True, include_nulls=first)
    if request.mode == "range":
        column = extract.watermark_column
        candidates = [v for v in (request.previous_upper, extract.loaded_max) if v is not None]
        values = [parse_value(v, column.pg_type) if isinstance(v, str) else v for v in candidates]
        if not values:
            return replace(read, empty=True)
        return replace(read, upper=format_value(max(values)), upper_inclusive=True)
    return read


def _needs_late_check(request: LoadRequest, extract: Extracted) -> bool:
    """Whether later runs check this partition for rows its snapshot could not see.

    Every partition load of a table is checked at least once, by the next run: a
    transaction that began just before the snapshot and had not written yet is in
    neither the count of open transactions nor the snapshot. The check clears the
    flag once nothing that began before the snapshot is still open (``late_rows``).
    """
    return (
        request.partition_key is not None
        and request.mode in ("window", "range", "replay")
        and extract.row_versioned
    )


def _result(
    request: LoadRequest,
    run_id: int,
    uri: str,
    extract: Extracted,
    schema: dict[str, Any],
    gate: SchemaGate,
    recorded_range: ExtractRange | None,
    watermark_before: str | None,
    watermark_after: str | None,
) -> TableLoadResult:
    nulls = extract.null_watermarks
    warnings = []
    if nulls is not None and nulls.rows:
        warnings.append(nulls.warning(request.source_name, request.watermark_column or ""))
    watermark = request.watermark_column is not None
    return TableLoadResult(
        uri=uri,
        object_key=request.object_key,
        row_count=extract.parquet.row_count,
        file_size_bytes=extract.parquet.size_bytes,
        checksum=extract.parquet.md5,
        source_name=request.source_name,
        source_type=request.source_type,
        execution_date=request.execution_date,
        run_id=run_id,
        schema=schema,
        schema_changes=gate.changes.to_json(),
        preview=extract.preview,
        load_mode=request.mode,
        partition_key=request.partition_key,
        extract_range=recorded_range.to_json() if recorded_range else None,
        warnings=warnings,
        rows_from_source=extract.rows_from_source,
        rows_kept=extract.rows_kept,
        source_count=extract.source_count,
        merged=request.merge,
        rebuild=request.rebuild,
        watermark_reset=request.watermark_reset,
        null_watermark_rows=None if nulls is None else nulls.rows,
        null_watermark_sample=None if nulls is None else nulls.sample,
        watermark_column=request.watermark_column,
        watermark_type=request.watermark_type if watermark else None,
        watermark_before=watermark_before if watermark else None,
        watermark_after=watermark_after if watermark else None,
        key_columns=list(extract.key_columns or []),
    )

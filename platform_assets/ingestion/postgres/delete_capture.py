"""Hard deletes of a source with a key, found by comparing key sets (no replication slot).

A frontier run of a source with ``capture_deletes`` reads every row's key in the same
snapshot as its data (``query_builder.key_query``), writes them as its key set, and
compares them with the key set of the previous frontier run (``key_sets``): the keys
that disappeared are this run's deletions. They are added to the partition's
tombstone object, after the deletions earlier runs of the partition recorded:

    <key columns, typed as in the data object> | _deleted_at timestamp[us, UTC]

``_deleted_at`` is the snapshot time at which a deletion was first observed. Only the
first ``previous_deleted`` rows of the partition's earlier tombstone are kept: those
its last successful run recorded (a run that failed after writing the object wrote
more, which this run observes again).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from platform_assets.ingestion.errors import IngestionError, SchemaDetectionError
from platform_assets.ingestion.postgres.copy_streams import extract_batches
from platform_assets.ingestion.postgres.key_sets import (
    COLLATED_TYPES,
    ORDERED_TYPES,
    KeyOrderError,
    missing_keys,
)
from platform_assets.ingestion.postgres.query_builder import copy_statement, key_query
from platform_assets.ingestion.postgres.session import (
    EXTRACT_APPLICATION_NAME,
    ExtractSnapshot,
)
from platform_assets.ingestion.postgres.type_mapping import ColumnMapping, arrow_schema
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.sink.parquet import ParquetFile, ParquetSink
from platform_assets.ingestion.tracking import run_records

log = logging.getLogger(__name__)

DELETED_AT = "_deleted_at"
READ_BATCH_ROWS = 64 * 1024


@dataclass(frozen=True)
class DeletesRequest:
    """Deletes capture for one run (see ``delete_capture``)."""

    observe: bool
    """A frontier run: compare key sets; else carry the partition's tombstone forward."""
    tombstone_key: str
    key_set_key: str
    """Where this run's key set goes (``{run_id}`` is filled in)."""
    previous_key_set: str | None = None
    previous_deleted: int = 0
    """Rows the partition's tombstone held after its last successful run."""
    previous_tombstone: str | None = None


@dataclass(frozen=True)
class DeleteCapture:
    """What a frontier run needs to capture deletes (local copies of the earlier objects)."""

    directory: Path
    previous_key_set: Path | None
    """The key set of the previous frontier run (None: this is the source's first)."""
    previous_tombstone: Path | None
    """This partition's tombstone as its last successful run stored it (None: none)."""
    previous_deleted: int = 0
    """Rows of ``previous_tombstone`` that run recorded."""


@dataclass(frozen=True)
class CapturedDeletes:
    key_set: ParquetFile
    tombstone: ParquetFile
    new_deletions: int

    @property
    def deleted_rows(self) -> int:
        """The partition's deletions: earlier runs' and this one's."""
        return self.tombstone.row_count


def capture_deletes(
    cur: Any,
    settings: Any,
    snapshot: ExtractSnapshot,
    request: Any,
    mappings: list[ColumnMapping],
    key: list[str],
    capture: DeleteCapture,
) -> CapturedDeletes:
    """Read the key set in ``cur``'s snapshot and write it and the partition's tombstone."""
    key_mappings = _key_mappings(request.source_name, mappings, key)
    key_schema = arrow_schema(key_mappings)
    tombstone_schema = key_schema.append(pa.field(DELETED_AT, pa.timestamp("us", tz="UTC")))
    cur.execute("SHOW server_encoding")
    utf8_server = cur.fetchone()[0].upper() in ("UTF8", "SQL_ASCII")
    statement = copy_statement(
        key_query(request.schema, request.table, key_mappings, COLLATED_TYPES, utf8_server).as_string(cur)
    )
    key_sink = ParquetSink(capture.directory / "key_set.parquet", key_schema)
    tombstone_sink = ParquetSink(capture.directory / "tombstone.parquet", tombstone_schema)
    try:
        for batch in _committed_rows(capture, tombstone_schema, request.source_name):
            tombstone_sink.write(batch)
        current = _recorded(
            extract_batches(cur, settings, snapshot.export_id, [statement], key_mappings, request.source_name,
                            EXTRACT_APPLICATION_NAME),
            key_sink, key_schema,
        )
        new_deletions = 0
        for missing in _checked(missing_keys(_previous_keys(capture, key_schema, request.source_name), current),
                                request.source_name):
            deleted_at = pa.array([snapshot.taken_at] * missing.num_rows, pa.timestamp("us", tz="UTC"))
            rows = missing.append_column(tombstone_schema.field(DELETED_AT), deleted_at).cast(tombstone_schema)
            for batch in rows.to_batches():
                tombstone_sink.write(batch)
            new_deletions += missing.num_rows
        for _ in current:
            pass  # the rest of the key set, past the previous set's last key
        return CapturedDeletes(key_sink.close(), tombstone_sink.close(), new_deletions)
    except BaseException:
        key_sink.abort()
        tombstone_sink.abort()
        raise


def _checked(missing: Iterator[pa.Table], source_name: str) -> Iterator[pa.Table]:
    try:
        yield from missing
    except KeyOrderError as e:
        raise IngestionError(
            f"{source_name}: {e}; the key's order changed since the previous run (a collation or encoding "
            "change?). Clear the earlier key sets to capture from this run on (see the README, Deletes)"
        ) from e


def _key_mappings(source_name: str, mappings: list[ColumnMapping], key: list[str]) -> list[ColumnMapping]:
    if not key:
        raise SchemaDetectionError(
            f"{source_name}: capture_deletes needs the row's key, and the table has no primary key: set "
            "key_columns: [...] in the registry (columns that identify a row)"
        )
    by_name = {m.column.name: m for m in mappings}
    chosen = [by_name[name] for name in key]
    unordered = [f"{m.column.name} ({m.column.type_name})" for m in chosen if m.column.type_name not in ORDERED_TYPES]
    if unordered:
        raise SchemaDetectionError(
            f"{source_name}: capture_deletes compares key sets in key order, and key columns {unordered} have "
            f"types it does not order the way PostgreSQL does; supported: {', '.join(sorted(ORDERED_TYPES))}. "
            "Use key_columns of those types, or set capture_deletes: false"
        )
    return chosen


def _recorded(batches: Iterator[pa.RecordBatch], sink: ParquetSink, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """``batches`` as ``schema``, each written to ``sink`` as it passes."""
    for batch in batches:
        batch = pa.RecordBatch.from_arrays(batch.columns, schema=schema)
        sink.write(batch)
        yield batch


def _previous_keys(capture: DeleteCapture, schema: pa.Schema, source_name: str) -> Iterator[pa.RecordBatch]:
    if capture.previous_key_set is None:
        return
    previous = pq.ParquetFile(capture.previous_key_set)
    _same_order(previous.schema_arrow, schema, source_name)
    for batch in previous.iter_batches(batch_size=READ_BATCH_ROWS):
        yield _cast(batch, schema, source_name, "key set")


def _same_order(previous: pa.Schema, current: pa.Schema, source_name: str) -> None:
    """Refuse a previous key set sorted another way: other key columns, in another order, or
    of a type whose order differs (integers widen, text stays text: both keep their order)."""
    def kind(t: pa.DataType) -> str:
        if pa.types.is_integer(t):
            return "integer"
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "text"
        return str(t)

    if previous.names != current.names or [kind(t) for t in previous.types] != [kind(t) for t in current.types]:
        was = ", ".join(f"{f.name} {f.type}" for f in previous)
        now = ", ".join(f"{f.name} {f.type}" for f in current)
        raise SchemaDetectionError(
            f"{source_name}: the key changed since the previous key set ({was} -> {now}), so deletes cannot be "
            f"compared across that change. To capture from this run on, clear the earlier key sets: UPDATE "
            f"data_platform.ingestion_metadata SET key_set_object_key = NULL WHERE source_name = '{source_name}' "
            "(deletes between the previous run and this one are then not captured)"
        )


def _committed_rows(capture: DeleteCapture, schema: pa.Schema, source_name: str) -> Iterator[pa.RecordBatch]:
    """The first ``previous_deleted`` rows of the partition's earlier tombstone."""
    left = capture.previous_deleted
    if capture.previous_tombstone is None or left == 0:
        return
    for batch in pq.ParquetFile(capture.previous_tombstone).iter_batches(batch_size=READ_BATCH_ROWS):
        if left <= 0:
            return
        batch = batch.slice(0, left)
        left -= batch.num_rows
        yield _cast(batch, schema, source_name, "tombstone")
    if left > 0:
        raise IngestionError(
            f"{source_name}: the partition's tombstone object holds fewer rows than its last run recorded "
            f"({capture.previous_deleted}); it was changed outside the platform. Restore it, or rebuild the "
            "partition with capture_deletes off and on again"
        )


def _cast(batch: pa.RecordBatch, schema: pa.Schema, source_name: str, what: str) -> pa.RecordBatch:
    try:
        return batch.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as e:
        raise SchemaDetectionError(
            f"{source_name}: the previous {what} does not match the key columns now ({e}); the key's columns "
            "or types changed: deletes cannot be compared across that change"
        ) from e


@dataclass(frozen=True)
class StoredDeletes:
    rows: int
    object_key: str | None
    key_set: str | None = None


def prepare_capture(request: Any, services: Services, tmp: Path) -> DeleteCapture | None:
    """Local copies of what a frontier run compares with: the newest key set and the partition's tombstone."""
    deletes = request.deletes
    if deletes is None or not deletes.observe:
        return None
    key_set = None
    if deletes.previous_key_set is not None:
        key_set = tmp / "previous_key_set.parquet"
        if not services.store.download_if_exists(services.bronze_bucket, deletes.previous_key_set, key_set):
            raise IngestionError(
                f"{request.source_name}: the key set of the previous run ({deletes.previous_key_set}) is gone from "
                f"the bucket, so deletes since then cannot be found; restore it, or DELETE the tracking rows' "
                f"key_set_object_key to start over (deletes before this run are then not captured)"
            )
    tombstone = None
    if deletes.previous_tombstone is not None and deletes.previous_deleted:
        tombstone = tmp / "previous_tombstone.parquet"
        if not services.store.download_if_exists(services.bronze_bucket, deletes.previous_tombstone, tombstone):
            log.warning("%s: the partition's tombstone %s is gone; its earlier deletions are not kept",
                        request.source_name, deletes.previous_tombstone)
            tombstone = None
    return DeleteCapture(tmp, key_set, tombstone, deletes.previous_deleted)


def store_deletes(
    request: Any, services: Services, platform: Any, captured: CapturedDeletes | None, run_id: int
) -> StoredDeletes | None:
    """Upload the tombstone and the key set of a frontier run; a replay carries the tombstone forward."""
    deletes = request.deletes
    if deletes is None:
        return None
    if captured is None:
        return StoredDeletes(deletes.previous_deleted, deletes.previous_tombstone)
    key_set = deletes.key_set_key.format(run_id=run_id)
    run_records.note_tombstone_written(platform, run_id, deletes.tombstone_key)
    services.store.upload_file(captured.tombstone.path, services.bronze_bucket, deletes.tombstone_key)
    services.store.upload_file(captured.key_set.path, services.bronze_bucket, key_set)
    if captured.new_deletions:
        log.info("%s: %d row(s) deleted since the previous key set", request.source_name, captured.new_deletions)
    return StoredDeletes(captured.deleted_rows, deletes.tombstone_key, key_set)

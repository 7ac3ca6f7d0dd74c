"""Run rows of ``data_platform.ingestion_metadata``: ``running``, then ``success`` or ``failed``.

``commit_success`` is the one multi-statement write: the run's ``success``, its
watermark, its file's ledger row and its schema move together, in one transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import psycopg2
from psycopg2.extras import Json

from platform_assets.ingestion.errors import IngestionError, TransientError
from platform_assets.ingestion.tracking.schema_log import schema_hash
from platform_assets.ingestion.tracking.watermark_store import (
    WatermarkUpdate,
    write_watermark,
)


@dataclass(frozen=True)
class RunStart:
    source_name: str
    source_type: str
    execution_date: str
    object_key: str
    uri: str
    load_mode: str
    partition_key: str | None = None
    dagster_run_id: str | None = None
    watermark_column: str | None = None
    family: str | None = None


def start_run(conn: Any, run: RunStart) -> int:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO data_platform.ingestion_metadata (source_name, source_type, execution_date, "
            "status, object_key, uri, load_mode, partition_key, dagster_run_id, watermark_column, family) "
            "VALUES (%s, %s, %s, 'running', %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                run.source_name, run.source_type, run.execution_date, run.object_key, run.uri,
                run.load_mode, run.partition_key, run.dagster_run_id, run.watermark_column, run.family,
            ),
        )
        return cur.fetchone()[0]


def finish_failed(conn: Any, run_id: int, message: str) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE data_platform.ingestion_metadata SET status = 'failed', error_message = %s, "
            "finished_at = now() WHERE id = %s",
            (message, run_id),
        )


def fail_stale_runs(conn: Any, source_name: str, family: str | None = None) -> int:
    """Mark ``running`` rows of a source (a family's file) failed; call only while holding its lock."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE data_platform.ingestion_metadata SET status = 'failed', finished_at = now(), "
            "error_message = 'run did not finish (its process crashed or was killed); "
            "marked failed by the next run of this source' "
            "WHERE source_name = %s AND family IS NOT DISTINCT FROM %s AND status = 'running'",
            (source_name, family),
        )
        return cur.rowcount


@dataclass(frozen=True)
class RunSuccess:
    """What a successful run stored (a file load leaves the watermark and snapshot fields unset)."""

    row_count: int
    file_size_bytes: int
    checksum: str
    schema_metadata: dict[str, Any] | None
    schema_changes: dict[str, Any] | None = None
    watermark_before: str | None = None
    watermark_after: str | None = None
    extract_range: dict[str, Any] | None = None
    source_snapshot: str | None = None
    snapshot_taken_at: dt.datetime | None = None
    needs_late_check: bool = False
    watermark_reset: dict[str, Any] | None = None
    rebuild: bool = False
    rows_kept: int | None = None
    deleted_rows: int | None = None
    deletes_object_key: str | None = None
    key_set_object_key: str | None = None


@dataclass(frozen=True)
class FileIdentity:
    """A loaded file: where it was, its size and times, its content's MD5 (a family's
    files also by their path relative to the family's directory)."""

    file_path: str
    size_bytes: int
    mtime_ns: int
    content_md5: str
    family: str | None = None
    relative_path: str | None = None
    ctime_ns: int | None = None
    inode: int | None = None

    @property
    def file_name(self) -> str:
        return self.file_path.rsplit("/", 1)[-1]


def commit_success(
    conn: Any,
    run_id: int,
    source_name: str,
    execution_date: str,
    result: RunSuccess,
    watermark: WatermarkUpdate | None,
    file: FileIdentity | None = None,
    partition_key: str | None = None,
    object_key: str | None = None,
    replaces_file: bool = False,
) -> None:
    """Mark the run ``success``, move the watermark, log the schema and the file, atomically.

    ``replaces_file``: the file's version was recorded before and is loaded again.
    """
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        try:
            cur.execute(
                "UPDATE data_platform.ingestion_metadata SET status = 'success', row_count = %s, "
                "file_size_bytes = %s, checksum = %s, watermark_before = %s, watermark_after = %s, "
                "extract_range = %s, source_snapshot = %s, snapshot_taken_at = %s, "
                "needs_late_check = %s, schema_changes = %s, watermark_reset = %s, rebuild = %s, "
                "rows_kept = %s, deleted_rows = %s, deletes_object_key = %s, key_set_object_key = %s, "
                "finished_at = now(), error_message = NULL "
                "WHERE id = %s",
                (
                    result.row_count, result.file_size_bytes, result.checksum,
                    result.watermark_before, result.watermark_after,
                    Json(result.extract_range) if result.extract_range else None,
                    result.source_snapshot, result.snapshot_taken_at, result.needs_late_check,
                    Json(result.schema_changes) if result.schema_changes else None,
                    Json(result.watermark_reset) if result.watermark_reset else None,
                    result.rebuild, result.rows_kept, result.deleted_rows, result.deletes_object_key,
                    result.key_set_object_key, run_id,
                ),
            )
            if watermark is not None:
                write_watermark(cur, source_name, watermark, run_id)
            if file is not None and replaces_file:
                cur.execute(
                    "DELETE FROM data_platform.ingested_files WHERE family = %s AND relative_path = %s "
                    "AND content_md5 = %s",
                    (file.family, file.relative_path, file.content_md5),
                )
            if file is not None:
                cur.execute(
                    "INSERT INTO data_platform.ingested_files (family, file_path, file_name, "
                    "size_bytes, mtime_ns, content_md5, partition_key, object_key, run_id, "
                    "relative_path, ctime_ns, inode) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        file.family, file.file_path, file.file_name, file.size_bytes, file.mtime_ns,
                        file.content_md5, partition_key, object_key, run_id,
                        file.relative_path, file.ctime_ns, file.inode,
                    ),
                )
            if result.schema_metadata is not None:
                text = json.dumps(result.schema_metadata, sort_keys=True)
                cur.execute(
                    "INSERT INTO data_platform.schema_history (source_name, schema_metadata, "
                    "execution_date, run_id, schema_hash, family, changes) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        source_name, text, execution_date, run_id, schema_hash(result.schema_metadata),
                        file.family if file else None,
                        Json(result.schema_changes) if result.schema_changes else None,
                    ),
                )
            cur.execute("COMMIT")
        except Exception as e:
            if not conn.closed:
                try:
                    cur.execute("ROLLBACK")
                except psycopg2.Error:
                    pass  # the connection is gone: the transaction died with it
            error = TransientError if isinstance(e, (psycopg2.OperationalError, psycopg2.InterfaceError)) else IngestionError
            raise error(
                f"{source_name}: the data was stored but recording the run failed: {str(e).strip()}; "
                "the run stays 'running' until the next run of the source marks it failed"
            ) from e


def note_tombstone_written(conn: Any, run_id: int, object_key: str | None) -> None:
    """Record on a ``running`` row that it is about to overwrite a partition's tombstone
    (None: the tombstone of that failed run was restored). If the run fails before it
    commits, the next run of the source restores the tombstone to what was committed."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE data_platform.ingestion_metadata SET deletes_object_key = %s WHERE id = %s",
            (object_key, run_id),
        )


def clear_late_check(conn: Any, run_id: int) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE data_platform.ingestion_metadata SET needs_late_check = false WHERE id = %s",
            (run_id,),
        )

"""The tracking tables in ``data_platform``: bootstrap, run rows, watermarks, locks.

Every function takes an open psycopg2 connection to the platform database in
autocommit mode; the one multi-statement write (``commit_success``) runs in its own
transaction so that a run's ``success`` and its watermark move together.
"""

from __future__ import annotations

import datetime as dt
import logging
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2.extras import Json

from platform_assets.ingestion.errors import (
    IngestionError,
    SourceBusyError,
    TransientError,
    WatermarkError,
)

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
BOOTSTRAP_LOCK_KEY = "data_platform:bootstrap"


def sql_files() -> list[Path]:
    return sorted(SQL_DIR.glob("[0-9][0-9][0-9]_*.sql"))


def bootstrap(conn: Any) -> list[str]:
    """Apply the numbered DDL files not applied yet; returns the names applied.

    Serialised by an advisory lock so parallel runs can bootstrap at once.
    """
    applied: list[str] = []
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        try:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (BOOTSTRAP_LOCK_KEY,))
            cur.execute(
                "CREATE SCHEMA IF NOT EXISTS data_platform;"
                "CREATE TABLE IF NOT EXISTS data_platform.schema_migrations ("
                " filename TEXT PRIMARY KEY, sha256 TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT filename, sha256 FROM data_platform.schema_migrations")
            done = dict(cur.fetchall())
            for path in sql_files():
                text = path.read_text()
                digest = hashlib.sha256(text.encode()).hexdigest()
                if done.get(path.name) == digest:
                    continue
                cur.execute(text)
                cur.execute(
                    "INSERT INTO data_platform.schema_migrations (filename, sha256) VALUES (%s, %s) "
                    "ON CONFLICT (filename) DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = now()",
                    (path.name, digest),
                )
                applied.append(path.name)
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise
    return applied


@contextmanager
def source_lock(conn: Any, source_name: str, wait_seconds: float) -> Iterator[None]:
    """Hold the per-source advisory lock; SourceBusyError after ``wait_seconds``."""
    with conn.cursor() as cur:
        cur.execute("SET lock_timeout = %s", (f"{int(wait_seconds * 1000)}ms",))
        try:
            cur.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (f"source:{source_name}",))
        except psycopg2.errors.LockNotAvailable as e:
            raise SourceBusyError(
                f"{source_name}: another run of this source held its lock for more than "
                f"{wait_seconds:.0f}s; let it finish, or raise INGESTION_LOCK_WAIT_SECONDS"
            ) from e
        finally:
            cur.execute("RESET lock_timeout")
    try:
        yield
    finally:
        try:
            if not conn.closed:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (f"source:{source_name}",))
        except psycopg2.Error:
            pass  # the session is gone, and its advisory lock with it


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


@dataclass(frozen=True)
class StoredWatermark:
    source_name: str
    column: str
    value: str | None
    watermark_type: str
    last_snapshot: str | None
    catchup_floor: str | None
    last_run_id: int | None = None


def read_watermark(conn: Any, source_name: str) -> StoredWatermark | None:
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT source_name, watermark_column, watermark_value, watermark_type, "
                "last_snapshot, catchup_floor, last_run_id FROM data_platform.watermarks WHERE source_name = %s",
                (source_name,),
            )
            row = cur.fetchone()
    except psycopg2.Error as e:
        raise WatermarkError(
            f"{source_name}: Failed to query watermark: {str(e).strip()}; verify that "
            "data_platform.watermarks exists (run the bootstrap) and PostgreSQL is reachable"
        ) from e
    return StoredWatermark(*row) if row else None


@dataclass(frozen=True)
class WatermarkUpdate:
    column: str
    value: str | None
    watermark_type: str
    last_snapshot: str | None
    catchup_floor: str | None
    read: StoredWatermark | None = None
    """The row as the run read it: written only if it is still so (a reset meanwhile wins)."""


@dataclass(frozen=True)
class RunSuccess:
    row_count: int
    file_size_bytes: int
    checksum: str
    watermark_before: str | None
    watermark_after: str | None
    extract_range: dict[str, Any] | None
    source_snapshot: str | None
    snapshot_taken_at: dt.datetime | None
    needs_late_check: bool
    schema_metadata: dict[str, Any] | None
    schema_changes: dict[str, Any] | None = None
    watermark_reset: dict[str, Any] | None = None
    rebuild: bool = False
    rows_kept: int | None = None


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
                "rows_kept = %s, finished_at = now(), error_message = NULL "
                "WHERE id = %s",
                (
                    result.row_count, result.file_size_bytes, result.checksum,
                    result.watermark_before, result.watermark_after,
                    Json(result.extract_range) if result.extract_range else None,
                    result.source_snapshot, result.snapshot_taken_at, result.needs_late_check,
                    Json(result.schema_changes) if result.schema_changes else None,
                    Json(result.watermark_reset) if result.watermark_reset else None,
                    result.rebuild, result.rows_kept, run_id,
                ),
            )
            if watermark is not None:
                _write_watermark(cur, source_name, watermark, run_id)
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


def _write_watermark(cur: Any, source_name: str, update: WatermarkUpdate, run_id: int) -> None:
    """Move the watermark, unless someone changed it since the run read it (the guide's
    UPDATE or DELETE during the run): the reset is then left for the next run to act on."""
    values = (update.column, update.value, update.watermark_type, update.last_snapshot, update.catchup_floor, run_id)
    read = update.read
    if read is None:
        cur.execute(
            "INSERT INTO data_platform.watermarks (watermark_column, watermark_value, watermark_type, "
            "last_snapshot, catchup_floor, last_run_id, source_name) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (source_name) DO NOTHING",
            (*values, source_name),
        )
    else:
        cur.execute(
            "UPDATE data_platform.watermarks SET watermark_column = %s, watermark_value = %s, "
            "watermark_type = %s, last_snapshot = %s, catchup_floor = %s, last_run_id = %s, updated_at = now() "
            "WHERE source_name = %s AND watermark_value IS NOT DISTINCT FROM %s "
            "AND last_run_id IS NOT DISTINCT FROM %s",
            (*values, source_name, read.value, read.last_run_id),
        )
    if cur.rowcount == 0:
        log.warning("%s: the watermark changed while this run extracted (a reset?); left as it is, for the "
                    "next run to act on", source_name)


def assert_holds_lock(conn: Any, lock: str) -> None:
    """Raise TransientError unless this session still holds the lock (its session may have died,
    and another run taken over): called before anything is made visible."""
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = "
                "hashtextextended(%s, 0))",
                (f"source:{lock}",),
            )
            held = cur.fetchone()[0]
    except psycopg2.Error as e:
        raise TransientError(
            f"{lock}: the connection to the platform database was lost ({str(e).strip()}); nothing was stored"
        ) from e
    if not held:
        raise TransientError(f"{lock}: this run no longer holds its source lock; nothing was stored")


def lock_name(source_name: str, family: str | None) -> str:
    """The advisory lock of a source, or of one file of a family."""
    return source_name if family is None else f"{family}/{source_name}"


def schema_hash(schema_metadata: dict[str, Any]) -> str:
    columns = [
        {k: c.get(k) for k in ("name", "source_type", "arrow_type", "nullable")}
        for c in schema_metadata.get("columns", [])
    ]
    return hashlib.sha256(json.dumps(columns, sort_keys=True).encode()).hexdigest()


def clear_late_check(conn: Any, run_id: int) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE data_platform.ingestion_metadata SET needs_late_check = false WHERE id = %s",
            (run_id,),
        )


def watermark_as_of(conn: Any, source_name: str, moment: dt.datetime) -> str | None:
    """The watermark a successful run of the source had stored by ``moment``."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT watermark_after FROM data_platform.ingestion_metadata "
            "WHERE source_name = %s AND status = 'success' AND snapshot_taken_at <= %s "
            "AND watermark_after IS NOT NULL ORDER BY id DESC LIMIT 1",
            (source_name, moment),
        )
        row = cur.fetchone()
    return row[0] if row else None


def last_schema(conn: Any, source_name: str, family: str | None = None) -> list[dict[str, Any]] | None:
    """Columns of the last successful run of a source (of any file of ``family`` when given;
    else of the source loaded outside any family)."""
    with conn.cursor() as cur:
        if family is not None:
            cur.execute(
                "SELECT schema_metadata FROM data_platform.schema_history WHERE family = %s "
                "ORDER BY id DESC LIMIT 1",
                (family,),
            )
        else:
            cur.execute(
                "SELECT schema_metadata FROM data_platform.schema_history WHERE source_name = %s "
                "AND family IS NULL ORDER BY id DESC LIMIT 1",
                (source_name,),
            )
        row = cur.fetchone()
    return row[0].get("columns", []) if row else None

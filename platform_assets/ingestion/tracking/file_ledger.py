"""The ledger of a family's file versions: which were loaded, which failed.

``data_platform.ingested_files`` holds one row per version loaded (written in the
transaction that marks its run ``success``; unique per family, relative path and
content MD5); ``data_platform.file_failures`` one row per version that failed for a
reason of its own (its name, its content), so that it is reported once and not
requested again by the sensor. Every function takes a platform connection; decisions
that read and then write take the file's lock first (``run_scope.locked_source``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def known_md5(conn: Any, family: str, relative_path: str, stat_key: list[int]) -> str | None:
    """The content MD5 of a version loaded or failed (for its content: not a problem of
    its name or date) whose size, mtime and ctime are ``stat_key``: a file the ledger
    knows is not hashed again."""
    size, mtime_ns, ctime_ns = stat_key
    with conn.cursor() as cur:
        cur.execute(
            "SELECT content_md5 FROM data_platform.ingested_files WHERE family = %s AND relative_path = %s "
            "AND size_bytes = %s AND mtime_ns = %s AND ctime_ns = %s "
            "UNION ALL SELECT content_md5 FROM data_platform.file_failures WHERE family = %s "
            "AND relative_path = %s AND size_bytes = %s AND mtime_ns = %s AND ctime_ns = %s "
            "AND content_md5 ~ '^[0-9a-f]{32}$' LIMIT 1",
            (family, relative_path, size, mtime_ns, ctime_ns) * 2,
        )
        row = cur.fetchone()
    return row[0] if row else None


def is_loaded(conn: Any, family: str, relative_path: str, content_md5: str, path: Path | None = None) -> bool:
    """Whether this version was loaded; ``path`` also finds a load by a release before
    relative paths were recorded (by the file's absolute path)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM data_platform.ingested_files WHERE family = %s AND content_md5 = %s "
            "AND (relative_path = %s OR (relative_path IS NULL AND file_path = %s)))",
            (family, content_md5, relative_path, str(path.resolve()) if path is not None else None),
        )
        return cur.fetchone()[0]


def has_failed(conn: Any, family: str, relative_path: str, content_md5: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM data_platform.file_failures WHERE family = %s "
            "AND relative_path = %s AND content_md5 = %s)",
            (family, relative_path, content_md5),
        )
        return cur.fetchone()[0]


def record_failure(
    conn: Any,
    family: str,
    relative_path: str,
    content_md5: str,
    *,
    stat_key: list[int],
    partition_key: str,
    run_id: int | None,
    message: str,
) -> bool:
    """Record a failed version; False when it was recorded before."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO data_platform.file_failures (family, relative_path, content_md5, size_bytes, "
            "mtime_ns, ctime_ns, partition_key, run_id, error_message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (family, relative_path, content_md5) DO NOTHING",
            (family, relative_path, content_md5, *stat_key, partition_key, run_id, message),
        )
        return cur.rowcount == 1


def forget_failure(conn: Any, family: str, relative_path: str, content_md5: str) -> None:
    """A failed version loaded after all (a manual retry): it is no longer a failure."""
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM data_platform.file_failures WHERE family = %s AND relative_path = %s AND content_md5 = %s",
            (family, relative_path, content_md5),
        )


def partition_objects(conn: Any, family: str, partition_key: str) -> list[tuple[str, str, int]]:
    """(object key, checksum, row count) of the latest version loaded of each file of the partition."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT m.object_key, m.checksum, m.row_count FROM ("
            "  SELECT DISTINCT ON (COALESCE(relative_path, file_path)) run_id FROM data_platform.ingested_files"
            "  WHERE family = %s AND partition_key = %s ORDER BY COALESCE(relative_path, file_path), id DESC"
            ") latest JOIN data_platform.ingestion_metadata m ON m.id = latest.run_id ORDER BY m.object_key",
            (family, partition_key),
        )
        return list(cur.fetchall())

"""Per-source advisory locks: one run of a source (one file of a family) at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2

from platform_assets.ingestion.errors import SourceBusyError, TransientError


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


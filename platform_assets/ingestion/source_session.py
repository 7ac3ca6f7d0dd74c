"""A consistent, read-only view of the source database for one extract.

The transaction is ``REPEATABLE READ READ ONLY``: the rows read, the snapshot
recorded and the upper bound of the extract all come from one snapshot, and a
custom query cannot write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg2

from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.load_planning import OpenTransactions
from platform_assets.ingestion.snapshot import Snapshot
from platform_resources.config import PostgresSettings

EXTRACT_APPLICATION_NAME = "data_platform:extract"

_SESSION_SETTINGS = (
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';"
    "SET extra_float_digits = 1; SET bytea_output = 'hex'"
)

_OPEN_TRANSACTIONS_SQL = """
SELECT count(*) FILTER (WHERE xact_start IS NOT NULL),
       min(xact_start),
       COALESCE(bool_or(state IS NULL), false)
FROM pg_stat_activity
WHERE datname = current_database()
  AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
  AND application_name IS DISTINCT FROM %s
"""


_IN_PROGRESS_XIDS_SQL = """
SELECT transactionid::text::bigint FROM pg_locks
WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock' AND granted
"""


@dataclass(frozen=True)
class ExtractSnapshot:
    snapshot: Snapshot
    taken_at: dt.datetime
    open_before: OpenTransactions


@contextmanager
def read_only_snapshot(settings: PostgresSettings, source_name: str) -> Iterator[tuple[Any, ExtractSnapshot]]:
    """Yield a cursor inside a repeatable-read, read-only transaction and its snapshot."""
    try:
        conn = settings.connect(application_name=EXTRACT_APPLICATION_NAME)
    except psycopg2.Error as e:
        raise IngestionError(
            f"{source_name}: cannot connect to the source database {settings.describe()}: "
            f"{str(e).strip()}; check that PostgreSQL is running and the PG* settings"
        ) from e
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(_SESSION_SETTINGS)
            cur.execute(_OPEN_TRANSACTIONS_SQL, (EXTRACT_APPLICATION_NAME,))
            count, oldest, hidden = cur.fetchone()
            in_progress = _in_progress_xids(cur)
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur.execute("SELECT pg_current_snapshot()::text, clock_timestamp()")
            snapshot_text, taken_at = cur.fetchone()
            in_progress += _in_progress_xids(cur)
            snapshot = ExtractSnapshot(
                Snapshot.parse(snapshot_text).with_in_progress(in_progress),
                taken_at,
                OpenTransactions(count, oldest, hidden),
            )
            yield cur, snapshot
            cur.execute("COMMIT")
    except psycopg2.Error as e:
        raise IngestionError(f"{source_name}: reading the source failed: {str(e).strip()}") from e
    finally:
        conn.close()


def _in_progress_xids(cur: Any) -> list[int]:
    """32-bit xids (subtransactions included) in progress: each one locks its own xid."""
    cur.execute(_IN_PROGRESS_XIDS_SQL)
    return [row[0] for row in cur.fetchall()]


def open_transactions_now(cur: Any) -> OpenTransactions:
    cur.execute(_OPEN_TRANSACTIONS_SQL, (EXTRACT_APPLICATION_NAME,))
    return OpenTransactions(*cur.fetchone())

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

from platform_assets.ingestion.errors import IngestionError, TransientError
from platform_assets.ingestion.postgres.load_planning import OpenTransactions
from platform_assets.ingestion.postgres.snapshot import XID32, Snapshot
from platform_resources.config import PostgresSettings

EXTRACT_APPLICATION_NAME = "data_platform:extract"

_SESSION_SETTINGS = (
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';"
    "SET extra_float_digits = 1; SET bytea_output = 'hex'"
)

# The snapshot, when it was taken, and the other transactions open at that moment.
# One statement: the repeatable-read snapshot is taken as it starts, pg_stat_activity
# is read while it runs, so every transaction that began before the snapshot and is
# still open is counted, including one that has not written yet (no xid: not in the
# snapshot's xip), which a count taken before the snapshot would miss if it began in
# between. Prepared (two-phase) transactions have no backend, and sessions we may not
# see (no pg_read_all_stats) or that do not report (track_activities off: state
# 'disabled') show no start: they count as open with an unknown start, which removes
# the catch-up floor.
_SNAPSHOT_SQL = """
SELECT pg_current_snapshot()::text, clock_timestamp(), open.*
FROM (
  SELECT count(*) FILTER (WHERE xact_start <= statement_timestamp()),
         min(xact_start) FILTER (WHERE xact_start <= statement_timestamp()),
         COALESCE(bool_or(state IS NULL OR state = 'disabled'), false)
         OR EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE database = current_database())
  FROM pg_stat_activity
  WHERE datname = current_database()
    AND pid <> pg_backend_pid()
    AND backend_type = 'client backend'
    AND application_name IS DISTINCT FROM %s
) AS open
"""


# Xids below the snapshot's xmax that are still in progress although the snapshot's
# xip does not list them: subtransactions (savepoints, PL/pgSQL exception blocks),
# including those already released inside a still-open transaction.
_IN_PROGRESS_XIDS_SQL = """
SELECT x FROM generate_series(%(xmin)s::bigint, %(xmax)s::bigint - 1) AS x
WHERE x <> ALL(%(xip)s::bigint[]) AND pg_xact_status(x::text::xid8) = 'in progress'
"""
# Beyond this many xids between xmin and xmax the scan is skipped and the catch-up
# of the next run has no lower bound instead (see load_planning.catchup_floor).
MAX_XID_SCAN = 5_000_000


# Xids that cannot write rows of this database: maintenance backends (autovacuum,
# ANALYZE) and sessions connected to other databases of the same server.
_OTHER_WRITERS_SQL = """
SELECT backend_xid::text::bigint FROM pg_stat_activity
WHERE backend_xid IS NOT NULL
  AND (backend_type <> 'client backend' OR datname IS DISTINCT FROM current_database())
"""


@dataclass(frozen=True)
class ExtractSnapshot:
    snapshot: Snapshot
    taken_at: dt.datetime
    open_at_snapshot: OpenTransactions
    client_writers: bool
    """Whether transactions that may write user rows were in progress at the snapshot."""
    export_id: str | None = None
    """Id other sessions can import with SET TRANSACTION SNAPSHOT (when exported)."""
    server_encoding: str = "UTF8"


@contextmanager
def read_only_snapshot(
    settings: PostgresSettings, source_name: str, export: bool = False
) -> Iterator[tuple[Any, ExtractSnapshot]]:
    """Yield a cursor inside a repeatable-read, read-only transaction and its snapshot.

    With ``export``, the snapshot is exported for other sessions to share.
    """
    try:
        conn = settings.connect(application_name=EXTRACT_APPLICATION_NAME)
    except psycopg2.Error as e:
        raise TransientError(
            f"{source_name}: cannot connect to the source database {settings.describe()}: "
            f"{str(e).strip()}; check that PostgreSQL is running and the PG* settings"
        ) from e
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(_SESSION_SETTINGS)
            cur.execute("SHOW server_encoding")
            (server_encoding,) = cur.fetchone()
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur.execute(_SNAPSHOT_SQL, (EXTRACT_APPLICATION_NAME,))
            snapshot_text, taken_at, count, oldest, hidden = cur.fetchone()
            top_level = Snapshot.parse(snapshot_text)
            subtransactions = in_progress_subtransactions(cur, top_level)
            open_at_snapshot = OpenTransactions(count, oldest, hidden or subtransactions is None)
            cur.execute(_OTHER_WRITERS_SQL)
            not_ours = {row[0] for row in cur.fetchall()}
            export_id = None
            if export:
                cur.execute("SELECT pg_export_snapshot()")
                export_id = cur.fetchone()[0]
            snapshot = ExtractSnapshot(
                top_level.with_in_progress(subtransactions or []),
                taken_at,
                open_at_snapshot,
                client_writers=any(x % XID32 not in not_ours for x in top_level.xip),
                export_id=export_id,
                server_encoding=server_encoding,
            )
            yield cur, snapshot
            # Nothing an extract does may persist (READ ONLY still allows e.g. lo_create).
            cur.execute("ROLLBACK")
    except psycopg2.OperationalError as e:
        raise TransientError(f"{source_name}: the connection to the source failed: {str(e).strip()}") from e
    except psycopg2.Error as e:
        raise IngestionError(f"{source_name}: reading the source failed: {str(e).strip()}") from e
    finally:
        conn.close()


def in_progress_subtransactions(cur: Any, snapshot: Snapshot) -> list[int] | None:
    """In-progress xids the snapshot's xip omits; None when the range is too wide to scan."""
    if not snapshot.xip:
        return []
    if snapshot.xmax - snapshot.xmin > MAX_XID_SCAN:
        return None
    cur.execute(
        _IN_PROGRESS_XIDS_SQL,
        {"xmin": snapshot.xmin, "xmax": snapshot.xmax, "xip": list(snapshot.xip)},
    )
    return [row[0] % XID32 for row in cur.fetchall()]

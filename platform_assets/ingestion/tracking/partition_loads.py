"""Read-only: the last successful load of each partition of a source, for automation and freshness.

No DDL and no writes: a schedule or sensor tick reads this before any run has
bootstrapped the tables (a missing table reads as "nothing loaded yet").
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def last_successful_loads(conn: Any, *, source_name: str | None = None, family: str | None = None) -> dict[dt.date, dt.datetime]:
    """Each partition's latest successful load's start time (``started_at``), by day.

    Args:
        conn: a connection to the platform database.
        source_name: a database source's tracking name (``schema.table``, or the source's name).
        family: a file family's name (instead of ``source_name``): any of its files' runs.
    """
    if (source_name is None) == (family is None):
        raise ValueError("pass exactly one of source_name or family")
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('data_platform.ingestion_metadata') IS NOT NULL")
        if not cur.fetchone()[0]:
            return {}
        if family is not None:
            where, params = "family = %s", (family,)
        else:
            where, params = "source_name = %s AND family IS NULL", (source_name,)
        cur.execute(
            "SELECT partition_key, max(started_at) FROM data_platform.ingestion_metadata "
            f"WHERE {where} AND status = 'success' AND partition_key IS NOT NULL GROUP BY partition_key",
            params,
        )
        loads = {}
        for key, started in cur.fetchall():
            try:
                loads[dt.date.fromisoformat(key)] = started
            except ValueError:
                continue  # not a daily partition key
        if not conn.autocommit:
            conn.rollback()
        return loads

"""Finds partitions whose range received rows after they were loaded.

A window partition loaded while transactions were open (or before its day was
over) is flagged ``needs_late_check``. Later runs count the rows in its range
that its snapshot could not see; a partition with such rows is loaded again. The
flag is cleared once every transaction open at its snapshot has finished, its day
is over and no late row was found.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from psycopg2 import sql

from platform_assets.ingestion import tracking
from platform_assets.ingestion.load_planning import OpenTransactions
from platform_assets.ingestion.query_builder import (
    ExtractRange,
    range_condition,
    relation,
)
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.snapshot import Snapshot
from platform_assets.ingestion.source_session import read_only_snapshot


def stale_partitions(
    services: Services,
    source_name: str,
    schema: str,
    table: str,
    window_end: Callable[[str], dt.datetime | None],
    skip_partition: str | None = None,
) -> dict[str, int]:
    """Partition keys with late rows, and how many; clears partitions that can no longer get any."""
    platform = services.connect_platform()
    try:
        candidates = [
            load
            for load in tracking.loads_needing_late_check(platform, source_name)
            if load.partition_key != skip_partition and load.extract_range and load.source_snapshot
        ]
        if not candidates:
            return {}
        stale: dict[str, int] = {}
        with read_only_snapshot(services.source, source_name) as (cur, snapshot):
            for load in candidates:
                late = _count_invisible(cur, schema, table, load)
                if late:
                    stale[load.partition_key] = late
                elif _settled(snapshot.open_before, snapshot.taken_at, load, window_end(load.partition_key)):
                    tracking.clear_late_check(platform, load.run_id)
        return stale
    finally:
        platform.close()


def _count_invisible(cur: Any, schema: str, table: str, load: tracking.PartitionLoad) -> int:
    in_range = range_condition(ExtractRange.from_json(load.extract_range))
    invisible = Snapshot.parse(load.source_snapshot).invisible_row_condition()
    query = sql.SQL("SELECT count(*) FROM {rel} WHERE {in_range} AND {invisible}").format(
        rel=relation(schema, table), in_range=in_range, invisible=invisible
    )
    cur.execute(query)
    return cur.fetchone()[0]


def _settled(
    open_now: OpenTransactions,
    now: dt.datetime,
    load: tracking.PartitionLoad,
    window_end: dt.datetime | None,
) -> bool:
    if window_end is None or window_end > now:
        return False
    if open_now.any_hidden:
        return False
    return open_now.none or (
        open_now.oldest_start is not None
        and load.snapshot_taken_at is not None
        and open_now.oldest_start > load.snapshot_taken_at
    )

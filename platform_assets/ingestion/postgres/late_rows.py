"""Finds partitions whose range received rows after they were loaded.

A partition loaded while transactions were open on the source (or, for a day, before
the day was over) is flagged ``needs_late_check``. Every later run of the source
counts the rows in its recorded range that its snapshot could not see; a partition
with such rows is loaded again (a replay: merged, so nothing it held is lost). The
flag is cleared once every transaction open at its snapshot has finished, its day
(if it has one) is over and no late row was found.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg2 import sql

from platform_assets.ingestion.partitions.postgres import SourceSpec
from platform_assets.ingestion.postgres.load_planning import OpenTransactions
from platform_assets.ingestion.postgres.query_builder import range_condition, relation
from platform_assets.ingestion.postgres.session import read_only_snapshot
from platform_assets.ingestion.postgres.snapshot import Snapshot
from platform_assets.ingestion.postgres.source_state import PartitionLoad, SourceState
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.tracking import run_records


def late_partitions(
    services: Services, spec: SourceSpec, platform: Any, state: SourceState, skip_partition: str | None
) -> dict[str, int]:
    """Partition keys with late rows, and how many; clears the flag of settled partitions.

    ``platform`` holds the source's lock and ``state`` was read under it.
    """
    candidates = [
        load
        for load in state.partitions.values()
        if load.needs_late_check and load.partition_key != skip_partition and load.extract_range and load.snapshot
    ]
    if not candidates or spec.table is None:
        return {}
    late: dict[str, int] = {}
    with read_only_snapshot(services.source, spec.source_name) as (cur, snapshot):
        for load in sorted(candidates, key=lambda c: c.partition_key):
            rows = _count_invisible(cur, spec, load)
            if rows:
                late[load.partition_key] = rows
            elif _settled(snapshot.open_at_snapshot, snapshot.taken_at, load, _day_end(spec, load)):
                run_records.clear_late_check(platform, load.run_id)
    return late


def _count_invisible(cur: Any, spec: SourceSpec, load: PartitionLoad) -> int:
    in_range = range_condition(load.extract_range)
    invisible = Snapshot.parse(load.snapshot).invisible_row_condition()
    query = sql.SQL("SELECT count(*) FROM {rel} WHERE {in_range} AND {invisible}").format(
        rel=relation(spec.schema, spec.table), in_range=in_range, invisible=invisible
    )
    cur.execute(query)
    return cur.fetchone()[0]


def _day_end(spec: SourceSpec, load: PartitionLoad) -> dt.datetime | None:
    return spec.window(load.partition_key).end if load.load_mode == "window" else None


def _settled(
    open_now: OpenTransactions, now: dt.datetime, load: PartitionLoad, day_end: dt.datetime | None
) -> bool:
    if load.load_mode == "window" and (day_end is None or day_end > now):
        return False
    if open_now.any_hidden:
        return False
    return open_now.none or (
        open_now.oldest_start is not None
        and load.taken_at is not None
        and open_now.oldest_start > load.taken_at
    )

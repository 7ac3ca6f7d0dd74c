"""Decides which rows a run reads and where the watermark goes afterwards.

Modes (see README, "What a partition holds"):

- ``full``: every row.
- ``incremental``: the guide's high-water mark, rows with ``col > watermark``, plus a
  catch-up of rows the previous extract could not see (committed later by
  transactions that were open at its snapshot) from ``catchup_floor`` up to the
  watermark. No stored watermark means a full extract.
- ``window``: a fixed range of values, ``[start, end)``: a timestamp partition's day.
- ``range``: an integer partition's range, from its lower bound on.
- ``replay``: a range recorded by an earlier run, read again as it was.

Which mode a partition takes is decided by ``partitions.postgres``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Literal

from platform_assets.ingestion.errors import WatermarkError
from platform_assets.ingestion.postgres.query_builder import CatchUp, ExtractRange
from platform_assets.ingestion.postgres.watermark_values import (
    WatermarkValue,
    Window,
    bound_for_column,
    format_value,
    later_of,
    parse_value,
)
from platform_assets.ingestion.tracking.watermark_store import StoredWatermark

LoadMode = Literal["full", "incremental", "window", "range", "replay"]


@dataclass(frozen=True)
class WatermarkColumn:
    name: str
    pg_type: str
    watermark_type: str
    nullable: bool = True


def incremental_range(
    source_name: str,
    column: WatermarkColumn,
    stored: StoredWatermark | None,
    row_versioned: bool = True,
) -> ExtractRange:
    """The guide's incremental predicate for the stored watermark.

    Relations without row versions (views, foreign tables) have no ``xmin``: they
    get no catch-up of late rows.
    """
    base = ExtractRange(column=column.name, cast_type=column.pg_type)
    if stored is None or stored.value is None:
        return replace(base, include_nulls=True)
    if stored.column != column.name:
        raise WatermarkError(
            f"{source_name}: the stored watermark is on column {stored.column!r} but the source "
            f"now uses {column.name!r}; DELETE FROM data_platform.watermarks WHERE source_name = "
            f"'{source_name}' to re-extract in full"
        )
    parse_value(stored.value, column.pg_type)  # fail early on a bad manual UPDATE
    catchup = None
    if stored.last_snapshot and row_versioned:
        catchup = CatchUp(snapshot=stored.last_snapshot, upper=stored.value, floor=stored.catchup_floor)
    return replace(base, lower=stored.value, catchup=catchup)


def window_range(column: WatermarkColumn, window: Window) -> ExtractRange:
    return ExtractRange(
        column=column.name,
        cast_type=column.pg_type,
        lower=bound_for_column(window.start, column.pg_type),
        lower_inclusive=True,
        upper=bound_for_column(window.end, column.pg_type),
        upper_inclusive=False,
    )


def next_watermark(
    before: str | None, loaded_max: WatermarkValue | None, pg_type: str
) -> str | None:
    """The watermark after a run: the largest value loaded; it never moves backwards."""
    previous = None if before is None else parse_value(before, pg_type)
    after = later_of(previous, loaded_max)
    return None if after is None else format_value(after)


@dataclass(frozen=True)
class OpenTransactions:
    """Other transactions open on the source when the extract's snapshot was taken."""

    count: int
    oldest_start: dt.datetime | None
    any_hidden: bool

    @property
    def none(self) -> bool:
        return self.count == 0 and not self.any_hidden


def catchup_floor(
    open_at_snapshot: OpenTransactions,
    writers_in_snapshot: bool,
    watermark_before: str | None,
    watermark_after: str | None,
    watermark_when_oldest_began: str | None,
) -> str | None:
    """The lowest value a transaction open at the snapshot can still commit.

    Assumes watermark values are not earlier than the start of the transaction
    that writes them (``now()``, ``clock_timestamp()``, sequences). Transactions
    that began before the snapshot and are still open are counted in the snapshot's
    own statement (``open_at_snapshot``): that includes those that have not written
    yet, which the snapshot's xip list does not show.

    - nothing open: only rows equal to the new watermark can still appear;
    - writers in the snapshot's xip that finished before the count: the watermark
      before this run (no run of the source commits meanwhile, it holds the source lock);
    - older open transactions: the watermark stored when the oldest began;
    - their start not visible (missing ``pg_read_all_stats``, ``track_activities``
      off, prepared transactions): no floor.
    """
    if open_at_snapshot.any_hidden:
        return None
    if open_at_snapshot.none:
        return watermark_before if writers_in_snapshot else watermark_after
    return watermark_when_oldest_began

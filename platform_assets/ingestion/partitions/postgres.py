"""What a daily partition of a PostgreSQL source holds, decided from the source's state.

Pure: ``plan_partition`` takes a registry-free ``SourceSpec``, the ``SourceState``
read inside the source's lock and a partition key, and returns the plan of the
load. See README, "What a partition holds":

- full table, view, custom query: a complete snapshot taken when the partition is
  materialized; loading it again takes a new one (same object key).
- timestamp watermark: the row versions whose watermark falls on the partition's
  day in the registry's timezone; the first partition also holds everything earlier
  and the rows whose watermark is NULL. Loading a day again merges what the source
  shows now into what the object held: versions are added, never dropped.
- integer watermark: the rows past the watermark when the partition was first
  loaded, as a recorded range ``(lower, upper]``; ranges never overlap. The newest
  range (the frontier) grows when its partition is loaded again; any other
  partition replays its recorded range, merged into its object.
- ``rebuild``: re-read the partition's range and replace the object instead of
  merging (versions no longer in the source are then gone).
- a watermark the user reset with the guide's UPDATE or DELETE is acted on by the
  next load that reads past the frontier (the guide's "extract again"), and reported.
- ``capture_deletes``: a run of the newest partition (or a newer one) compares the
  key set with the previous such run's; the keys gone are its partition's deletions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, Literal

from platform_assets.ingestion.postgres.query_builder import ExtractRange
from platform_assets.ingestion.postgres.source_state import SourceState
from platform_assets.ingestion.postgres.watermark_values import Window, partition_window

PartitionMode = Literal["full", "window", "range", "replay"]


@dataclass(frozen=True)
class SourceSpec:
    """A PostgreSQL source as the engine needs it (the Dagster layer builds it from the registry)."""

    name: str
    source_name: str
    schema: str | None = None
    table: str | None = None
    query: str | None = None
    load: Literal["full", "incremental"] = "full"
    watermark_column: str | None = None
    watermark_type: Literal["timestamp", "integer"] | None = None
    object_key_pattern: str = "postgres/{name}/{date}/{name}.parquet"
    schema_policy: Literal["evolve", "freeze"] = "evolve"
    timezone: str = "UTC"
    start_date: dt.date = dt.date(2024, 1, 1)
    key_columns: tuple[str, ...] = ()
    """The row's key for versions and messages; empty: the table's primary key."""
    capture_deletes: bool = False

    def object_key(self, partition_key: str) -> str:
        return self.object_key_pattern.format(name=self.name, date=partition_key)

    def deletes_object_key(self, partition_key: str) -> str:
        """The partition's tombstone, outside the data's prefix: the first folder of the key
        naming ``{name}`` names ``{name}__deletes`` instead
        (``postgres/orders__deletes/<date>/orders.parquet``); a pattern without such a
        folder gets ``_deletes/`` in front."""
        folders = self.object_key_pattern.split("/")
        named = next((i for i, folder in enumerate(folders[:-1]) if "{name}" in folder), None)
        if named is None:
            pattern = "_deletes/" + self.object_key_pattern
        else:
            folders[named] = folders[named].replace("{name}", "{name}__deletes")
            pattern = "/".join(folders)
        return pattern.format(name=self.name, date=partition_key)

    @property
    def key_set_pattern(self) -> str:
        """Where each frontier run's key set goes (``{run_id}`` is the run's tracking id)."""
        return f"_state/{self.name}/key_sets/{{run_id}}.parquet"

    def window(self, partition_key: str) -> Window:
        date = dt.date.fromisoformat(partition_key)
        return partition_window(date, self.timezone, first_partition=self.is_first(partition_key))

    def is_first(self, partition_key: str) -> bool:
        return dt.date.fromisoformat(partition_key) <= self.start_date


@dataclass(frozen=True)
class PartitionPlan:
    """How one partition is loaded.

    ``range`` reads from ``lower`` (exclusive; None: from the start, NULL watermarks
    included) with no upper bound and records ``(lower, largest value loaded]``,
    never less than ``previous_upper``. ``replay`` reads ``replay_range`` exactly.
    """

    partition_key: str
    mode: PartitionMode
    window: Window | None = None
    include_nulls: bool = False
    lower: str | None = None
    previous_upper: str | None = None
    replay_range: ExtractRange | None = None
    merge: bool = False
    merge_from: str | None = None
    """The object key the partition's previous load wrote (the registry's pattern may have changed)."""
    rebuild: bool = False
    watermark_reset: dict[str, Any] | None = None
    observe_deletes: bool = False
    """A frontier run of a source that captures deletes: it compares key sets."""

    @property
    def writes_watermark(self) -> bool:
        return self.mode in ("window", "range")


def plan_partition(spec: SourceSpec, state: SourceState, partition_key: str, rebuild: bool = False) -> PartitionPlan:
    """The load of ``partition_key``; ``state`` must have been read under the source's lock.

    A source that captures deletes observes them in runs of its newest partition (or a
    newer one): those compare key sets. A run of an older partition observes nothing,
    so each deletion lands in exactly one partition's tombstone.
    """
    plan = _plan(spec, state, partition_key, rebuild)
    newest = max(state.partitions, default=None)
    frontier = newest is None or partition_key >= newest
    return replace(plan, observe_deletes=spec.capture_deletes and frontier)


def _plan(spec: SourceSpec, state: SourceState, partition_key: str, rebuild: bool) -> PartitionPlan:
    if spec.load == "full":
        return PartitionPlan(partition_key, "full", rebuild=rebuild)
    previous = state.partitions.get(partition_key)
    if previous is not None and previous.load_mode not in _SAME_KIND[spec.watermark_type or ""]:
        previous = None  # loaded as another kind of source (a snapshot, say): replaced, not merged
    merge = previous is not None and not rebuild
    merge_from = previous.object_key if merge and previous is not None else None
    if spec.watermark_type == "timestamp":
        first = spec.is_first(partition_key)
        return PartitionPlan(
            partition_key, "window", window=spec.window(partition_key), include_nulls=first,
            merge=merge, merge_from=merge_from, rebuild=rebuild, watermark_reset=state.reset(),
        )
    reset = state.reset()
    replay = PartitionPlan(
        partition_key, "replay", replay_range=previous.extract_range if previous else None,
        merge=merge, merge_from=merge_from, rebuild=rebuild,
    )
    if previous is not None and not _is_frontier(previous, state) and previous.extract_range is not None:
        return replay
    if previous is not None and previous.extract_range is not None and (reset is None or _skips_ahead(reset, previous)):
        if reset is not None:
            # a reset past the frontier's end skips rows: the frontier keeps its range and
            # the next new partition acts on the reset
            return replay
        recorded = previous.extract_range
        return PartitionPlan(
            partition_key, "range", lower=recorded.lower, include_nulls=recorded.include_nulls,
            previous_upper=previous.range_upper, merge=merge, merge_from=merge_from, rebuild=rebuild,
        )
    # A watermark row holding NULL: the ranges so far loaded no value (NULLs at most),
    # so this one takes every value and no NULL; no row at all: from the start, NULLs too.
    lower = state.watermark.value if state.watermark is not None else None
    include_nulls = state.watermark is None
    if previous is not None and previous.extract_range is not None:
        # the frontier acting on a reset: its range may grow downwards, never shrink,
        # so that it still covers what its object holds (and a rebuild re-reads all of it)
        lower = _lowest(lower, previous.extract_range.lower)
        include_nulls = include_nulls or (lower is None and previous.extract_range.include_nulls)
    return PartitionPlan(
        partition_key, "range", lower=lower, include_nulls=include_nulls,
        merge=merge, merge_from=merge_from, rebuild=rebuild, watermark_reset=reset,
    )


_SAME_KIND = {"timestamp": ("window",), "integer": ("range", "replay", "incremental")}


def _skips_ahead(reset: dict[str, Any], frontier: Any) -> bool:
    """A reset to a value past the frontier's recorded end (the guide's UPDATE to skip rows)."""
    upper = frontier.range_upper
    return reset["new"] is not None and upper is not None and int(reset["new"]) > int(upper)


def _lowest(a: str | None, b: str | None) -> str | None:
    """The lower of two integer bounds; None (from the start) is the lowest."""
    if a is None or b is None:
        return None
    return a if int(a) <= int(b) else b


def _is_frontier(load: Any, state: SourceState) -> bool:
    return state.frontier is not None and state.frontier.run_id == load.run_id

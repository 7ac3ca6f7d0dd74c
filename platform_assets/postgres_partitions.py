"""What a daily partition of a PostgreSQL source holds, as a LoadRequest (no Dagster here).

- full table / custom query / system view: a complete snapshot taken when the
  partition is materialized;
- incremental by timestamp: the row versions whose watermark value falls on the
  partition's day (in the registry's timezone); the first partition also holds
  everything earlier;
- incremental by integer: the rows past the watermark when the partition was
  first loaded. Loading it again re-reads the range it recorded (or, for the
  newest partition, that range and everything since).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from platform_assets.ingestion import tracking
from platform_assets.ingestion.engine import LoadRequest
from platform_assets.ingestion.load_planning import reopen_range
from platform_assets.ingestion.query_builder import ExtractRange
from platform_assets.ingestion.watermark_values import Window, partition_window
from platform_assets.registry import PostgresSource, Registry


def window_for(registry: Registry, partition_key: str) -> Window:
    date = dt.date.fromisoformat(partition_key)
    return partition_window(date, registry.timezone, first_partition=date <= registry.start_date)


def partition_request(
    source: PostgresSource,
    registry: Registry,
    partition_key: str,
    platform: Any,
    dagster_run_id: str | None = None,
) -> LoadRequest:
    """The load that materializes ``partition_key`` of ``source``."""
    base = LoadRequest(
        source_name=source.source_name,
        object_key=source.key_for(partition_key),
        execution_date=partition_key,
        schema=source.schema_name if source.table else None,
        table=source.table,
        query=source.query,
        watermark_column=source.watermark_column,
        watermark_type=source.watermark_type,
        schema_policy=source.schema_policy,
        partition_key=partition_key,
        dagster_run_id=dagster_run_id,
    )
    if source.load == "full":
        return base
    if source.watermark_type == "timestamp":
        return replace(base, mode="window", window=window_for(registry, partition_key))
    return _integer_request(base, platform)


def _integer_request(base: LoadRequest, platform: Any) -> LoadRequest:
    previous = tracking.latest_partition_load(platform, base.source_name, base.partition_key)
    if previous is None or not previous.extract_range:
        return replace(base, mode="incremental")
    recorded = ExtractRange.from_json(previous.extract_range)
    stored = tracking.read_watermark(platform, base.source_name)
    newest = tracking.latest_frontier_run(platform, base.source_name)
    if stored is not None and newest == previous.run_id:
        return replace(base, mode="incremental", replay_range=reopen_range(recorded))
    return replace(base, mode="replay", replay_range=recorded)

"""Puts back a partition's tombstone that a failed run overwrote before it could commit.

A frontier run stores the partition's tombstone (earlier deletions plus its own) before
its tracking transaction. If it fails in between, the object holds deletions the
tracking tables never recorded; the next frontier run observes them again, possibly
for another partition. So the next run of the source, under its lock and before it
plans, truncates such a tombstone to the rows the partition's last successful run
recorded (none: the object is removed), and marks the failed run repaired.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from platform_assets.ingestion.postgres.source_state import SourceState
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.tracking import run_records

log = logging.getLogger(__name__)


def restore_tombstones(services: Services, platform: Any, source_name: str, state: SourceState) -> bool:
    """Restore the tombstones of ``state.unfinished_tombstones``; True when any was."""
    for run_id, partition_key, object_key in state.unfinished_tombstones:
        committed = state.partitions.get(partition_key)
        rows = (committed.deleted_rows or 0) if committed and committed.deletes_object_key == object_key else 0
        _truncate(services, object_key, rows)
        run_records.note_tombstone_written(platform, run_id, None)
        log.warning("%s: run %s failed after writing the tombstone %s; kept its %d recorded row(s)",
                    source_name, run_id, object_key, rows)
    return bool(state.unfinished_tombstones)


def _truncate(services: Services, object_key: str, rows: int) -> None:
    bucket = services.bronze_bucket
    with tempfile.TemporaryDirectory(prefix="tombstone-", dir=services.work_dir) as tmp:
        local = Path(tmp) / "tombstone.parquet"
        if not services.store.download_if_exists(bucket, object_key, local):
            return
        table = pq.read_table(local)
        if table.num_rows == rows:
            return
        if rows == 0:
            services.store.client.delete_object(Bucket=bucket, Key=object_key)
            return
        pq.write_table(table.slice(0, rows), local)
        services.store.upload_file(local, bucket, object_key)

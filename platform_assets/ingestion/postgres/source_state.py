"""What the tracking tables know about one source, read inside its lock for planning.

One place holds the per-source state every plan needs: the stored watermark and
the value the platform itself last wrote (so a manual reset is seen), the latest
successful load of each partition (its recorded range and snapshot), the frontier
of an integer source (the load holding the highest range), the newest load that
read the rows whose watermark is NULL, and the newest key set (deletes capture).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from platform_assets.ingestion.postgres.query_builder import ExtractRange
from platform_assets.ingestion.tracking import watermark_store

# Load modes that write the watermark (a replay never does).
WATERMARK_WRITING_MODES = ("incremental", "range", "window")
# Load modes that extend an integer source's ranges: the frontier's.
FRONTIER_MODES = ("incremental", "range")


@dataclass(frozen=True)
class PartitionLoad:
    """The latest successful load of one partition."""

    run_id: int
    partition_key: str
    load_mode: str
    extract_range: ExtractRange | None
    snapshot: str | None
    taken_at: dt.datetime | None
    needs_late_check: bool
    object_key: str
    deleted_rows: int | None = None
    """Rows of the partition's tombstone (sources that capture deletes)."""
    deletes_object_key: str | None = None

    @property
    def range_upper(self) -> str | None:
        return None if self.extract_range is None or self.extract_range.empty else self.extract_range.upper


@dataclass(frozen=True)
class SourceState:
    watermark: watermark_store.StoredWatermark | None = None
    last_written: str | None = None
    """The watermark value the platform last wrote (None: it never wrote one)."""
    wrote_watermark: bool = False
    partitions: dict[str, PartitionLoad] = field(default_factory=dict)
    frontier: PartitionLoad | None = None
    null_capture_snapshot: str | None = None
    """Snapshot of the newest load that read the NULL-watermark rows (None: none did)."""
    key_set: str | None = None
    """Object key of the newest key set (sources that capture deletes; None: none yet)."""
    unfinished_tombstones: list[tuple[int, str, str]] = field(default_factory=list)
    """(run id, partition, tombstone key) of failed runs that may have overwritten a tombstone."""

    def reset(self) -> dict[str, Any] | None:
        """The guide's UPDATE or DELETE of the watermark since the platform last wrote it."""
        if not self.wrote_watermark:
            return None
        stored = self.watermark.value if self.watermark is not None else None
        if stored == self.last_written:
            return None
        return {"old": self.last_written, "new": stored}


# The tombstone of a partition is the one its last run *capturing deletes* recorded: a run
# while capture_deletes was off leaves the object as it was, and records nothing.
_LATEST_PER_PARTITION = """
SELECT DISTINCT ON (m.partition_key) m.id, m.partition_key, m.load_mode, m.extract_range, m.source_snapshot,
       m.snapshot_taken_at, m.needs_late_check, m.object_key, t.deleted_rows, t.deletes_object_key
FROM data_platform.ingestion_metadata m
LEFT JOIN LATERAL (
    SELECT deleted_rows, deletes_object_key FROM data_platform.ingestion_metadata d
    WHERE d.source_name = m.source_name AND d.partition_key = m.partition_key AND d.status = 'success'
      AND d.deletes_object_key IS NOT NULL
    ORDER BY d.id DESC LIMIT 1
) t ON true
WHERE m.source_name = %s AND m.status = 'success' AND m.partition_key IS NOT NULL
ORDER BY m.partition_key, m.id DESC
"""

_FRONTIER = """
SELECT max(id) FROM data_platform.ingestion_metadata
WHERE source_name = %s AND status = 'success' AND partition_key IS NOT NULL AND load_mode = ANY(%s)
"""

_KEY_SET = """
SELECT key_set_object_key FROM data_platform.ingestion_metadata
WHERE source_name = %s AND status = 'success' AND key_set_object_key IS NOT NULL
ORDER BY id DESC LIMIT 1
"""

_UNFINISHED_TOMBSTONES = """
SELECT id, partition_key, deletes_object_key FROM data_platform.ingestion_metadata
WHERE source_name = %s AND status = 'failed' AND deletes_object_key IS NOT NULL ORDER BY id
"""

_NULL_CAPTURE = """
SELECT source_snapshot FROM data_platform.ingestion_metadata
WHERE source_name = %s AND status = 'success' AND source_snapshot IS NOT NULL
  AND (extract_range->>'include_nulls')::boolean
ORDER BY id DESC LIMIT 1
"""


def read_source_state(conn: Any, source_name: str) -> SourceState:
    """The source's state; call while holding its lock (``run_scope.locked_source``)."""
    watermark = watermark_store.read_watermark(conn, source_name)
    with conn.cursor() as cur:
        cur.execute(_LATEST_PER_PARTITION, (source_name,))
        partitions = {row[1]: _partition_load(row) for row in cur.fetchall()}
        cur.execute(_FRONTIER, (source_name, list(FRONTIER_MODES)))
        frontier_id = cur.fetchone()[0]
        cur.execute(_NULL_CAPTURE, (source_name,))
        null_capture = cur.fetchone()
        cur.execute(_KEY_SET, (source_name,))
        key_set = cur.fetchone()
        cur.execute(_UNFINISHED_TOMBSTONES, (source_name,))
        unfinished = [tuple(row) for row in cur.fetchall()]
        last_written, wrote = _last_written(cur, source_name, watermark)
    frontier = next((p for p in partitions.values() if p.run_id == frontier_id), None)
    return SourceState(
        watermark=watermark,
        last_written=last_written,
        wrote_watermark=wrote,
        partitions=partitions,
        frontier=frontier,
        null_capture_snapshot=null_capture[0] if null_capture else None,
        key_set=key_set[0] if key_set else None,
        unfinished_tombstones=unfinished,
    )


def _last_written(cur: Any, source_name: str, watermark: watermark_store.StoredWatermark | None) -> tuple[str | None, bool]:
    """The value of the platform's last write: the run the watermark row names, else the newest writing run."""
    if watermark is not None and watermark.last_run_id is not None:
        cur.execute("SELECT watermark_after FROM data_platform.ingestion_metadata WHERE id = %s",
                    (watermark.last_run_id,))
        row = cur.fetchone()
        if row is not None:
            return row[0], True
    cur.execute(
        "SELECT watermark_after FROM data_platform.ingestion_metadata WHERE source_name = %s "
        "AND status = 'success' AND load_mode = ANY(%s) AND watermark_after IS NOT NULL "
        "ORDER BY id DESC LIMIT 1",
        (source_name, list(WATERMARK_WRITING_MODES)),
    )
    row = cur.fetchone()
    return (row[0], True) if row else (None, False)


def _partition_load(row: tuple) -> PartitionLoad:
    run_id, partition_key, mode, extract_range, snapshot, taken_at, late, object_key, deleted, deletes_key = row
    return PartitionLoad(
        run_id=run_id,
        partition_key=partition_key,
        load_mode=mode,
        extract_range=ExtractRange.from_json(extract_range) if extract_range else None,
        snapshot=snapshot,
        taken_at=taken_at,
        needs_late_check=late,
        object_key=object_key,
        deleted_rows=deleted,
        deletes_object_key=deletes_key,
    )

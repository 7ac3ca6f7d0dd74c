"""The watermarks of incremental sources (``data_platform.watermarks``)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import psycopg2

from platform_assets.ingestion.errors import WatermarkError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredWatermark:
    source_name: str
    column: str
    value: str | None
    watermark_type: str
    last_snapshot: str | None
    catchup_floor: str | None
    last_run_id: int | None = None


def read_watermark(conn: Any, source_name: str) -> StoredWatermark | None:
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT source_name, watermark_column, watermark_value, watermark_type, "
                "last_snapshot, catchup_floor, last_run_id FROM data_platform.watermarks WHERE source_name = %s",
                (source_name,),
            )
            row = cur.fetchone()
    except psycopg2.Error as e:
        raise WatermarkError(
            f"{source_name}: Failed to query watermark: {str(e).strip()}; verify that "
            "data_platform.watermarks exists (run the bootstrap) and PostgreSQL is reachable"
        ) from e
    return StoredWatermark(*row) if row else None


@dataclass(frozen=True)
class WatermarkUpdate:
    column: str
    value: str | None
    watermark_type: str
    last_snapshot: str | None
    catchup_floor: str | None
    read: StoredWatermark | None = None
    """The row as the run read it: written only if it is still so (a reset meanwhile wins)."""


def write_watermark(cur: Any, source_name: str, update: WatermarkUpdate, run_id: int) -> None:
    """Move the watermark, unless someone changed it since the run read it (the guide's
    UPDATE or DELETE during the run): the reset is then left for the next run to act on."""
    values = (update.column, update.value, update.watermark_type, update.last_snapshot, update.catchup_floor, run_id)
    read = update.read
    if read is None:
        cur.execute(
            "INSERT INTO data_platform.watermarks (watermark_column, watermark_value, watermark_type, "
            "last_snapshot, catchup_floor, last_run_id, source_name) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (source_name) DO NOTHING",
            (*values, source_name),
        )
    else:
        cur.execute(
            "UPDATE data_platform.watermarks SET watermark_column = %s, watermark_value = %s, "
            "watermark_type = %s, last_snapshot = %s, catchup_floor = %s, last_run_id = %s, updated_at = now() "
            "WHERE source_name = %s AND watermark_value IS NOT DISTINCT FROM %s "
            "AND last_run_id IS NOT DISTINCT FROM %s",
            (*values, source_name, read.value, read.last_run_id),
        )
    if cur.rowcount == 0:
        log.warning("%s: the watermark changed while this run extracted (a reset?); left as it is, for the "
                    "next run to act on", source_name)


def watermark_as_of(conn: Any, source_name: str, moment: dt.datetime) -> str | None:
    """The watermark a successful run of the source had stored by ``moment``."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT watermark_after FROM data_platform.ingestion_metadata "
            "WHERE source_name = %s AND status = 'success' AND snapshot_taken_at <= %s "
            "AND watermark_after IS NOT NULL ORDER BY id DESC LIMIT 1",
            (source_name, moment),
        )
        row = cur.fetchone()
    return row[0] if row else None

"""The process running a load is SIGKILLed: after its upload, or in the middle of its extract.

The kill happens in a subprocess (tests/faults/crash_run.py); the test process then
looks at what was left and runs the source normally.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from platform_assets.ingestion.database_ingestor import extract_table_incremental
from tests.faults.support import (
    add_orders,
    assert_no_object,
    extract_backends,
    object_exists,
    psql_processes,
    read_rows,
    runs,
    source_versions,
    success_union,
    wait_until,
    watermark_row,
)

SOURCE = "public.orders"
COLUMNS = ("id", "version", "updated_at")
PROJECT = Path(__file__).resolve().parents[2]


def _crash(pg: Any, store_settings: Any, kill_at: str, key: str, date: str, tmp_path: Path) -> Path:
    """Run crash_run.py; it must die of SIGKILL. Returns the file with its psql PIDs."""
    pids_file = tmp_path / "psql_pids.json"
    spec = {
        "pg": {"host": pg.host, "port": pg.port, "user": pg.user, "password": pg.password, "dbname": pg.dbname},
        "store": {"endpoint_url": store_settings.endpoint_url, "access_key": store_settings.access_key,
                  "secret_key": store_settings.secret_key},
        "bucket": store_settings.buckets["bronze"],
        "kill_at": kill_at, "key": key, "date": date,
        "pids_file": str(pids_file), "work_dir": str(tmp_path),
    }
    env = {**os.environ, "INGESTION_PARALLEL_STREAMS": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.faults.crash_run", json.dumps(spec)],
        cwd=PROJECT, env=env, capture_output=True, timeout=120, check=False,
    )
    assert done.returncode == -9, (done.returncode, done.stderr.decode()[-3000:])
    return pids_file


def _extract(services: Any, key: str, date: str) -> dict[str, Any]:
    return extract_table_incremental("orders", "public", "updated_at", key, date, services=services)


def test_killed_after_upload_before_success(
    pg: Any, orders: Any, services: Any, store_settings: Any, tmp_path: Path
) -> None:
    client, bucket = services.store.client, services.bronze_bucket
    add_orders(orders, 100, "2024-01-01")
    _extract(services, "kill/2024-01-01.parquet", "2024-01-01")
    add_orders(orders, 40, "2024-01-02")
    before = watermark_row(orders, SOURCE)

    _crash(pg, store_settings, "after_upload", "kill/2024-01-02.parquet", "2024-01-02", tmp_path)
    # The object made it, the run did not.
    assert object_exists(client, bucket, "kill/2024-01-02.parquet")
    assert len(read_rows(client, bucket, "kill/2024-01-02.parquet", "id")) == 40
    crashed = runs(orders, SOURCE)[-1]
    assert (crashed["status"], crashed["row_count"], crashed["finished_at"]) == ("running", None, None)
    assert watermark_row(orders, SOURCE) == before
    assert wait_until(lambda: not extract_backends(orders), 5)

    add_orders(orders, 7, "2024-01-02")  # arrives before the retry
    retry = _extract(services, "kill/2024-01-02.parquet", "2024-01-02")  # the partition again
    assert retry["row_count"] == 47 and retry["watermark_before"] == before["watermark_value"]

    first, killed, again = runs(orders, SOURCE)
    assert (first["status"], killed["status"], again["status"]) == ("success", "failed", "success")
    assert killed["id"] == crashed["id"] and "did not finish" in killed["error_message"]
    assert killed["finished_at"] is not None
    every = success_union(orders, client, bucket, SOURCE, *COLUMNS)
    assert len(every) == len(set(every))
    assert every == source_versions(orders)


def test_killed_during_extract(pg: Any, orders: Any, services: Any, store_settings: Any, tmp_path: Path) -> None:
    client, bucket = services.store.client, services.bronze_bucket
    # ~15 MB of COPY output in two parallel psql streams: they are still writing at the kill.
    add_orders(orders, 120_000, "2024-01-01", payload_bytes=96)

    pids_file = _crash(pg, store_settings, "during_extract", "kill/2024-01-01.parquet", "2024-01-01", tmp_path)
    children = json.loads(pids_file.read_text())
    assert len([pid for pid, state in children if state != "Z"]) == 2, children  # both streams alive
    # Orphaned psql processes exit once their pipe's reader is gone; their sessions end.
    assert wait_until(lambda: not psql_processes(pg.dbname), 10), psql_processes(pg.dbname)
    assert wait_until(lambda: not extract_backends(orders), 10), extract_backends(orders)
    assert_no_object(client, bucket, "kill/2024-01-01.parquet")
    [crashed] = runs(orders, SOURCE)
    assert crashed["status"] == "running"
    assert watermark_row(orders, SOURCE) is None

    add_orders(orders, 5, "2024-01-02")
    retry = _extract(services, "kill/2024-01-01.parquet", "2024-01-01")
    assert retry["row_count"] == 120_005 and retry["watermark_before"] is None
    killed, again = runs(orders, SOURCE)
    assert (killed["status"], again["status"]) == ("failed", "success")
    every = success_union(orders, client, bucket, SOURCE, *COLUMNS)
    assert len(every) == len(set(every)) == 120_005
    assert every == source_versions(orders)

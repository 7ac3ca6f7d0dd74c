"""Runs of one source take turns on its lock (README: "runs of one source take turns on its
lock, and each plans its range from what the previous ones committed").
"""

from __future__ import annotations

from typing import Any

import pytest

from platform_assets.ingestion.postgres import extract as pg_extract
from platform_assets.ingestion.postgres.partition_load import load_partition
from platform_assets.ingestion.sink.parquet import ParquetSink
from tests.adversarial._common import D2, registry, rows
from tests.adversarial._common2 import ORDERS
from tests.helpers import query, tracking_runs


def test_a_run_that_lost_its_lock_overwrites_the_object_of_the_run_that_took_it(
    pg_conn, pg, store_settings, services, monkeypatch
):
    """The lock is a session advisory lock on the tracking connection, which sits idle
    during the extract and upload. When that session dies (network cut, a DBA's
    ``idle_session_timeout``, pg_terminate_backend), the lock goes with it, and nothing
    checks it before the upload (``engine._load``: upload, then ``commit_success``).

    Run A replays D2 and loses its tracking session mid-extract. Run B takes the lock
    (marking A ``failed`` as crashed), replays D2 and commits ``success`` with the new
    version (3, D2 10:00); row 3 then moves to D4. A, still running, uploads its merged
    object (built before B) over B's, then fails to record. D2's object lacks (3, 10:00)
    although B's ``success`` row counted it; the next replay cannot bring it back.
    Observed D2 ids [1, 2]; expected [1, 2, 3].
    """
    query(pg_conn, "CREATE TABLE orders (id int PRIMARY KEY, amount int, updated_at timestamptz);"
                   "INSERT INTO orders VALUES (1, 1, '2024-03-02 08:00Z'), (2, 2, '2024-03-02 09:00Z')")
    spec = ORDERS.spec(registry(ORDERS))
    load_partition(spec, D2, services)
    armed = {"on": True}

    class Sink(ParquetSink):
        def write(self, batch: Any) -> None:
            super().write(batch)
            if not armed["on"]:
                return
            armed["on"] = False  # once, in run A: its tracking session (and lock) dies
            [(killed,)] = query(pg_conn, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                                         "application_name = 'data_platform:tracking' AND datname = current_database()")
            assert killed == 1
            query(pg_conn, "INSERT INTO orders VALUES (3, 3, '2024-03-02 10:00Z')")
            run_b = load_partition(spec, D2, services)  # takes the free lock
            assert run_b.result.row_count == 3
            query(pg_conn, "UPDATE orders SET updated_at = '2024-03-04 10:00Z' WHERE id = 3")

    monkeypatch.setattr(pg_extract, "ParquetSink", Sink)
    with pytest.raises(Exception):
        load_partition(spec, D2, services)  # run A
    monkeypatch.setattr(pg_extract, "ParquetSink", ParquetSink)
    runs = [(r["status"], r["row_count"]) for r in tracking_runs(pg_conn, "public.orders")]
    assert runs == [("success", 2), ("failed", None), ("success", 3)]
    assert sorted(r[0] for r in rows(store_settings, "orders", D2, "id")) == [1, 2, 3]

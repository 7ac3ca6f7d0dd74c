"""PostgreSQL fails: the source (or platform) database unreachable, or the extract's
connections terminated while the COPY streams.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from typing import Any

import pytest

from platform_assets.ingestion.database_ingestor import extract_table_incremental
from platform_assets.ingestion.errors import IngestionError, TransientError
from platform_assets.ingestion.postgres import extract as pg_extract
from platform_assets.ingestion.sink.parquet import ParquetSink
from tests.faults.support import (
    add_orders,
    assert_no_object,
    extract_backends,
    free_port,
    psql_processes,
    query,
    read_rows,
    runs,
    source_versions,
    success_union,
    terminate_extract_backends,
    wait_until,
    watermark_row,
)

SOURCE = "public.orders"
COLUMNS = ("id", "version", "updated_at")
PASSWORD = "pg-Secret-8f3a91"


def _extract(services: Any, key: str, date: str = "2024-01-02", table: str = "orders") -> dict[str, Any]:
    return extract_table_incremental(table, "public", "updated_at", key, date, services=services)


# --------------------------------------------------------------------------- unreachable


def test_source_database_down(pg: Any, orders: Any, services: Any, debug_logs: Any) -> None:
    add_orders(orders, 10, "2024-01-01")
    _extract(services, "pgdown/1.parquet", "2024-01-01")
    add_orders(orders, 5, "2024-01-02")
    before = watermark_row(orders, SOURCE)

    port = free_port()  # nothing listens there
    source = dataclasses.replace(pg, port=port, password=PASSWORD)
    with pytest.raises(TransientError) as failure:  # worth retrying: Dagster retries it with backoff
        _extract(dataclasses.replace(services, source=source), "pgdown/2.parquet")
    message = str(failure.value)
    assert "cannot connect to the source database" in message
    assert f"127.0.0.1:{port}" in message
    assert PASSWORD not in message

    failed = runs(orders, SOURCE)[-1]
    assert failed["status"] == "failed"
    assert f"127.0.0.1:{port}" in failed["error_message"] and PASSWORD not in failed["error_message"]
    assert watermark_row(orders, SOURCE) == before
    assert_no_object(services.store.client, services.bronze_bucket, "pgdown/2.parquet")
    assert PASSWORD not in debug_logs.text

    _extract(services, "pgdown/2.parquet")
    every = success_union(orders, services.store.client, services.bronze_bucket, SOURCE, *COLUMNS)
    assert every == source_versions(orders) and len(every) == 15


def test_platform_database_down(pg: Any, orders: Any, services: Any) -> None:
    add_orders(orders, 10, "2024-01-01")
    port = free_port()
    platform = dataclasses.replace(pg, port=port, password=PASSWORD)
    with pytest.raises(TransientError) as failure:
        _extract(dataclasses.replace(services, platform=platform), "pgdown/1.parquet")
    message = str(failure.value)
    assert "cannot connect to the platform database" in message and f"127.0.0.1:{port}" in message
    assert PASSWORD not in message
    # nothing ran: no tracking row anywhere, nothing stored
    assert query(orders, "SELECT count(*) FROM data_platform.ingestion_metadata") == [(0,)]
    assert_no_object(services.store.client, services.bronze_bucket, "pgdown/1.parquet")


# --------------------------------------------------------------------------- dropped mid-extract

SLOW_VIEW = """
CREATE FUNCTION slow_id(i bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF i % 20 = 0 THEN PERFORM pg_sleep(0.02); END IF;
    RETURN i;
END $$;
CREATE VIEW slow_orders AS SELECT slow_id(id) AS id, version, payload, updated_at FROM orders;
"""


@pytest.mark.parametrize("how", ["copy_stream", "all_sessions", "snapshot_session"])
def test_extract_connection_terminated_mid_extract(
    pg: Any, orders: Any, services: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The extract's sessions are terminated while the extract runs.

    ``copy_stream``/``all_sessions``: a view that sleeps every 20 rows keeps the COPY
    (a psql process) running for seconds; the COPY session alone, or it and the
    session holding the exported snapshot, are terminated while rows stream.
    ``snapshot_session``: a plain table, read by a sink that pauses after each batch;
    after the first batch the session holding the snapshot is terminated (psql has
    usually delivered everything by then: pyarrow reads ahead).
    """
    if how == "snapshot_session":
        table, source = "orders", SOURCE
        add_orders(orders, 20, "2024-01-01")
        increment = 60_000  # ~8 MB of COPY output: two 4 MiB batches at least
    else:
        table, source = "slow_orders", "public.slow_orders"
        query(orders, SLOW_VIEW)
        add_orders(orders, 20, "2024-01-01")
        increment = 2000  # 100 sleeps of 20 ms: 2 s of COPY
    _extract(services, "drop/1.parquet", "2024-01-01", table)
    add_orders(orders, increment, "2024-01-02", payload_bytes=96)
    before = watermark_row(orders, source)

    first_batch = threading.Event()
    if how == "snapshot_session":
        class SlowSink(ParquetSink):
            def write(self, batch: Any) -> None:
                super().write(batch)
                first_batch.set()
                time.sleep(0.4)

        monkeypatch.setattr(pg_extract, "ParquetSink", SlowSink)

    killed: list[int] = []
    killer_conn = pg.connect()
    killer_conn.autocommit = True

    def copy_running() -> bool:
        return any(q.startswith("COPY") and s == "active" for _, s, q in extract_backends(killer_conn))

    def killer() -> None:
        if how == "snapshot_session":
            first_batch.wait(30)
            killed.append(terminate_extract_backends(killer_conn, "snapshot"))
            return
        wait_until(copy_running, 30, 0.02)
        time.sleep(0.3)
        killed.append(terminate_extract_backends(killer_conn, "copy" if how == "copy_stream" else "all"))

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        with pytest.raises(TransientError) as failure:
            _extract(services, "drop/2.parquet", "2024-01-02", table)
    finally:
        thread.join(30)
        killer_conn.close()
    message = str(failure.value)
    assert killed == [{"copy_stream": 1, "all_sessions": 2, "snapshot_session": 1}[how]], killed
    assert message.startswith(f"{source}: ")
    if how == "snapshot_session":
        assert "the connection to the source failed" in message
    else:
        assert "reading from PostgreSQL failed" in message and "terminating connection" in message

    failed = runs(orders, source)[-1]
    assert failed["status"] == "failed" and failed["error_message"] in message
    assert failed["row_count"] is None
    assert watermark_row(orders, source) == before
    assert_no_object(services.store.client, services.bronze_bucket, "drop/2.parquet")
    assert wait_until(lambda: not psql_processes(pg.dbname), 5), "psql left running"
    assert wait_until(lambda: not extract_backends(orders), 5), "extract sessions left open"

    monkeypatch.setattr(pg_extract, "ParquetSink", ParquetSink)
    retry = _extract(services, "drop/2.parquet", "2024-01-02", table)
    assert retry["row_count"] == increment
    every = success_union(orders, services.store.client, services.bronze_bucket, source, *COLUMNS)
    assert len(every) == len(set(every))
    assert every == source_versions(orders)
    assert min(read_rows(services.store.client, services.bronze_bucket, "drop/2.parquet", "id")) == (21,)


# --------------------------------------------------------------------------- psql itself killed


def _kill_psql_mid_copy(pg: Any, orders: Any, services: Any) -> tuple[IngestionError, dict[str, Any] | None]:
    """SIGKILL the psql process streaming the COPY (as the OOM killer would) 0.5 s into it."""
    query(orders, SLOW_VIEW)
    add_orders(orders, 20, "2024-01-01")
    _extract(services, "psql/1.parquet", "2024-01-01", "slow_orders")
    add_orders(orders, 2000, "2024-01-02", payload_bytes=96)
    before = watermark_row(orders, "public.slow_orders")
    killed: list[int] = []

    def killer() -> None:
        wait_until(lambda: bool(psql_processes(pg.dbname)), 30, 0.01)
        time.sleep(0.5)
        for pid in psql_processes(pg.dbname):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        with pytest.raises(IngestionError) as failure:
            _extract(services, "psql/2.parquet", "2024-01-02", "slow_orders")
    finally:
        thread.join(30)
    assert killed, "no psql process was running"
    return failure.value, before


def test_psql_killed_mid_copy(pg: Any, orders: Any, services: Any) -> None:
    error, before = _kill_psql_mid_copy(pg, orders, services)
    assert str(error).startswith("public.slow_orders: ")
    failed = runs(orders, "public.slow_orders")[-1]
    assert failed["status"] == "failed" and failed["row_count"] is None
    assert watermark_row(orders, "public.slow_orders") == before
    assert_no_object(services.store.client, services.bronze_bucket, "psql/2.parquet")
    assert wait_until(lambda: not extract_backends(orders), 5), "extract sessions left open"

    retry = _extract(services, "psql/2.parquet", "2024-01-02", "slow_orders")
    assert retry["row_count"] == 2000
    every = success_union(orders, services.store.client, services.bronze_bucket, "public.slow_orders", *COLUMNS)
    assert len(every) == len(set(every)) and every == source_versions(orders)


def test_psql_killed_mid_copy_is_named(pg: Any, orders: Any, services: Any) -> None:
    error, _ = _kill_psql_mid_copy(pg, orders, services)
    message = str(error)
    assert "cast the column" not in message
    assert "psql" in message and ("signal" in message or "-9" in message or "killed" in message), message


# --------------------------------------------------------------------------- the tracking session lost


def _lose_tracking_session(pg: Any, orders: Any, services: Any, monkeypatch: pytest.MonkeyPatch) -> BaseException:
    """Terminate the run's platform (tracking) session while it extracts; returns what the run raised."""
    add_orders(orders, 50, "2024-01-01")
    _extract(services, "track/1.parquet", "2024-01-01")
    add_orders(orders, 25, "2024-01-02")

    class Sink(ParquetSink):
        def write(self, batch: Any) -> None:
            super().write(batch)
            conn = pg.connect()
            conn.autocommit = True
            try:
                [(n,)] = query(
                    conn,
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'data_platform:tracking' AND datname = current_database()",
                )
                assert n == 1
            finally:
                conn.close()

    monkeypatch.setattr(pg_extract, "ParquetSink", Sink)
    with pytest.raises(Exception) as failure:
        _extract(services, "track/2.parquet")
    monkeypatch.setattr(pg_extract, "ParquetSink", ParquetSink)
    return failure.value


def test_tracking_session_lost_mid_run(pg: Any, orders: Any, services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _lose_tracking_session(pg, orders, services, monkeypatch)
    before = watermark_row(orders, SOURCE)
    # Nothing could be recorded: the row stays 'running', the watermark where it was.
    first, lost = runs(orders, SOURCE)
    assert (first["status"], lost["status"]) == ("success", "running")
    assert before["last_run_id"] == first["id"]
    retry = _extract(services, "track/2.parquet")  # the next run marks the lost one failed
    assert retry["row_count"] == 25
    assert [r["status"] for r in runs(orders, SOURCE)] == ["success", "failed", "success"]
    every = success_union(orders, services.store.client, services.bronze_bucket, SOURCE, *COLUMNS)
    assert len(every) == len(set(every)) and every == source_versions(orders)


def test_tracking_session_lost_is_an_ingestion_error(
    pg: Any, orders: Any, services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = _lose_tracking_session(pg, orders, services, monkeypatch)
    assert isinstance(error, TransientError), repr(error)
    assert SOURCE in str(error) and "platform database" in str(error)

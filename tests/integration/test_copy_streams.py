"""The COPY clients: psql streams sharing the extract's snapshot, parallel page ranges, psycopg2."""

from __future__ import annotations

import pytest

from platform_assets.ingestion.database_ingestor import extract_table_full
from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.postgres import extract as pg_extract
from tests.helpers import query, read_parquet


@pytest.fixture
def events(pg_conn):
    query(
        pg_conn,
        "CREATE TABLE events (id bigint PRIMARY KEY, label text, amount numeric(10,2), note text);"
        "INSERT INTO events SELECT g, 'label ' || g, g / 100.0,"
        " CASE WHEN g % 5 = 0 THEN E'multi\\nline, \"quoted\"' END FROM generate_series(1, 20000) g",
    )
    return pg_conn


def _rows(services, key):
    return sorted(read_parquet(services, key).to_pylist(), key=lambda r: r["id"])


@pytest.mark.parametrize("client", ["psql", "psycopg2"])
def test_clients_and_parallel_ranges_read_the_same_rows(events, services, monkeypatch, client):
    monkeypatch.setenv("INGESTION_COPY_CLIENT", client)
    monkeypatch.setattr(pg_extract, "PARALLEL_MIN_PAGES", 1)  # split even this small table
    monkeypatch.setenv("INGESTION_PARALLEL_STREAMS", "3")
    result = extract_table_full("events", "public", f"{client}.parquet", "2024-01-01", services=services)
    assert result["row_count"] == 20000
    rows = _rows(services, f"{client}.parquet")
    assert [r["id"] for r in rows] == list(range(1, 20001))
    assert rows[4]["note"] == 'multi\nline, "quoted"'
    assert str(rows[0]["amount"]) == "0.01"


def test_parallel_streams_share_one_snapshot(events, services, monkeypatch, pg):
    """Rows committed while the streams run are in none of them: one snapshot for all."""
    monkeypatch.setattr(pg_extract, "PARALLEL_MIN_PAGES", 1)
    monkeypatch.setenv("INGESTION_PARALLEL_STREAMS", "2")
    original = pg_extract.extract_batches

    def insert_then_extract(*args, **kwargs):
        writer = pg.connect()
        writer.autocommit = True
        with writer.cursor() as cur:
            cur.execute("INSERT INTO events SELECT g, 'late' FROM generate_series(20001, 20100) g")
        writer.close()
        yield from original(*args, **kwargs)

    monkeypatch.setattr(pg_extract, "extract_batches", insert_then_extract)
    result = extract_table_full("events", "public", "snap.parquet", "2024-01-01", services=services)
    assert result["row_count"] == 20000
    assert max(r["id"] for r in _rows(services, "snap.parquet")) == 20000


def test_a_failing_stream_fails_the_run_with_the_server_message(events, services, monkeypatch):
    monkeypatch.setenv("INGESTION_COPY_CLIENT", "psql")
    query(events, "CREATE VIEW broken AS SELECT id, 1 / (id - 15000) AS x FROM events")
    with pytest.raises(IngestionError, match="division by zero"):
        extract_table_full("broken", "public", "broken.parquet", "2024-01-01", services=services)
    [(status,)] = query(events, "SELECT status FROM data_platform.ingestion_metadata")
    assert status == "failed"
    keys = [o["Key"] for o in services.store.list_objects(services.bronze_bucket)]
    assert "broken.parquet" not in keys

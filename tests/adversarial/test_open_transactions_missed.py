"""Transactions open during an extract that the extract did not notice (found by an attack test).

Promise: rows committed late by transactions open during a load are picked up: for an
integer partition by the late check of a later run, for the guide's
``extract_table_incremental`` by the catch-up of its next run. Both rely on
``source_session.read_only_snapshot`` learning which transactions were open. It used to
count them in ``pg_stat_activity`` *before* taking the snapshot: a transaction that
began in between and had no xid yet (it had only read, e.g. taken its id from the
sequence or its ``now()``) was seen neither by the count nor in the snapshot's xip, and
its row, committed afterwards below the watermark, was lost. The count now runs in the
snapshot's own statement; the hook below starts such a writer right before it.
"""

from __future__ import annotations

from typing import Any, Callable

import psycopg2
import pytest

from platform_assets.ingestion.database_ingestor import extract_table_incremental
from platform_assets.ingestion.postgres import session as source_session
from platform_assets.registry import PostgresSource
from platform_resources.config import PostgresSettings
from tests.adversarial._common import D1, D2, D3, column_union, registry
from tests.helpers import materialize_partition, query, read_parquet

EVENTS = PostgresSource(name="events", table="events", load="incremental", watermark_column="id",
                        watermark_type="integer", allow_empty=True)


def _between_count_and_snapshot(monkeypatch: pytest.MonkeyPatch, hook: Callable[[], None]) -> None:
    """Run ``hook`` once, in the next extract, after it counted the open transactions and
    before its snapshot (the instant between two statements of ``read_only_snapshot``)."""
    armed: dict[str, Any] = {"hook": hook}

    class HookCursor(psycopg2.extensions.cursor):
        def execute(self, statement: Any, params: Any = None) -> Any:
            if (isinstance(statement, str) and statement.startswith("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    and armed["hook"] is not None):
                run, armed["hook"] = armed["hook"], None
                run()
            return super().execute(statement, params)

    original = PostgresSettings.connect

    def connect(self: PostgresSettings, application_name: str = "data_platform") -> Any:
        conn = original(self, application_name)
        if application_name == source_session.EXTRACT_APPLICATION_NAME:
            conn.cursor_factory = HookCursor
        return conn

    monkeypatch.setattr(PostgresSettings, "connect", connect)


@pytest.fixture
def events(pg_conn: Any) -> Any:
    query(pg_conn, "CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL);"
                   "INSERT INTO events (kind) SELECT 'seed' FROM generate_series(1, 5)")
    return pg_conn


def test_integer_partition_loses_a_row_whose_transaction_began_just_before_the_snapshot(
    events, pg, store_settings, monkeypatch
):
    """Defect: writer T begins after D1's extract counted open transactions and before its
    snapshot, holding id 6 from the sequence (no xid yet); another writer commits id 7; the
    snapshot sees 7, D1 records (None, 7] and is *not* flagged for the late check (nothing
    counted, nothing in xip). T then commits id 6: no later run ever loads it.
    """
    writer = pg.connect()
    # The id is reserved outside T: nextval() itself takes an xid whenever it WAL-logs the
    # sequence (every 32 values, and first after each checkpoint), which made T hold one.
    reserved = {"id": query(events, "SELECT nextval('events_id_seq')")[0][0]}

    def writer_begins_and_other_commits() -> None:
        query(writer, "SELECT 1")  # T has begun, as a writer that took its id earlier
        assert query(writer, "SELECT txid_current_if_assigned()")[0][0] is None  # T holds no xid yet
        query(events, "INSERT INTO events (kind) VALUES ('other')")

    _between_count_and_snapshot(monkeypatch, writer_begins_and_other_commits)
    reg = registry(EVENTS)
    try:
        assert materialize_partition(reg, pg, store_settings, "events", D1).success
        query(writer, "INSERT INTO events (id, kind) VALUES (%s, 'late')", (reserved["id"],))
        writer.commit()
    finally:
        writer.close()
    assert materialize_partition(reg, pg, store_settings, "events", D2).success
    assert materialize_partition(reg, pg, store_settings, "events", D3).success
    assert column_union(store_settings, "events", [D1, D2, D3], "id") == [1, 2, 3, 4, 5, 6, 7]


def test_guide_incremental_loses_a_row_whose_transaction_began_just_before_the_snapshot(
    pg_conn, pg, services, monkeypatch
):
    """Defect (same gap, guide's API): T begins between run 2's count and its snapshot and
    reads ``now()`` (its rows' updated_at) without writing; another writer commits a later
    updated_at. Run 2 sees nothing open (floor = its new watermark); T then commits a row
    stamped with its start, below that watermark: run 3 does not load it, nor does any run.
    """
    query(pg_conn, "CREATE TABLE items (id serial PRIMARY KEY, v text,"
                   " updated_at timestamptz NOT NULL DEFAULT now());"
                   "INSERT INTO items (v) SELECT 'seed' FROM generate_series(1, 5)")
    extract_table_incremental("items", "public", "updated_at", "g/1.parquet", services=services)
    writer = pg.connect()

    def writer_begins_and_other_commits() -> None:
        query(writer, "SELECT now()")  # T has begun: its rows carry this timestamp
        assert query(writer, "SELECT txid_current_if_assigned()")[0][0] is None
        query(pg_conn, "INSERT INTO items (v) VALUES ('other')")

    _between_count_and_snapshot(monkeypatch, writer_begins_and_other_commits)
    try:
        extract_table_incremental("items", "public", "updated_at", "g/2.parquet", services=services)
        query(writer, "INSERT INTO items (v) VALUES ('late')")
        writer.commit()
    finally:
        writer.close()
    extract_table_incremental("items", "public", "updated_at", "g/3.parquet", services=services)
    extract_table_incremental("items", "public", "updated_at", "g/4.parquet", services=services)
    loaded = sorted(v for k in ("g/1.parquet", "g/2.parquet", "g/3.parquet", "g/4.parquet")
                    for v in read_parquet(services, k).column("v").to_pylist())
    assert loaded == ["late", "other", "seed", "seed", "seed", "seed", "seed"]


def test_writer_with_track_activities_off_is_not_seen_as_open(events, pg, store_settings):
    """Defect: a writer session with ``track_activities = off`` (a DBA setting, per role or
    server-wide) shows in pg_stat_activity with state 'disabled' and no ``xact_start``: the
    count treats it as not open and not hidden (``_OPEN_TRANSACTIONS_SQL`` only treats
    ``state IS NULL`` as hidden). T takes id 6, another writer commits 7, D1 loads (None, 7]
    unflagged, T commits 6: lost. No hook needed: T simply began before the load.
    """
    writer = pg.connect()
    try:
        writer.autocommit = True
        query(writer, "SET track_activities = off")
        writer.autocommit = False
        reserved = query(writer, "SELECT nextval('events_id_seq')")[0][0]
        assert query(writer, "SELECT txid_current_if_assigned()")[0][0] is None
        query(events, "INSERT INTO events (kind) VALUES ('other')")
        reg = registry(EVENTS)
        assert materialize_partition(reg, pg, store_settings, "events", D1).success
        query(writer, "INSERT INTO events (id, kind) VALUES (%s, 'late')", (reserved,))
        writer.commit()
    finally:
        writer.close()
    assert materialize_partition(reg, pg, store_settings, "events", D2).success
    assert materialize_partition(reg, pg, store_settings, "events", D3).success
    assert column_union(store_settings, "events", [D1, D2, D3], "id") == [1, 2, 3, 4, 5, 6, 7]

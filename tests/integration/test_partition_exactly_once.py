"""Adversarial tests of "every source row version exactly once" for partitioned database sources.

Each test drives the assets as the UI does (``dg.materialize`` of one partition, in any
order, concurrently, again later) and reads bronze back: the union of the partition
objects must hold every row (integer watermark) or every version an extract saw
(timestamp watermark) exactly once, with exact values.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from platform_assets.registry import PostgresSource, Registry
from tests.helpers import (
    materialize_partition,
    object_rows,
    query,
    tracking_runs,
    waiting_advisory_locks,
)

START = dt.date(2024, 3, 1)
D1, D2, D3, D4, D5 = (str(START + dt.timedelta(days=n)) for n in range(5))

EVENTS = PostgresSource(
    name="events", table="events", load="incremental", watermark_column="id", watermark_type="integer",
    allow_empty=True,
)
ORDERS = PostgresSource(
    name="orders", table="orders", load="incremental", watermark_column="updated_at",
    watermark_type="timestamp", allow_empty=True,
)


def _registry(*sources: PostgresSource) -> Registry:
    return Registry(start_date=START, timezone="UTC", postgres=list(sources))


def _ids(store_settings: Any, name: str, partitions: list[str]) -> list[int]:
    """Every id held by the given partitions' objects (with repetitions)."""
    ids: list[int] = []
    for partition in partitions:
        rows = object_rows(store_settings, f"postgres/{name}/{partition}/{name}.parquet", "id") or []
        ids += [r[0] for r in rows]
    return sorted(ids)


def _versions(store_settings: Any, partition: str) -> list[tuple]:
    return sorted(object_rows(store_settings, f"postgres/orders/{partition}/orders.parquet", "id", "updated_at") or [])


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


@pytest.fixture
def events(pg_conn: Any) -> Any:
    query(pg_conn, "CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL)")
    return pg_conn


@pytest.fixture
def orders(pg_conn: Any) -> Any:
    query(
        pg_conn,
        "CREATE TABLE orders (id int PRIMARY KEY, amount numeric(12,2), updated_at timestamptz);"
        "INSERT INTO orders VALUES"
        " (1, 1.10, '2024-02-20 08:00+00'),"
        " (2, 2.20, '2024-03-01 00:00+00'), (3, 3.30, '2024-03-01 23:59:59.999999+00'),"
        " (4, 4.40, '2024-03-02 10:00+00'), (5, 5.50, '2024-03-02 12:00+02'),"
        " (6, 6.60, '2024-03-03 06:00+05'), (7, 7.70, '2024-03-03 18:00+00'),"
        " (8, 8.80, '2024-03-04 06:00+00'), (9, 9.90, '2024-03-04 07:00+00')",
    )
    return pg_conn


# --------------------------------------------------------------------------- integer watermarks


def test_parallel_rerun_and_new_integer_partition_hold_each_row_once(events, pg, store_settings):
    """Defect: the replay-or-incremental decision was read before the source lock was taken.

    D1 is loaded; 50 rows arrive; D2 and D1 (again) are launched together, as a backfill
    does, and both wait for the source's lock. Whatever order they get it in, the two
    objects together hold the 150 rows once.
    """
    registry = _registry(EVENTS)
    query(events, "INSERT INTO events (kind) SELECT 'a' FROM generate_series(1, 100)")
    assert materialize_partition(registry, pg, store_settings, "events", D1).success
    query(events, "INSERT INTO events (kind) SELECT 'b' FROM generate_series(1, 50)")

    holder = pg.connect()
    holder.autocommit = True
    query(holder, "SELECT pg_advisory_lock(hashtextextended('source:public.events', 0))")
    results: dict[str, Any] = {}

    def run(partition: str) -> None:
        results[partition] = materialize_partition(registry, pg, store_settings, "events", partition,
                                                   raise_on_error=False)

    threads = []
    try:
        for waiting, partition in enumerate([D2, D1], start=1):
            thread = threading.Thread(target=run, args=(partition,))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 60
            while waiting_advisory_locks(events) < waiting:
                assert time.monotonic() < deadline, "the run never waited for the source lock"
                time.sleep(0.05)
    finally:
        query(holder, "SELECT pg_advisory_unlock_all()")
        holder.close()
        for thread in threads:
            thread.join(120)
    assert all(r.success for r in results.values())
    assert _ids(store_settings, "events", [D1, D2]) == list(range(1, 151))


def test_replay_after_a_late_row_keeps_it_in_one_partition(events, pg, store_settings):
    """Defect: D2's catch-up loaded the late id 11, then replaying D1 loaded it again."""
    registry = _registry(EVENTS)
    query(events, "INSERT INTO events (id, kind) SELECT g, 'a' FROM generate_series(1, 10) g")
    late = pg.connect()
    try:
        query(late, "INSERT INTO events (id, kind) VALUES (11, 'late')")
        query(events, "INSERT INTO events (id, kind) VALUES (12, 'b')")
        assert materialize_partition(registry, pg, store_settings, "events", D1).success
        late.commit()
    finally:
        late.close()
    assert materialize_partition(registry, pg, store_settings, "events", D2).success
    assert _ids(store_settings, "events", [D1, D2]) == list(range(1, 13))
    assert materialize_partition(registry, pg, store_settings, "events", D1).success
    assert _ids(store_settings, "events", [D1, D2]) == list(range(1, 13))
    assert materialize_partition(registry, pg, store_settings, "events", D2).success
    assert _ids(store_settings, "events", [D1, D2]) == list(range(1, 13))


def test_first_partition_of_an_empty_table_records_a_bounded_range(events, pg, store_settings):
    """Defect: an empty first load recorded an unbounded range, so its replay read the whole table."""
    registry = _registry(EVENTS)
    assert materialize_partition(registry, pg, store_settings, "events", D1).success
    query(events, "INSERT INTO events (kind) SELECT 'a' FROM generate_series(1, 5)")
    assert materialize_partition(registry, pg, store_settings, "events", D2).success
    assert materialize_partition(registry, pg, store_settings, "events", D1).success
    assert _ids(store_settings, "events", [D1, D2]) == [1, 2, 3, 4, 5]
    [first] = [r for r in tracking_runs(events, "public.events") if r["partition_key"] == D1][-1:]
    assert first["row_count"] == 0


def test_watermark_reset_is_announced_by_the_run_that_acts_on_it(events, pg, store_settings):
    """Defect: after the guide's DELETE the next partition re-loaded rows of another without a word."""
    registry = _registry(EVENTS)
    query(events, "INSERT INTO events (kind) SELECT 'a' FROM generate_series(1, 5)")
    assert materialize_partition(registry, pg, store_settings, "events", D1).success
    query(events, "INSERT INTO events (kind) SELECT 'b' FROM generate_series(1, 3)")
    assert materialize_partition(registry, pg, store_settings, "events", D2).success
    query(events, "DELETE FROM data_platform.watermarks WHERE source_name = 'public.events'")
    query(events, "INSERT INTO events (kind) VALUES ('c')")

    result = materialize_partition(registry, pg, store_settings, "events", D3)
    [materialization] = result.asset_materializations_for_node("bronze__postgres__events")
    assert materialization.metadata["watermark_reset"].value == {"old": "8", "new": None}
    # The guide's meaning is kept: "extract again" re-reads rows D1 and D2 hold.
    assert _ids(store_settings, "events", [D3]) == list(range(1, 10))
    [run] = [r for r in tracking_runs(events, "public.events") if r["partition_key"] == D3]
    assert run["watermark_reset"] == {"old": "8", "new": None}
    # The next partition is back to normal: nothing is reported and nothing is re-read.
    query(events, "INSERT INTO events (kind) VALUES ('d')")
    result = materialize_partition(registry, pg, store_settings, "events", D4)
    [materialization] = result.asset_materializations_for_node("bronze__postgres__events")
    assert "watermark_reset" not in materialization.metadata
    assert _ids(store_settings, "events", [D4]) == [10]


# --------------------------------------------------------------------------- timestamp watermarks


def test_replay_keeps_a_version_the_partition_already_held(orders, pg, store_settings):
    """Defect: re-materializing a day rewrote it from the rows on that day *now*, dropping
    the version of a row that was updated since."""
    registry = _registry(ORDERS)
    assert materialize_partition(registry, pg, store_settings, "orders", D2).success
    assert _versions(store_settings, D2) == [(4, _utc("2024-03-02T10:00+00:00")), (5, _utc("2024-03-02T10:00+00:00"))]
    query(orders, "UPDATE orders SET updated_at = '2024-03-04 09:00+00', amount = 44.0 WHERE id = 4")
    assert materialize_partition(registry, pg, store_settings, "orders", D2).success
    assert materialize_partition(registry, pg, store_settings, "orders", D4).success
    assert _versions(store_settings, D2) == [(4, _utc("2024-03-02T10:00+00:00")), (5, _utc("2024-03-02T10:00+00:00"))]
    assert (4, _utc("2024-03-04T09:00+00:00")) in _versions(store_settings, D4)
    amounts = object_rows(store_settings, f"postgres/orders/{D2}/orders.parquet", "id", "amount")
    assert sorted(amounts)[0] == (4, Decimal("4.40"))


def test_late_row_reload_keeps_the_versions_it_replaces(orders, pg, store_settings):
    """Defect: the automatic late-row reload rewrote the day from the rows on it now."""
    registry = _registry(ORDERS)
    late = pg.connect()
    try:
        query(late, "UPDATE orders SET updated_at = '2024-03-05 08:00+00' WHERE id = 6")
        query(late, "INSERT INTO orders VALUES (10, 10.0, '2024-03-03 20:00+00')")
        assert materialize_partition(registry, pg, store_settings, "orders", D3).success
        late.commit()
    finally:
        late.close()
    result = materialize_partition(registry, pg, store_settings, "orders", D4)
    assert {e.partition for e in result.get_asset_materialization_events()} == {D3, D4}
    # the reloaded partition's checks ran again, for that partition
    assert {e.partition for e in result.get_asset_check_evaluations()} == {D3, D4}
    assert [v[0] for v in _versions(store_settings, D3)] == [6, 7, 10]


def test_rebuild_replaces_a_partition_with_the_source_as_it_is_now(orders, pg, store_settings):
    registry = _registry(ORDERS)
    assert materialize_partition(registry, pg, store_settings, "orders", D2).success
    query(orders, "UPDATE orders SET updated_at = '2024-03-04 09:00+00' WHERE id = 4")
    result = materialize_partition(registry, pg, store_settings, "orders", D2, run_config={"rebuild": True})
    [materialization] = result.asset_materializations_for_node("bronze__postgres__orders")
    assert materialization.metadata["rebuild"].value is True
    assert [v[0] for v in _versions(store_settings, D2)] == [5]
    # the same through the run tag a user can set on a backfill
    query(orders, "UPDATE orders SET updated_at = '2024-03-04 09:30+00' WHERE id = 5")
    materialize_partition(registry, pg, store_settings, "orders", D2, tags={"data_platform/rebuild": "true"})
    assert _versions(store_settings, D2) == []


def test_null_watermarks_are_loaded_by_the_first_partition_and_reported_after(orders, pg, store_settings):
    """Defect: rows whose watermark is NULL fell in no partition and no check said so."""
    registry = _registry(ORDERS)
    query(orders, "INSERT INTO orders VALUES (20, 20.0, NULL), (21, 21.0, NULL)")
    result = materialize_partition(registry, pg, store_settings, "orders", D1)
    assert [v[0] for v in _versions(store_settings, D1)] == [1, 2, 3, 20, 21]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["null_watermarks"].passed

    query(orders, "INSERT INTO orders VALUES (22, 22.0, NULL)")
    result = materialize_partition(registry, pg, store_settings, "orders", D2)
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}["null_watermarks"]
    assert not check.passed and check.severity.value == "WARN"
    assert check.metadata["null_watermark_rows"].value == 1
    assert check.metadata["sample"].value == [{"id": 22}]

    # A row loaded while NULL and given a value later is a new version, not a duplicate.
    query(orders, "UPDATE orders SET updated_at = '2024-03-03 12:00+00' WHERE id = 20")
    assert materialize_partition(registry, pg, store_settings, "orders", D3).success
    assert (20, _utc("2024-03-03T12:00+00:00")) in _versions(store_settings, D3)
    assert (20, None) in _versions(store_settings, D1)


def test_guide_incremental_reports_null_watermarks_it_cannot_load(orders, services):
    from platform_assets.ingestion.database_ingestor import extract_table_incremental

    query(orders, "INSERT INTO orders VALUES (20, 20.0, NULL)")
    first = extract_table_incremental("orders", "public", "updated_at", "g/1.parquet", services=services)
    assert first["row_count"] == 10  # the first (full) extract holds the NULL-watermark row
    assert first["warnings"] == []
    query(orders, "INSERT INTO orders VALUES (21, 21.0, NULL), (22, 22.0, NULL)")
    second = extract_table_incremental("orders", "public", "updated_at", "g/2.parquet", services=services)
    assert second["row_count"] == 0
    [warning] = second["warnings"]
    assert "2 row(s)" in warning and "NULL" in warning and "updated_at" in warning


def test_rebuild_of_the_frontier_acting_on_a_reset_keeps_its_rows(events, pg, store_settings):
    """Found by the model-based test: a rebuild of the newest range acting on the guide's
    UPDATE of the watermark re-read only from the new value and dropped the rows of its
    range below it, which no other partition held."""
    registry = _registry(EVENTS)
    query(events, "INSERT INTO events (kind) SELECT 'a' FROM generate_series(1, 3)")
    assert materialize_partition(registry, pg, store_settings, "events", D1).success
    query(events, "INSERT INTO events (kind) SELECT 'b' FROM generate_series(1, 3)")
    assert materialize_partition(registry, pg, store_settings, "events", D2).success
    query(events, "UPDATE data_platform.watermarks SET watermark_value = '4' WHERE source_name = 'public.events'")
    result = materialize_partition(registry, pg, store_settings, "events", D2, run_config={"rebuild": True})
    [materialization] = result.asset_materializations_for_node("bronze__postgres__events")
    assert materialization.metadata["watermark_reset"].value == {"old": "6", "new": "4"}
    assert _ids(store_settings, "events", [D1, D2]) == [1, 2, 3, 4, 5, 6]


def test_rebuild_from_the_command_line(orders, pg, store_settings, tmp_path):
    import os
    import subprocess
    import sys

    registry = tmp_path / "sources.yaml"
    registry.write_text(
        "start_date: '2024-03-01'\npostgres:\n  - {name: orders, table: orders, load: incremental,"
        " watermark_column: updated_at, watermark_type: timestamp, allow_empty: true}\n"
    )
    assert materialize_partition(_registry(ORDERS), pg, store_settings, "orders", D2).success
    query(orders, "DELETE FROM orders WHERE id = 4")
    env = {
        **os.environ, "PGHOST": pg.host, "PGPORT": str(pg.port), "PGUSER": pg.user, "PGDATABASE": pg.dbname,
        "MINIO_ENDPOINT": store_settings.endpoint_url, "MINIO_ACCESS_KEY": store_settings.access_key,
        "MINIO_SECRET_KEY": store_settings.secret_key, "BRONZE_BUCKET": store_settings.buckets["bronze"],
        "SOURCE_REGISTRY": str(registry),
    }
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run([sys.executable, "-m", "platform_assets.cli", "rebuild", "orders", D2],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"rebuild of orders {D2}: succeeded" in done.stdout
    assert [v[0] for v in _versions(store_settings, D2)] == [5]
    [last] = tracking_runs(orders, "public.orders")[-1:]
    assert last["rebuild"] is True

"""A backfill of 10 daily partitions of a timestamp-incremental asset, launched as 10
parallel ``dg.materialize`` calls while a writer keeps inserting rows.

The partitions are the last 10 days up to today (UTC). The writer stamps its rows with
``now()``, so they belong to today's partition; one of its transactions stays open
through the whole backfill and commits after it. Nothing is re-materialized by hand:
one more materialization of the first partition afterwards (what the next scheduled
run of the source does) finds the rows today's partition could not see and reloads
it (README, "Late rows"). Then the union of the 10 partition objects is exactly the
source table, each row once.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import dagster as dg
import pytest

from platform_assets.definitions import build_definitions
from platform_assets.registry import PostgresSource, Registry
from tests.faults.support import query, read_rows, runs
from tests.helpers import dagster_resources

SOURCE = PostgresSource(
    name="orders", table="orders", load="incremental", watermark_column="updated_at", watermark_type="timestamp",
)
DAYS = 10




def _materialize(registry: Registry, pg: Any, store_settings: Any, partition: str) -> dg.ExecuteInProcessResult:
    defs = build_definitions(registry)
    return dg.materialize(
        [defs.get_assets_def(dg.AssetKey(["bronze", "postgres", "orders"]))],
        partition_key=partition,
        resources=dagster_resources(pg, store_settings),
        raise_on_error=False,
    )


def _writer(pg: Any, stop: threading.Event, errors: list[BaseException], inserted: list[int]) -> None:
    conn = pg.connect()
    try:
        while not stop.is_set():
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO orders (payload, updated_at) SELECT 'writer', now() FROM generate_series(1, 3)"
                )
                time.sleep(0.02)
            conn.commit()
            inserted.append(3)
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append(e)
    finally:
        conn.close()


def test_parallel_backfill_while_writing(pg: Any, orders: Any, store_settings: Any, services: Any) -> None:
    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=DAYS - 1)
    partitions = [(start + dt.timedelta(days=n)).isoformat() for n in range(DAYS)]
    registry = Registry(start_date=start, timezone="UTC", postgres=[SOURCE])
    # History: 20 rows per day, 5 from before the first partition; today's from earlier today.
    query(
        orders,
        "INSERT INTO orders (payload, updated_at) "
        "SELECT 'history', d + (g * interval '1 hour') / 2 "
        "FROM generate_series(%s::timestamptz - interval '1 day', %s::timestamptz - interval '1 day', "
        "                     interval '1 day') d, generate_series(1, 20) g",
        (f"{start}T00:00:00+00", f"{today}T00:00:00+00"),
    )
    query(orders, "INSERT INTO orders (payload, updated_at) SELECT 'today', now() FROM generate_series(1, 5)")

    stop = threading.Event()
    errors: list[BaseException] = []
    inserted: list[int] = []
    writer = threading.Thread(target=_writer, args=(pg, stop, errors, inserted))
    late = pg.connect()  # a transaction open through the whole backfill
    query(late, "INSERT INTO orders (payload, updated_at) VALUES ('late', now())")
    results: dict[str, Any] = {}

    def materialize(partition: str) -> None:
        try:
            results[partition] = _materialize(registry, pg, store_settings, partition)
        except BaseException as e:  # noqa: BLE001 - reported below
            results[partition] = e

    writer.start()
    threads = [threading.Thread(target=materialize, args=(p,)) for p in partitions]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        stop.set()
        writer.join(30)
        late.commit()
        late.close()
    assert not errors, errors
    assert inserted, "the writer wrote nothing during the backfill"
    if dt.datetime.now(dt.UTC).date() != today:
        pytest.skip("the UTC day changed during the backfill")
    assert all(isinstance(r, dg.ExecuteInProcessResult) and r.success for r in results.values()), results
    for partition, result in results.items():
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()
                  if e.partition == partition}
        assert checks.get("stored_object_matches_record"), (partition, checks)

    # The next run of the source (any partition) reloads today's partition: it has late rows.
    follow_up = _materialize(registry, pg, store_settings, partitions[0])
    assert follow_up.success
    reloaded = {e.partition for e in follow_up.get_asset_materialization_events()}
    assert reloaded == {partitions[0], partitions[-1]}

    client, bucket = services.store.client, store_settings.buckets["bronze"]
    loaded = [
        row for p in partitions
        for row in read_rows(client, bucket, f"postgres/orders/{p}/orders.parquet", "id", "updated_at")
    ]
    assert len(loaded) == len(set(loaded)), "a row is in two partitions"
    assert sorted(loaded) == sorted(query(orders, "SELECT id, updated_at FROM orders"))
    # each partition holds its own day (the first also what came before)
    for p in partitions[1:]:
        day = dt.date.fromisoformat(p)
        stamps = read_rows(client, bucket, f"postgres/orders/{p}/orders.parquet", "updated_at")
        assert stamps and all(s.astimezone(dt.UTC).date() == day for (s,) in stamps), p
    assert {r["status"] for r in runs(orders, "public.orders")} == {"success"}

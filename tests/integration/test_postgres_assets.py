"""Postgres assets through Dagster: partitions, backfills, replays, late rows."""

from __future__ import annotations

import datetime as dt
import threading

import dagster as dg
import pyarrow as pa
import pytest

from platform_assets.definitions import build_definitions
from platform_assets.registry import PostgresSource, Registry
from tests.helpers import dagster_resources, query, read_parquet

START = dt.date(2024, 3, 1)




def _registry(*sources: PostgresSource) -> Registry:
    return Registry(start_date=START, timezone="UTC", postgres=list(sources))


def _asset(defs: dg.Definitions, name: str) -> dg.AssetsDefinition:
    return defs.get_assets_def(dg.AssetKey(["bronze", "postgres", name]))


def _materialize(registry, pg, store_settings, name, partition, raise_on_error=True):
    defs = build_definitions(registry)
    return dg.materialize(
        [_asset(defs, name)],
        partition_key=partition,
        resources=dagster_resources(pg, store_settings),
        raise_on_error=raise_on_error,
    )


ORDERS = PostgresSource(
    name="orders", table="orders", load="incremental",
    watermark_column="updated_at", watermark_type="timestamp",
)
EVENTS = PostgresSource(
    name="events", table="events", load="incremental", watermark_column="id", watermark_type="integer",
)


@pytest.fixture
def orders(pg_conn):
    query(
        pg_conn,
        "CREATE TABLE orders (id int PRIMARY KEY, amount numeric(12,2), updated_at timestamptz NOT NULL);"
        "CREATE INDEX ON orders (updated_at);"
        # Four days of rows, two per day, plus one before the first partition.
        "INSERT INTO orders VALUES"
        " (1, 1.10, '2024-02-20 08:00+00'),"
        " (2, 2.20, '2024-03-01 00:00+00'), (3, 3.30, '2024-03-01 23:59:59.999999+00'),"
        " (4, 4.40, '2024-03-02 10:00+00'), (5, 5.50, '2024-03-02 12:00+02'),"
        " (6, 6.60, '2024-03-03 06:00+05'), (7, 7.70, '2024-03-03 18:00+00'),"
        " (8, 8.80, '2024-03-04 06:00+00'), (9, 9.90, '2024-03-04 07:00+00')",
    )
    return pg_conn


def _ids(services_like, key: str) -> list[int]:
    return sorted(read_parquet(services_like, key).column("id").to_pylist())


class _Bucket:
    """Enough of Services for tests.helpers.read_parquet."""

    def __init__(self, store_settings):
        from platform_resources.object_store import ObjectStore

        self.store = ObjectStore(store_settings.client(), store_settings.endpoint_url)
        self.bronze_bucket = store_settings.buckets["bronze"]


def test_definitions_load_with_unique_keys():
    from platform_assets.definitions import defs

    repository = defs.get_repository_def()
    keys = [k for a in repository.assets_defs_by_key.values() for k in a.keys]
    assert len(keys) == len(set(keys))
    assert dg.AssetKey(["bronze", "postgres", "orders"]) in keys
    dg.Definitions.validate_loadable(defs)


def test_timestamp_partition_holds_its_own_day(orders, pg, store_settings):
    registry = _registry(ORDERS)
    bucket = _Bucket(store_settings)
    result = _materialize(registry, pg, store_settings, "orders", "2024-03-02")
    assert result.success
    # 12:00+02 is 10:00 UTC: both rows are on 2024-03-02 in UTC.
    assert _ids(bucket, "postgres/orders/2024-03-02/orders.parquet") == [4, 5]
    materialization = result.asset_materializations_for_node("bronze__postgres__orders")[0]
    assert materialization.metadata["row_count"].value == 2
    assert materialization.metadata["watermark_after"].value == "2024-03-02T10:00:00.000000+00:00"
    schema = materialization.metadata["dagster/column_schema"].value
    assert [c.name for c in schema.columns] == ["id", "amount", "updated_at"]
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {"stored_object_matches_record", "source_reconciliation", "row_count"} <= set(evaluations)
    assert all(e.passed and e.partition == "2024-03-02" for e in evaluations.values())

    # The first partition also holds everything before the start date.
    _materialize(registry, pg, store_settings, "orders", "2024-03-01")
    assert _ids(bucket, "postgres/orders/2024-03-01/orders.parquet") == [1, 2, 3]
    table = read_parquet(bucket, "postgres/orders/2024-03-01/orders.parquet")
    assert table.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("amount").type == pa.decimal128(12, 2)


def test_rematerializing_a_partition_is_idempotent(orders, pg, store_settings):
    registry = _registry(ORDERS)
    bucket = _Bucket(store_settings)
    key = "postgres/orders/2024-03-03/orders.parquet"
    _materialize(registry, pg, store_settings, "orders", "2024-03-04")
    _materialize(registry, pg, store_settings, "orders", "2024-03-03")
    first = read_parquet(bucket, key)
    _materialize(registry, pg, store_settings, "orders", "2024-03-03")
    assert read_parquet(bucket, key).equals(first)
    # The watermark never moves backwards: it stays at the 2024-03-04 partition's max.
    [(watermark,)] = query(orders, "SELECT watermark_value FROM data_platform.watermarks")
    assert watermark == "2024-03-04T07:00:00.000000+00:00"


def test_parallel_backfill_loses_and_duplicates_nothing(orders, pg, store_settings):
    registry = _registry(ORDERS)
    bucket = _Bucket(store_settings)
    partitions = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05"]
    failures: list[BaseException] = []

    def run(partition: str) -> None:
        try:
            assert _materialize(registry, pg, store_settings, "orders", partition).success
        except BaseException as e:  # reported by the main thread
            failures.append(e)

    threads = [threading.Thread(target=run, args=(p,)) for p in partitions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    loaded = [i for p in partitions for i in _ids(bucket, f"postgres/orders/{p}/orders.parquet")]
    assert sorted(loaded) == list(range(1, 10))
    rows = query(
        orders,
        "SELECT partition_key, row_count FROM data_platform.ingestion_metadata "
        "WHERE status = 'success' ORDER BY partition_key",
    )
    assert rows == [("2024-03-01", 3), ("2024-03-02", 2), ("2024-03-03", 2), ("2024-03-04", 2), ("2024-03-05", 0)]


def test_late_rows_reload_their_partition(orders, pg, store_settings):
    registry = _registry(ORDERS)
    bucket = _Bucket(store_settings)
    writer = pg.connect()
    try:
        with writer.cursor() as cur:
            cur.execute("INSERT INTO orders VALUES (10, 10.0, '2024-03-03 20:00+00')")  # not committed yet
        assert _materialize(registry, pg, store_settings, "orders", "2024-03-03").success
        assert _ids(bucket, "postgres/orders/2024-03-03/orders.parquet") == [6, 7]
        writer.commit()
    finally:
        writer.close()
    # Any later run of the source finds the late row and reloads 2024-03-03.
    result = _materialize(registry, pg, store_settings, "orders", "2024-03-04")
    assert _ids(bucket, "postgres/orders/2024-03-03/orders.parquet") == [6, 7, 10]
    events = result.get_asset_materialization_events()
    assert {e.partition for e in events} == {"2024-03-03", "2024-03-04"}


def test_integer_partitions_record_and_replay_their_range(pg_conn, pg, store_settings):
    query(
        pg_conn,
        "CREATE TABLE events (id bigserial PRIMARY KEY, kind text);"
        "INSERT INTO events (kind) SELECT 'a' FROM generate_series(1, 5)",
    )
    registry = _registry(EVENTS)
    bucket = _Bucket(store_settings)
    _materialize(registry, pg, store_settings, "events", "2024-03-01")
    query(pg_conn, "INSERT INTO events (kind) SELECT 'b' FROM generate_series(1, 3)")
    _materialize(registry, pg, store_settings, "events", "2024-03-02")
    assert _ids(bucket, "postgres/events/2024-03-01/events.parquet") == [1, 2, 3, 4, 5]
    assert _ids(bucket, "postgres/events/2024-03-02/events.parquet") == [6, 7, 8]

    query(pg_conn, "INSERT INTO events (kind) VALUES ('c')")
    # An older partition replays exactly the range it recorded.
    _materialize(registry, pg, store_settings, "events", "2024-03-01")
    assert _ids(bucket, "postgres/events/2024-03-01/events.parquet") == [1, 2, 3, 4, 5]
    # The newest partition keeps its range and takes what arrived since.
    _materialize(registry, pg, store_settings, "events", "2024-03-02")
    assert _ids(bucket, "postgres/events/2024-03-02/events.parquet") == [6, 7, 8, 9]
    [(watermark,)] = query(pg_conn, "SELECT watermark_value FROM data_platform.watermarks")
    assert watermark == "9"


def test_full_source_partition_is_a_snapshot(pg_conn, pg, store_settings):
    query(pg_conn, "CREATE TABLE customers (id int, name text); INSERT INTO customers VALUES (1, 'a'), (2, NULL)")
    registry = _registry(PostgresSource(name="customers", table="customers"))
    result = _materialize(registry, pg, store_settings, "customers", "2024-03-05")
    assert result.success
    table = read_parquet(_Bucket(store_settings), "postgres/customers/2024-03-05/customers.parquet")
    assert table.to_pylist() == [{"id": 1, "name": "a"}, {"id": 2, "name": None}]


def test_failed_materialization_marks_the_run_failed(pg_conn, pg, store_settings):
    registry = _registry(PostgresSource(name="missing", table="does_not_exist"))
    result = _materialize(registry, pg, store_settings, "missing", "2024-03-05", raise_on_error=False)
    assert not result.success
    [(status, message)] = query(
        pg_conn, "SELECT status, error_message FROM data_platform.ingestion_metadata"
    )
    assert status == "failed"
    assert "public.does_not_exist does not exist" in message

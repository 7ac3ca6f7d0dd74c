"""The guide's database extraction API against real PostgreSQL and an S3 server.

Every test asserts on the data: the Parquet object read back from the bronze
bucket and the rows of the tracking tables (``data_platform.ingestion_metadata``,
``watermarks``, ``schema_history``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import socket
import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from platform_assets.ingestion.database_ingestor import (
    extract_table_full,
    extract_table_incremental,
    extract_with_custom_query,
)
from platform_assets.ingestion.errors import (
    IngestionError,
    SchemaDetectionError,
    SourceBusyError,
    WatermarkError,
)
from platform_resources.config import ObjectStoreSettings
from platform_resources.object_store import ObjectStore
from tests.helpers import query, read_parquet, watermark_row
from tests.helpers import tracking_runs as runs

UTC = dt.UTC


# --------------------------------------------------------------------------- helpers


def object_bytes(services: Any, key: str) -> bytes:
    return services.store.client.get_object(Bucket=services.bronze_bucket, Key=key)["Body"].read()


def object_keys(services: Any, prefix: str = "") -> list[str]:
    listed = services.store.client.list_objects_v2(Bucket=services.bronze_bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))






def loaded(services: Any, key: str, *columns: str) -> list[tuple]:
    """The rows of a stored Parquet object as tuples of ``columns``, sorted."""
    table = read_parquet(services, key)
    return sorted(tuple(r[c] for c in columns) for r in table.to_pylist())


def ts(text: str) -> dt.datetime:
    """An aware UTC datetime from an ISO string."""
    return dt.datetime.fromisoformat(text).astimezone(UTC)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ORDERS_DDL = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    customer_id int REFERENCES customers (id),
    amount      numeric(10,2) NOT NULL,
    status      text NOT NULL,
    updated_at  {ts_type} NOT NULL
);
INSERT INTO customers VALUES (1, 'alice'), (2, 'bob'), (3, 'carol');
"""


def make_orders(conn: Any, ts_type: str = "timestamptz") -> None:
    query(conn, ORDERS_DDL.format(ts_type=ts_type))


def add_order(conn: Any, updated_at: str, amount: str = "10.00", status: str = "completed",
              customer_id: int = 1) -> int:
    [(new_id,)] = query(
        conn,
        "INSERT INTO orders (customer_id, amount, status, updated_at) VALUES (%s, %s, %s, %s) "
        "RETURNING id",
        (customer_id, amount, status, updated_at),
    )
    return new_id


def table_versions(conn: Any) -> list[tuple]:
    """(id, amount, updated_at) of every row of public.orders, as the Parquet rows compare."""
    return sorted(query(conn, "SELECT id, amount, updated_at FROM orders"))


# --------------------------------------------------------------------------- full loads


@pytest.fixture
def products(pg_conn: Any) -> None:
    query(
        pg_conn,
        """
        CREATE TABLE products (
            id       int PRIMARY KEY,
            name     text NOT NULL,
            price    numeric(12,2),
            in_stock bool,
            added_at timestamptz
        );
        INSERT INTO products
        SELECT g, 'product ' || g, g * 1.25, g % 2 = 0,
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour'
        FROM generate_series(1, 250) g;
        """,
    )


def test_full_load_result_object_and_tracking_rows(services: Any, pg_conn: Any, products: None) -> None:
    ds = "2024-03-05"
    key = f"postgres/products/{ds}/products.parquet"
    result = extract_table_full("products", "public", key, ds, services=services)

    body = object_bytes(services, key)
    head = services.store.client.head_object(Bucket=services.bronze_bucket, Key=key)
    assert result["uri"] == f"s3://{services.bronze_bucket}/{key}"
    assert result["row_count"] == 250
    assert result["file_size_bytes"] == len(body) == head["ContentLength"]
    assert result["checksum"] == hashlib.md5(body).hexdigest()
    assert result["source_name"] == "public.products"
    assert result["execution_date"] == ds
    assert result["status"] == "success"
    assert "watermark_after" not in result

    # the data itself
    table = read_parquet(services, key)
    assert table.num_rows == 250
    assert table.schema.names == ["id", "name", "price", "in_stock", "added_at"]
    assert sorted(tuple(r.values()) for r in table.to_pylist()) == sorted(
        query(pg_conn, "SELECT id, name, price, in_stock, added_at FROM products")
    )

    [run] = runs(pg_conn, "public.products")
    assert run["status"] == "success"
    assert run["source_type"] == "postgres"
    assert run["execution_date"] == dt.date(2024, 3, 5)
    assert run["row_count"] == 250
    assert run["file_size_bytes"] == len(body)
    assert run["checksum"] == hashlib.md5(body).hexdigest()
    assert run["error_message"] is None
    assert run["uri"] == result["uri"] and run["object_key"] == key
    assert run["finished_at"] is not None and run["finished_at"] >= run["started_at"]
    assert result["run_id"] == run["id"]

    [(n_columns, table_name, schema_name, exec_date, run_id)] = query(
        pg_conn,
        "SELECT jsonb_array_length(schema_metadata->'columns'), schema_metadata->>'table_name', "
        "schema_metadata->>'schema', execution_date, run_id "
        "FROM data_platform.schema_history WHERE source_name = 'public.products'",
    )
    assert n_columns == 5
    assert (table_name, schema_name, exec_date, run_id) == ("products", "public", dt.date(2024, 3, 5), run["id"])
    # full loads never touch watermarks
    assert watermark_row(pg_conn, "public.products") is None


def test_full_load_default_key_and_execution_date(services: Any, pg_conn: Any, products: None) -> None:
    result = extract_table_full("products", execution_date="2024-03-05T23:15:00", services=services)
    assert result["execution_date"] == "2024-03-05"
    assert result["uri"].endswith("/postgres/products/2024-03-05/products.parquet")
    assert read_parquet(services, "postgres/products/2024-03-05/products.parquet").num_rows == 250

    today = dt.date.today().isoformat()
    result = extract_table_full("products", services=services)
    assert result["execution_date"] == today
    assert object_keys(services, f"postgres/products/{today}/") == [f"postgres/products/{today}/products.parquet"]

    with pytest.raises(IngestionError, match="execution_date"):
        extract_table_full("products", execution_date="yesterday", services=services)


def test_same_named_tables_of_two_schemas_get_default_keys_of_their_own(services: Any, pg_conn: Any) -> None:
    # Regression: the default key held the table name only, so ``sales.orders`` overwrote
    # ``public.orders`` (both recorded as successes).
    query(pg_conn, "CREATE SCHEMA sales")
    query(pg_conn, "CREATE TABLE orders (id int PRIMARY KEY)")
    query(pg_conn, "CREATE TABLE sales.orders (id int PRIMARY KEY)")
    query(pg_conn, "INSERT INTO orders VALUES (1); INSERT INTO sales.orders VALUES (2), (3)")
    ds = "2024-03-05"

    public = extract_table_full("orders", "public", execution_date=ds, services=services)
    sales = extract_table_full("orders", "sales", execution_date=ds, services=services)

    assert public["object_key"] == f"postgres/orders/{ds}/orders.parquet"
    assert sales["object_key"] == f"postgres/sales.orders/{ds}/orders.parquet"
    assert read_parquet(services, public["object_key"]).column("id").to_pylist() == [1]
    assert read_parquet(services, sales["object_key"]).column("id").to_pylist() == [2, 3]


def test_full_load_from_system_table_and_view(services: Any, pg_conn: Any, products: None) -> None:
    ds = "2024-03-05"
    key = f"postgres/system/tables/{ds}/tables.parquet"
    result = extract_table_full("tables", "information_schema", key, ds, services=services)
    assert result["row_count"] > 0
    assert result["source_name"] == "information_schema.tables"
    table = read_parquet(services, key)
    assert table.num_rows == result["row_count"]
    names = set(zip(table.column("table_schema").to_pylist(), table.column("table_name").to_pylist()))
    assert ("public", "products") in names
    assert ("data_platform", "ingestion_metadata") in names

    query(pg_conn, "CREATE VIEW cheap_products AS SELECT id, price FROM products WHERE price < 10")
    result = extract_table_full("cheap_products", "public", "views/cheap.parquet", ds, services=services)
    assert loaded(services, "views/cheap.parquet", "id", "price") == sorted(
        query(pg_conn, "SELECT id, price FROM products WHERE price < 10")
    )
    assert result["row_count"] == 7


# --------------------------------------------------------------------------- custom queries


def test_custom_query_with_join(services: Any, pg_conn: Any) -> None:
    make_orders(pg_conn)
    add_order(pg_conn, "2024-01-01 10:00:00+00", "10.50", "completed", 1)
    add_order(pg_conn, "2024-01-01 11:00:00+00", "20.00", "pending", 2)
    add_order(pg_conn, "2024-01-01 12:00:00+00", "30.25", "completed", 3)
    ds = "2024-01-02"
    key = f"postgres/completed_orders/{ds}/data.parquet"
    result = extract_with_custom_query(
        query="""
            SELECT o.id, o.amount, c.name AS customer_name
            FROM public.orders o
            JOIN public.customers c ON o.customer_id = c.id
            WHERE o.status = 'completed'
        """,
        object_key=key,
        execution_date=ds,
        source_name="completed_orders_join",
        services=services,
    )
    assert result["source_name"] == "completed_orders_join"
    assert result["row_count"] == 2
    assert result["uri"] == f"s3://{services.bronze_bucket}/{key}"
    table = read_parquet(services, key)
    assert table.schema.names == ["id", "amount", "customer_name"]
    assert str(table.schema.field("amount").type) == "decimal128(10, 2)"
    assert loaded(services, key, "id", "amount", "customer_name") == [
        (1, Decimal("10.50"), "alice"),
        (3, Decimal("30.25"), "carol"),
    ]
    [run] = runs(pg_conn, "completed_orders_join")
    assert (run["status"], run["row_count"], run["checksum"]) == (
        "success", 2, hashlib.md5(object_bytes(services, key)).hexdigest()
    )
    [(doc,)] = query(
        pg_conn,
        "SELECT schema_metadata FROM data_platform.schema_history WHERE source_name = 'completed_orders_join'",
    )
    assert "JOIN public.customers" in doc["query"]
    assert [c["name"] for c in doc["columns"]] == ["id", "amount", "customer_name"]


def test_custom_query_with_like_and_percent_signs(services: Any, pg_conn: Any) -> None:
    query(
        pg_conn,
        "CREATE TABLE words (w text); "
        "INSERT INTO words VALUES ('apple'), ('avocado'), ('banana'), ('a%b'), ('Apple'), ('%s')",
    )
    result = extract_with_custom_query(
        "SELECT w, w LIKE '%%' AS any_text, '%s %(x)s 100%' AS literal FROM words WHERE w LIKE 'a%';",
        "custom/like.parquet",
        source_name="words_a",
        services=services,
    )
    assert result["row_count"] == 3
    assert loaded(services, "custom/like.parquet", "w", "any_text", "literal") == [
        ("a%b", True, "%s %(x)s 100%"),
        ("apple", True, "%s %(x)s 100%"),
        ("avocado", True, "%s %(x)s 100%"),
    ]


WRITING_QUERIES = {
    "delete_returning": "DELETE FROM victims RETURNING *",
    "update_returning": "UPDATE victims SET v = 'changed' RETURNING *",
    "cte_insert": "WITH ins AS (INSERT INTO victims VALUES (100, 'new') RETURNING *) SELECT * FROM ins",
    "nextval": "SELECT nextval('victim_seq') AS n",
    "side_effect_function": "SELECT add_victim() AS n",
    "stacked_statement": "SELECT 1 AS n; DELETE FROM victims",
}


@pytest.mark.parametrize("name", sorted(WRITING_QUERIES))
def test_custom_query_that_writes_is_refused(services: Any, pg_conn: Any, name: str) -> None:
    query(
        pg_conn,
        """
        CREATE TABLE victims (id int PRIMARY KEY, v text);
        INSERT INTO victims VALUES (1, 'a'), (2, 'b');
        CREATE SEQUENCE victim_seq;
        CREATE FUNCTION add_victim() RETURNS int LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO victims VALUES (99, 'side effect'); RETURN 1; END $$;
        """,
    )
    before = query(pg_conn, "SELECT * FROM victims ORDER BY id")
    key = f"custom/{name}.parquet"
    with pytest.raises(IngestionError):
        extract_with_custom_query(WRITING_QUERIES[name], key, source_name=f"writer_{name}", services=services)

    assert query(pg_conn, "SELECT * FROM victims ORDER BY id") == before
    assert query(pg_conn, "SELECT last_value, is_called FROM victim_seq") == [(1, False)]
    [run] = runs(pg_conn, f"writer_{name}")
    assert run["status"] == "failed"
    assert run["error_message"]
    assert run["finished_at"] is not None
    assert key not in object_keys(services)


def test_custom_query_cannot_escape_the_read_only_transaction(services: Any, pg_conn: Any) -> None:
    query(
        pg_conn,
        "CREATE TABLE victims (id int PRIMARY KEY, v text); "
        "INSERT INTO victims VALUES (1, 'a'), (2, 'b'); CREATE TABLE keep_me (x int)",
    )
    sneaky = (
        "SELECT 1 AS n) AS a; COMMIT; DELETE FROM victims; DROP TABLE keep_me; "
        "SELECT * FROM (SELECT 1 AS n"
    )
    with pytest.raises(IngestionError):
        extract_with_custom_query(sneaky, "custom/sneaky.parquet", source_name="sneaky", services=services)
    assert query(pg_conn, "SELECT to_regclass('public.keep_me') IS NOT NULL") == [(True,)]
    assert query(pg_conn, "SELECT id, v FROM victims ORDER BY id") == [(1, "a"), (2, "b")]


@pytest.mark.parametrize("sql", ["SELECT lo_create(0) AS n", "SELECT lo_from_bytea(0, 'x') AS n"])
def test_custom_query_side_effects_do_not_persist(services: Any, pg_conn: Any, sql: str) -> None:
    try:
        extract_with_custom_query(sql, "custom/lo.parquet", source_name="large_objects", services=services)
    except IngestionError:
        pass  # refusing the query is as good as undoing it
    assert query(pg_conn, "SELECT count(*) FROM pg_largeobject_metadata") == [(0,)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id FROM t -- every row",
        "SELECT id FROM t; -- every row",
        "SELECT id FROM t\n-- one\n-- two\n",
        "SELECT id /* the id */ FROM t /* trailing */;",
        "SELECT id FROM t WHERE id <> 3 -- ) not the wrapper's parenthesis",
    ],
)
def test_custom_query_with_comments(services: Any, pg_conn: Any, sql: str) -> None:
    query(pg_conn, "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)")
    result = extract_with_custom_query(sql, "custom/comment.parquet", source_name="commented", services=services)
    assert result["row_count"] == 2
    assert loaded(services, "custom/comment.parquet", "id") == [(1,), (2,)]


# --------------------------------------------------------------------------- incremental: timestamp


@pytest.mark.parametrize("ts_type", ["timestamptz", "timestamp"])
def test_incremental_timestamp_runs(services: Any, pg_conn: Any, ts_type: str) -> None:
    make_orders(pg_conn, ts_type)
    zone = "+00" if ts_type == "timestamptz" else ""
    for i in range(1, 6):
        add_order(pg_conn, f"2024-01-01 10:00:0{i}.00000{i}{zone}", f"{i}.00")
    suffix = "+00:00" if ts_type == "timestamptz" else ""

    def run(n: int) -> dict[str, Any]:
        return extract_table_incremental(
            "orders", "public", "updated_at", f"inc/{n}.parquet", "2024-01-0" + str(n), services=services
        )

    def versions(n: int) -> list[tuple]:
        rows = loaded(services, f"inc/{n}.parquet", "id", "amount", "updated_at")
        return [(i, a, u.replace(tzinfo=None) if u.tzinfo else u) for i, a, u in rows]

    def source_versions(ids: list[int]) -> list[tuple]:
        return sorted(
            (i, a, u.astimezone(UTC).replace(tzinfo=None) if getattr(u, "tzinfo", None) else u)
            for i, a, u in table_versions(pg_conn)
            if i in ids
        )

    # first run: everything, watermark = max(updated_at) with microseconds
    first = run(1)
    assert first["watermark_before"] is None
    assert first["watermark_after"] == "2024-01-01T10:00:05.000005" + suffix
    assert first["row_count"] == 5
    assert (first["watermark_column"], first["watermark_type"], first["load_mode"]) == (
        "updated_at", "timestamp", "incremental"
    )
    assert versions(1) == source_versions([1, 2, 3, 4, 5])
    wm = watermark_row(pg_conn, "public.orders")
    assert (wm["watermark_column"], wm["watermark_value"], wm["watermark_type"]) == (
        "updated_at", "2024-01-01T10:00:05.000005" + suffix, "timestamp"
    )
    [r1] = runs(pg_conn, "public.orders")
    assert (r1["watermark_before"], r1["watermark_after"], r1["load_mode"]) == (
        None, first["watermark_after"], "incremental"
    )
    assert wm["last_run_id"] == r1["id"]

    # new rows and an updated row: exactly the new versions
    add_order(pg_conn, f"2024-01-01 11:00:00.000001{zone}", "6.00")
    add_order(pg_conn, f"2024-01-01 11:00:00.000002{zone}", "7.00")
    query(pg_conn, f"UPDATE orders SET amount = 999, updated_at = '2024-01-01 12:00:00.5{zone}' WHERE id = 1")
    query(pg_conn, "UPDATE orders SET amount = 555 WHERE id = 2")  # no watermark bump: not picked up
    second = run(2)
    assert second["watermark_before"] == first["watermark_after"]
    assert second["watermark_after"] == "2024-01-01T12:00:00.500000" + suffix
    assert second["row_count"] == 3
    assert versions(2) == source_versions([1, 6, 7])
    assert (1, Decimal("999.00")) in [(i, a) for i, a, _ in versions(2)]

    # nothing new: success, 0 rows, a readable Parquet file with the full schema
    third = run(3)
    assert third["status"] == "success" and third["row_count"] == 0
    assert third["watermark_before"] == third["watermark_after"] == second["watermark_after"]
    empty = read_parquet(services, "inc/3.parquet")
    assert empty.num_rows == 0
    assert empty.schema.equals(read_parquet(services, "inc/1.parquet").schema, check_metadata=True)
    assert third["file_size_bytes"] == len(object_bytes(services, "inc/3.parquet"))
    assert watermark_row(pg_conn, "public.orders")["watermark_value"] == second["watermark_after"]
    assert [(r["status"], r["row_count"]) for r in runs(pg_conn, "public.orders")] == [
        ("success", 5), ("success", 3), ("success", 0)
    ]


def test_incremental_rows_sharing_the_boundary_value(services: Any, pg_conn: Any) -> None:
    make_orders(pg_conn)
    boundary = "2024-01-01 10:00:00.123456+00"
    a = add_order(pg_conn, boundary, "1.00")
    b = add_order(pg_conn, boundary, "2.00")

    def run(n: int) -> list[int]:
        extract_table_incremental("orders", "public", "updated_at", f"tie/{n}.parquet", services=services)
        return [r[0] for r in loaded(services, f"tie/{n}.parquet", "id")]

    assert run(1) == [a, b]
    assert watermark_row(pg_conn, "public.orders")["watermark_value"] == "2024-01-01T10:00:00.123456+00:00"

    c = add_order(pg_conn, boundary, "3.00")  # same value, committed after the watermark moved
    assert run(2) == [c]

    d = add_order(pg_conn, "2024-01-01 10:00:00.123457+00", "4.00")
    e = add_order(pg_conn, boundary, "5.00")
    assert run(3) == sorted([d, e])
    assert run(4) == []

    every = [i for n in range(1, 5) for i in [r[0] for r in loaded(services, f"tie/{n}.parquet", "id")]]
    assert sorted(every) == sorted({a, b, c, d, e}) == [r[0] for r in table_versions(pg_conn)]
    assert watermark_row(pg_conn, "public.orders")["watermark_value"] == "2024-01-01T10:00:00.123457+00:00"


# --------------------------------------------------------------------------- incremental: integer


def test_incremental_integer_bigserial(services: Any, pg_conn: Any) -> None:
    query(
        pg_conn,
        "CREATE TABLE events (id bigserial PRIMARY KEY, payload text NOT NULL); "
        "INSERT INTO events (payload) SELECT 'e' || g FROM generate_series(1, 10) g",
    )

    def run(n: int) -> dict[str, Any]:
        return extract_table_incremental(
            "events", "public", "id", f"ev/{n}.parquet", watermark_type="integer", services=services
        )

    first = run(1)
    assert (first["watermark_before"], first["watermark_after"], first["row_count"]) == (None, "10", 10)
    assert loaded(services, "ev/1.parquet", "id", "payload") == sorted(query(pg_conn, "SELECT id, payload FROM events"))
    wm = watermark_row(pg_conn, "public.events")
    assert (wm["watermark_column"], wm["watermark_value"], wm["watermark_type"]) == ("id", "10", "integer")
    assert re.fullmatch(r"\d+", wm["watermark_value"])

    query(pg_conn, "INSERT INTO events (payload) VALUES ('e11'), ('e12'), ('e13')")
    second = run(2)
    assert (second["watermark_before"], second["watermark_after"]) == ("10", "13")
    assert loaded(services, "ev/2.parquet", "id", "payload") == [(11, "e11"), (12, "e12"), (13, "e13")]

    third = run(3)
    assert (third["row_count"], third["watermark_after"]) == (0, "13")
    assert read_parquet(services, "ev/3.parquet").schema.names == ["id", "payload"]
    assert watermark_row(pg_conn, "public.events")["watermark_value"] == "13"


def test_incremental_integer_late_sequence_value(services: Any, pg: Any, pg_conn: Any) -> None:
    """A transaction that took a sequence value and commits after later ids were loaded."""
    query(pg_conn, "CREATE TABLE events (id bigserial PRIMARY KEY, payload text NOT NULL)")
    query(pg_conn, "INSERT INTO events (payload) VALUES ('a'), ('b')")

    def run(n: int) -> list[int]:
        extract_table_incremental("events", "public", "id", f"ev/{n}.parquet", watermark_type="integer", services=services)
        return [r[0] for r in loaded(services, f"ev/{n}.parquet", "id")]

    assert run(1) == [1, 2]
    late = pg.connect()
    try:
        query(late, "INSERT INTO events (payload) VALUES ('late')")  # id 3, not committed
        query(pg_conn, "INSERT INTO events (payload) VALUES ('c'), ('d')")  # ids 4, 5
        assert run(2) == [4, 5]
        late.commit()
    finally:
        late.close()
    assert run(3) == [3]
    assert run(4) == []
    assert watermark_row(pg_conn, "public.events")["watermark_value"] == "5"


# --------------------------------------------------------------------------- the guide's watermark reset


@pytest.mark.parametrize("ts_type", ["timestamptz", "timestamp"])
def test_guide_watermark_reset_and_delete(services: Any, pg_conn: Any, ts_type: str) -> None:
    make_orders(pg_conn, ts_type)
    zone, suffix = ("+00", "+00:00") if ts_type == "timestamptz" else ("", "")
    for stamp in ("2023-12-30 08:00:00", "2023-12-31 23:59:59.999999",
                  "2024-01-01 00:00:00", "2024-01-01 00:00:00.000001",
                  "2024-01-15 12:00:00", "2024-02-01 09:30:00"):
        add_order(pg_conn, stamp + zone)

    def run(n: int) -> dict[str, Any]:
        return extract_table_incremental("orders", "public", "updated_at", f"reset/{n}.parquet", services=services)

    first = run(1)
    assert first["row_count"] == 6
    assert first["watermark_after"] == "2024-02-01T09:30:00.000000" + suffix
    touched_before = watermark_row(pg_conn, "public.orders")["updated_at"]

    # the guide's UPDATE, verbatim
    query(
        pg_conn,
        """
UPDATE data_platform.watermarks
SET watermark_value = '2024-01-01T00:00:00Z'
WHERE source_name = 'public.orders'
  AND watermark_column = 'updated_at';
""",
    )
    assert watermark_row(pg_conn, "public.orders")["updated_at"] > touched_before
    second = run(2)
    assert second["watermark_before"] == "2024-01-01T00:00:00Z"
    assert second["watermark_after"] == "2024-02-01T09:30:00.000000" + suffix
    expected = [dt.datetime(2024, 1, 1, 0, 0, 0, 1), dt.datetime(2024, 1, 15, 12), dt.datetime(2024, 2, 1, 9, 30)]
    if ts_type == "timestamptz":
        expected = [e.replace(tzinfo=UTC) for e in expected]
    assert [r[1] for r in loaded(services, "reset/2.parquet", "id", "updated_at")] == expected

    # the guide's DELETE, verbatim: a full re-extraction
    query(
        pg_conn,
        """
DELETE FROM data_platform.watermarks
WHERE source_name = 'public.orders';
""",
    )
    third = run(3)
    assert third["watermark_before"] is None
    assert third["row_count"] == 6
    assert loaded(services, "reset/3.parquet", "id", "amount", "updated_at") == table_versions(pg_conn)
    assert watermark_row(pg_conn, "public.orders")["watermark_value"] == "2024-02-01T09:30:00.000000" + suffix


# --------------------------------------------------------------------------- the guide's SQL


GUIDE_RECENT_SUCCESSFUL = """
-- Recent successful ingestions
SELECT source_name, execution_date, row_count, file_size_bytes
FROM data_platform.ingestion_metadata
WHERE status = 'success'
ORDER BY created_at DESC
LIMIT 20;
"""

GUIDE_FAILED = """
-- Failed ingestions requiring attention
SELECT source_name, execution_date, error_message, created_at
FROM data_platform.ingestion_metadata
WHERE status = 'failed'
ORDER BY created_at DESC;
"""

GUIDE_DAILY_SUMMARY = """
-- Daily ingestion summary
SELECT execution_date,
       COUNT(*) AS total_runs,
       SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END) AS successes,
       SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failures,
       SUM(row_count) AS total_rows
FROM data_platform.ingestion_metadata
GROUP BY execution_date
ORDER BY execution_date DESC;
"""

GUIDE_WATERMARK_STATE = """
SELECT source_name, watermark_column, watermark_value, watermark_type, updated_at
FROM data_platform.watermarks
ORDER BY updated_at DESC;
"""

GUIDE_SCHEMA_HISTORY = """
-- View schema history for a source
SELECT source_name, schema_metadata, execution_date, created_at
FROM data_platform.schema_history
WHERE source_name = 'customers_20240101.csv'
ORDER BY created_at DESC;
"""

GUIDE_SCHEMA_DRIFT = """
-- Detect schema drift (column count changes)
SELECT source_name, execution_date,
       jsonb_array_length(schema_metadata->'columns') AS column_count
FROM data_platform.schema_history
ORDER BY source_name, created_at;
"""


def test_guide_queries(services: Any, pg_conn: Any, products: None) -> None:
    make_orders(pg_conn)
    add_order(pg_conn, "2024-01-01 10:00:00+00")
    add_order(pg_conn, "2024-01-01 11:00:00+00")

    p1 = extract_table_full("products", "public", "g/p1.parquet", "2024-01-01", services=services)
    o1 = extract_table_incremental("orders", "public", "updated_at", "g/o1.parquet", "2024-01-01", services=services)
    with pytest.raises(IngestionError):
        extract_table_full("no_such_table", "public", "g/x.parquet", "2024-01-01", services=services)
    query(pg_conn, "ALTER TABLE products ADD COLUMN color text")
    add_order(pg_conn, "2024-01-02 10:00:00+00")
    p2 = extract_table_full("products", "public", "g/p2.parquet", "2024-01-02", services=services)
    o2 = extract_table_incremental("orders", "public", "updated_at", "g/o2.parquet", "2024-01-02", services=services)

    recent = query(pg_conn, GUIDE_RECENT_SUCCESSFUL)
    assert recent == [
        ("public.orders", dt.date(2024, 1, 2), 1, o2["file_size_bytes"]),
        ("public.products", dt.date(2024, 1, 2), 250, p2["file_size_bytes"]),
        ("public.orders", dt.date(2024, 1, 1), 2, o1["file_size_bytes"]),
        ("public.products", dt.date(2024, 1, 1), 250, p1["file_size_bytes"]),
    ]

    [(source, exec_date, message, created_at)] = query(pg_conn, GUIDE_FAILED)
    assert (source, exec_date) == ("public.no_such_table", dt.date(2024, 1, 1))
    assert "no_such_table" in message and "does not exist" in message
    assert isinstance(created_at, dt.datetime)

    assert query(pg_conn, GUIDE_DAILY_SUMMARY) == [
        (dt.date(2024, 1, 2), 2, 2, 0, Decimal(251)),
        (dt.date(2024, 1, 1), 3, 2, 1, Decimal(252)),
    ]

    [(source, column, value, wm_type, updated_at)] = query(pg_conn, GUIDE_WATERMARK_STATE)
    assert (source, column, value, wm_type) == (
        "public.orders", "updated_at", "2024-01-02T10:00:00.000000+00:00", "timestamp"
    )
    assert isinstance(updated_at, dt.datetime)

    assert query(pg_conn, GUIDE_SCHEMA_HISTORY) == []  # the guide's example names a CSV source
    history = query(pg_conn, GUIDE_SCHEMA_HISTORY.replace("customers_20240101.csv", "public.products"))
    assert [(s, d, len(m["columns"])) for s, m, d, _ in history] == [
        ("public.products", dt.date(2024, 1, 2), 6),
        ("public.products", dt.date(2024, 1, 1), 5),
    ]
    assert history[0][1]["columns"][-1]["name"] == "color"

    assert query(pg_conn, GUIDE_SCHEMA_DRIFT) == [
        ("public.orders", dt.date(2024, 1, 1), 5),
        ("public.orders", dt.date(2024, 1, 2), 5),
        ("public.products", dt.date(2024, 1, 1), 5),
        ("public.products", dt.date(2024, 1, 2), 6),
    ]


# --------------------------------------------------------------------------- failures


class _StoreWithoutBucketCheck(ObjectStore):
    """Skips the bucket check so that the failure happens at the upload itself."""

    def ensure_bucket(self, bucket: str) -> None:
        return None


@pytest.mark.parametrize("stage", ["bucket_check", "upload"])
def test_failed_upload_keeps_watermark_and_retry_loads_pending_rows(
    services: Any, pg_conn: Any, stage: str
) -> None:
    make_orders(pg_conn)
    add_order(pg_conn, "2024-01-01 10:00:00+00")
    add_order(pg_conn, "2024-01-01 11:00:00+00")
    extract_table_incremental("orders", "public", "updated_at", "up/1.parquet", services=services)
    pending = [add_order(pg_conn, "2024-01-02 10:00:00+00"), add_order(pg_conn, "2024-01-02 11:00:00+00")]
    before = watermark_row(pg_conn, "public.orders")

    port = closed_port()
    endpoint = f"http://127.0.0.1:{port}"
    store_type = ObjectStore if stage == "bucket_check" else _StoreWithoutBucketCheck
    broken = dataclasses.replace(
        services,
        store=store_type(
            ObjectStoreSettings(endpoint_url=endpoint, access_key="x", secret_key="y").client(), endpoint
        ),
    )
    with pytest.raises(IngestionError) as failure:
        extract_table_incremental("orders", "public", "updated_at", "up/2.parquet", services=broken)
    assert f"127.0.0.1:{port}" in str(failure.value)
    assert "Failed to ingest" in str(failure.value)  # the guide's troubleshooting message

    failed = runs(pg_conn, "public.orders")[-1]
    assert failed["status"] == "failed"
    assert f"127.0.0.1:{port}" in failed["error_message"]
    assert failed["row_count"] is None and failed["watermark_after"] is None
    assert watermark_row(pg_conn, "public.orders") == before
    assert "up/2.parquet" not in object_keys(services)

    retry = extract_table_incremental("orders", "public", "updated_at", "up/2.parquet", services=services)
    assert retry["status"] == "success"
    assert retry["watermark_before"] == before["watermark_value"]
    assert [r[0] for r in loaded(services, "up/2.parquet", "id")] == pending
    assert watermark_row(pg_conn, "public.orders")["watermark_value"] == "2024-01-02T11:00:00.000000+00:00"
    assert [r["status"] for r in runs(pg_conn, "public.orders")] == ["success", "failed", "success"]


LATE_INSERT = (
    "INSERT INTO orders (customer_id, amount, status, updated_at) VALUES (2, 42, 'late', now())"
)
# How the open transaction writes its row: directly, or inside subtransactions, whose
# xids PostgreSQL does not list in pg_current_snapshot().
LATE_WRITERS = {
    "plain": [LATE_INSERT],
    "released_savepoint": ["SAVEPOINT s1", LATE_INSERT, "RELEASE SAVEPOINT s1"],
    "open_savepoint": ["SELECT 1", "SAVEPOINT s1", LATE_INSERT],
    "plpgsql_exception_block": [
        "DO $$ BEGIN BEGIN " + LATE_INSERT + "; EXCEPTION WHEN others THEN RAISE; END; END $$"
    ],
}


@pytest.mark.parametrize("writer", sorted(LATE_WRITERS))
@pytest.mark.parametrize("baseline_run", [True, False], ids=["after_a_run", "first_run"])
def test_late_committing_transaction_is_picked_up_once(
    services: Any, pg: Any, pg_conn: Any, baseline_run: bool, writer: str
) -> None:
    make_orders(pg_conn)
    query(pg_conn, "INSERT INTO orders (customer_id, amount, status, updated_at) "
                   "SELECT 1, g, 'completed', now() - interval '1 hour' + g * interval '1 second' "
                   "FROM generate_series(1, 5) g")
    keys: list[str] = []

    def run() -> dict[str, Any]:
        key = f"late/{len(keys) + 1}.parquet"
        keys.append(key)
        return extract_table_incremental("orders", "public", "updated_at", key, services=services)

    if baseline_run:
        assert run()["row_count"] == 5

    late = pg.connect()  # not autocommit: the INSERT stays in an open transaction
    try:
        for statement in LATE_WRITERS[writer]:
            query(late, statement)
        [(late_id,)] = query(late, "SELECT id FROM orders WHERE status = 'late'")
        time.sleep(0.01)
        later = [add_order(pg_conn, (dt.datetime.now(UTC) + dt.timedelta(seconds=s)).isoformat()) for s in (1, 2)]
        during = run()
        assert during["row_count"] == (2 if baseline_run else 7)
        assert late_id not in [r[0] for r in loaded(services, keys[-1], "id")]
        late.commit()
    finally:
        late.close()

    [(late_value,)] = query(pg_conn, "SELECT updated_at FROM orders WHERE id = %s", (late_id,))
    assert late_value < ts(during["watermark_after"])  # below what was already loaded

    after = run()
    assert [r[0] for r in loaded(services, keys[-1], "id")] == [late_id]
    assert after["watermark_after"] == during["watermark_after"]
    assert run()["row_count"] == 0

    every = [row for key in keys for row in loaded(services, key, "id", "amount", "updated_at")]
    assert len(every) == len(set(every))
    assert sorted(every) == table_versions(pg_conn)
    assert later[-1] in [r[0] for r in every]


def test_crashed_run_is_marked_failed_by_the_next_run(services: Any, pg_conn: Any, products: None) -> None:
    extract_table_full("products", "public", "crash/1.parquet", services=services)
    [(crashed,)] = query(
        pg_conn,
        "INSERT INTO data_platform.ingestion_metadata (source_name, source_type, execution_date, status) "
        "VALUES ('public.products', 'postgres', '2024-01-01', 'running') RETURNING id",
    )
    [(other,)] = query(
        pg_conn,
        "INSERT INTO data_platform.ingestion_metadata (source_name, source_type, execution_date, status) "
        "VALUES ('public.other', 'postgres', '2024-01-01', 'running') RETURNING id",
    )
    result = extract_table_full("products", "public", "crash/2.parquet", services=services)
    assert result["status"] == "success"

    [(status, message, finished)] = query(
        pg_conn,
        "SELECT status, error_message, finished_at FROM data_platform.ingestion_metadata WHERE id = %s",
        (crashed,),
    )
    assert status == "failed" and message and "did not finish" in message and finished is not None
    assert query(pg_conn, "SELECT status FROM data_platform.ingestion_metadata WHERE id = %s", (other,)) == [
        ("running",)
    ]
    assert [r["status"] for r in runs(pg_conn, "public.products")] == ["success", "failed", "success"]


def test_concurrent_runs_of_one_source_are_serialised(services: Any, pg_conn: Any) -> None:
    make_orders(pg_conn)
    query(pg_conn, "INSERT INTO orders (customer_id, amount, status, updated_at) "
                   "SELECT 1 + g % 3, g, 'completed', timestamptz '2024-01-01 00:00:00+00' + g * interval '1 ms' "
                   "FROM generate_series(1, 2000) g")
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def worker(key: str) -> None:
        barrier.wait()
        try:
            results[key] = extract_table_incremental("orders", "public", "updated_at", key, services=services)
        except BaseException as e:  # noqa: BLE001 - reported below
            results[key] = e

    threads = [threading.Thread(target=worker, args=(f"conc/{n}.parquet",)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(r, dict) and r["status"] == "success" for r in results.values()), results
    assert sorted(r["row_count"] for r in results.values()) == [0, 2000]

    every = [row for key in results for row in loaded(services, key, "id", "amount", "updated_at")]
    assert len(every) == len(set(every)) == 2000
    assert sorted(every) == table_versions(pg_conn)
    [(max_ts,)] = query(pg_conn, "SELECT max(updated_at) FROM orders")
    assert ts(watermark_row(pg_conn, "public.orders")["watermark_value"]) == max_ts

    first, second = runs(pg_conn, "public.orders")
    assert first["status"] == second["status"] == "success"
    assert second["started_at"] >= first["finished_at"]  # one after the other


def test_source_lock_timeout_raises_source_busy(services: Any, pg: Any, pg_conn: Any, products: None) -> None:
    extract_table_full("products", "public", "busy/1.parquet", services=services)
    holder = pg.connect()
    holder.autocommit = True
    try:
        query(holder, "SELECT pg_advisory_lock(hashtextextended('source:public.products', 0))")
        impatient = dataclasses.replace(services, lock_wait_seconds=0.3)
        with pytest.raises(SourceBusyError):
            extract_table_full("products", "public", "busy/2.parquet", services=impatient)
    finally:
        holder.close()
    assert [r["status"] for r in runs(pg_conn, "public.products")] == ["success"]
    assert "busy/2.parquet" not in object_keys(services)
    extract_table_full("products", "public", "busy/2.parquet", services=services)
    assert read_parquet(services, "busy/2.parquet").num_rows == 250


# --------------------------------------------------------------------------- bad input


def test_bad_identifiers_are_not_executed(services: Any, pg_conn: Any) -> None:
    make_orders(pg_conn)
    add_order(pg_conn, "2024-01-01 10:00:00+00")
    query(pg_conn, "CREATE TABLE x (a int)")
    for table, schema in [
        ("orders; DROP TABLE x", "public"),
        ('orders"; DROP TABLE x; --', "public"),
        ("orders", 'public"; DROP TABLE x; --'),
        ("orders WHERE false", "public"),
    ]:
        with pytest.raises(SchemaDetectionError, match="does not exist"):
            extract_table_full(table, schema, "bad/ident.parquet", services=services)
        [failed] = runs(pg_conn, f"{schema}.{table}")
        assert failed["status"] == "failed" and failed["error_message"]
    assert query(pg_conn, "SELECT to_regclass('public.x') IS NOT NULL, to_regclass('public.orders') IS NOT NULL") == [
        (True, True)
    ]
    assert query(pg_conn, "SELECT count(*) FROM orders") == [(1,)]
    assert "bad/ident.parquet" not in object_keys(services)


@pytest.mark.parametrize(
    "key",
    ["../escape.parquet", "a/../../b.parquet", "/absolute/key.parquet", "a//b.parquet", "./a.parquet",
     "a\\b.parquet", "a/\nb.parquet", "a/b\x00.parquet", "k" * 1025],
)
def test_bad_object_keys_are_refused(services: Any, pg_conn: Any, products: None, key: str) -> None:
    extract_table_full("products", "public", "ok/products.parquet", services=services)
    with pytest.raises(IngestionError, match="object key"):
        extract_table_full("products", "public", key, services=services)
    with pytest.raises(IngestionError, match="object key"):
        extract_with_custom_query("SELECT 1 AS one", key, services=services)
    assert object_keys(services) == ["ok/products.parquet"]
    assert [r["status"] for r in runs(pg_conn, "public.products")] == ["success", "failed"]
    assert [r["status"] for r in runs(pg_conn, "custom_query")] == ["failed"]


def test_empty_object_key(services: Any, pg_conn: Any, products: None) -> None:
    """A custom query has no default key; a table extract falls back to the guide's default key."""
    with pytest.raises(IngestionError, match="object key"):
        extract_with_custom_query("SELECT 1 AS one", "", services=services)
    result = extract_table_full("products", "public", "", "2024-01-01", services=services)
    assert result["object_key"] == "postgres/products/2024-01-01/products.parquet"


@pytest.mark.parametrize(
    "column, watermark_type, message",
    [
        ("no_such_column", "timestamp", "does not exist"),
        ("status", "timestamp", "cannot carry a timestamp watermark"),
        ("updated_at", "integer", "cannot carry a integer watermark"),
        ("amount", "integer", "cannot carry a integer watermark"),
        ("id", "uuid", "watermark_type must be"),
    ],
)
def test_bad_watermark_column_raises_watermark_error(
    services: Any, pg_conn: Any, column: str, watermark_type: str, message: str
) -> None:
    make_orders(pg_conn)
    add_order(pg_conn, "2024-01-01 10:00:00+00")
    with pytest.raises(WatermarkError, match=message):
        extract_table_incremental(
            "orders", "public", column, "wm/bad.parquet", watermark_type=watermark_type, services=services
        )
    [failed] = runs(pg_conn, "public.orders")
    assert failed["status"] == "failed" and message in failed["error_message"]
    assert watermark_row(pg_conn, "public.orders") is None
    assert "wm/bad.parquet" not in object_keys(services)


def test_watermark_moved_to_another_column_raises_watermark_error(services: Any, pg_conn: Any) -> None:
    make_orders(pg_conn)
    add_order(pg_conn, "2024-01-01 10:00:00+00")
    extract_table_incremental("orders", "public", "updated_at", "wm/1.parquet", services=services)
    before = watermark_row(pg_conn, "public.orders")
    with pytest.raises(WatermarkError, match="DELETE FROM data_platform.watermarks"):
        extract_table_incremental("orders", "public", "id", "wm/2.parquet", watermark_type="integer", services=services)
    assert watermark_row(pg_conn, "public.orders") == before


def test_missing_watermarks_table_raises_watermark_error(services: Any, pg_conn: Any) -> None:
    """The guide: 'WatermarkError: Failed to query watermark' -> verify data_platform.watermarks exists."""
    make_orders(pg_conn)
    add_order(pg_conn, "2024-01-01 10:00:00+00")
    extract_table_incremental("orders", "public", "updated_at", "wm/1.parquet", services=services)
    query(pg_conn, "DROP TABLE data_platform.watermarks")
    with pytest.raises(WatermarkError, match="Failed to query watermark"):
        extract_table_incremental("orders", "public", "updated_at", "wm/2.parquet", services=services)
    failed = runs(pg_conn, "public.orders")[-1]
    assert failed["status"] == "failed" and "data_platform.watermarks" in failed["error_message"]
    assert "wm/2.parquet" not in object_keys(services)


def test_unparseable_manual_watermark_raises_watermark_error(services: Any, pg_conn: Any) -> None:
    make_orders(pg_conn)
    add_order(pg_conn, "2024-01-01 10:00:00+00")
    extract_table_incremental("orders", "public", "updated_at", "wm/1.parquet", services=services)
    query(pg_conn, "UPDATE data_platform.watermarks SET watermark_value = 'last tuesday' "
                   "WHERE source_name = 'public.orders'")
    with pytest.raises(WatermarkError, match="last tuesday"):
        extract_table_incremental("orders", "public", "updated_at", "wm/2.parquet", services=services)
    assert runs(pg_conn, "public.orders")[-1]["status"] == "failed"


# --------------------------------------------------------------------------- views


def test_incremental_extract_of_a_view(services: Any, pg_conn: Any) -> None:
    make_orders(pg_conn)
    add_order(pg_conn, "2024-01-01 10:00:00+00")
    query(pg_conn, "CREATE VIEW completed AS SELECT id, amount, updated_at FROM orders WHERE status = 'completed'")
    first = extract_table_incremental("completed", "public", "updated_at", "view/1.parquet", services=services)
    assert first["row_count"] == 1
    new_id = add_order(pg_conn, "2024-01-02 10:00:00+00")
    extract_table_incremental("completed", "public", "updated_at", "view/2.parquet", services=services)
    assert [r[0] for r in loaded(services, "view/2.parquet", "id")] == [new_id]

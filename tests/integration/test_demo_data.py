"""The demo writes only to the objects it created (schema ``demo``, marked by a COMMENT)."""

from __future__ import annotations

import pytest

from platform_assets.demo_data import (
    DEMO_TABLES,
    OWNER_MARK,
    DemoRefused,
    create_demo_sources,
)
from tests.helpers import query


def test_demo_keeps_to_its_schema_and_marks_what_it_created(pg_conn):
    query(pg_conn, "CREATE TABLE public.orders (id int PRIMARY KEY, note text); INSERT INTO public.orders VALUES (1, 'x')")
    first = create_demo_sources(pg_conn)
    second = create_demo_sources(pg_conn)  # its own objects: accepted again, today's activity added
    assert first["orders"] > 3000 and second["orders"] > first["orders"]
    assert query(pg_conn, "SELECT * FROM public.orders") == [(1, "x")]  # a table of the same name elsewhere
    marked = query(
        pg_conn,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'demo' AND c.relkind = 'r' AND obj_description(c.oid, 'pg_class') = %s ORDER BY 1",
        (OWNER_MARK,),
    )
    assert [r[0] for r in marked] == sorted(DEMO_TABLES)
    assert query(pg_conn, "SELECT obj_description('demo'::regnamespace, 'pg_namespace')") == [(OWNER_MARK,)]
    assert query(pg_conn, "SELECT count(*) FROM pg_type WHERE typname = 'order_status'") == [(1,)]


@pytest.mark.parametrize(
    ("setup", "named"),
    [
        ("CREATE SCHEMA demo; CREATE TABLE demo.orders (id int PRIMARY KEY, amount numeric)", "schema demo"),
        ("CREATE SCHEMA demo", "schema demo"),
    ],
)
def test_demo_refuses_a_schema_it_did_not_create(pg_conn, setup, named):
    query(pg_conn, setup)
    with pytest.raises(DemoRefused, match=named) as refused:
        create_demo_sources(pg_conn)
    assert "PGDATABASE" in str(refused.value)
    # nothing written: no demo table created, no comment added
    assert query(pg_conn, "SELECT to_regclass('demo.customers'), obj_description('demo'::regnamespace, 'pg_namespace')") == [(None, None)]


def test_demo_refuses_a_foreign_table_in_its_own_schema(pg_conn):
    create_demo_sources(pg_conn)
    query(pg_conn, "DROP TABLE demo.order_events; CREATE TABLE demo.order_events (id int, secret text);"
                   "INSERT INTO demo.order_events VALUES (7, 'keep me')")
    orders = query(pg_conn, "SELECT count(*) FROM demo.orders")
    with pytest.raises(DemoRefused, match=r"table demo\.order_events"):
        create_demo_sources(pg_conn)
    assert query(pg_conn, "SELECT * FROM demo.order_events") == [(7, "keep me")]
    assert query(pg_conn, "SELECT count(*) FROM demo.orders") == orders  # no activity added either

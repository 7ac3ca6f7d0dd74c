"""Demo source tables in the schema ``demo``: customers, products, orders, order_events.

The demo writes only to objects it created: the schema, its four tables and the enum
carry the comment ``OWNER_MARK``. When the schema, or a table or type of those names in
it, exists without that comment (made by someone else), ``create_demo_sources`` refuses
before writing anything (``DemoRefused``), so pointing ``PG*`` at a real database cannot
change its tables.

Seeded once (deterministically, relative to today) with a few thousand rows that
carry NULLs, decimals, time zones, JSON, arrays and an enum; every later call adds
"today's activity": new orders, updates to older ones and a few deletions, so incremental loads
have something to pick up. Existing tables are never dropped.
"""

from __future__ import annotations

from typing import Any

DEMO_SCHEMA = "demo"
DEMO_TABLES = ("customers", "products", "orders", "order_events")
DEMO_TYPE = "order_status"
OWNER_MARK = "data_platform demo data: created by `make demo`, safe to drop"

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS demo;

DO $$ BEGIN
    CREATE TYPE demo.order_status AS ENUM ('pending', 'completed', 'cancelled', 'refunded');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

CREATE TABLE IF NOT EXISTS demo.customers (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    email       text,
    country     char(2),
    signed_up   timestamptz NOT NULL,
    birth_date  date,
    preferences jsonb,
    vip         boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS demo.products (
    id       serial PRIMARY KEY,
    sku      uuid NOT NULL,
    name     text NOT NULL,
    price    numeric(10, 2) NOT NULL,
    weight_g integer,
    tags     text[],
    active   boolean NOT NULL DEFAULT true
);

CREATE TABLE IF NOT EXISTS demo.orders (
    id            bigserial PRIMARY KEY,
    customer_id   integer NOT NULL REFERENCES demo.customers (id),
    product_id    integer REFERENCES demo.products (id),
    quantity      smallint NOT NULL,
    amount        numeric(12, 2) NOT NULL,
    discount      numeric(5, 4),
    currency      char(3) NOT NULL DEFAULT 'EUR',
    status        demo.order_status NOT NULL,
    note          text,
    shipping      jsonb,
    delivery_date date,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_updated_at_idx ON demo.orders (updated_at);

CREATE TABLE IF NOT EXISTS demo.order_events (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL,
    event_type  text NOT NULL,
    payload     jsonb,
    occurred_at timestamp NOT NULL
);
"""

SEED_SQL = """
SELECT setseed(0.42);

INSERT INTO demo.customers (name, email, country, signed_up, birth_date, preferences, vip)
SELECT 'Customer ' || g,
       CASE WHEN g % 7 = 0 THEN NULL ELSE 'customer' || g || '@example.com' END,
       (ARRAY['DE', 'FR', 'NL', 'US', 'JP', NULL])[1 + g % 6],
       now() - (g || ' days')::interval - (g * 37 || ' minutes')::interval,
       CASE WHEN g % 5 = 0 THEN NULL ELSE date '1960-01-01' + (g * 97) % 15000 END,
       CASE WHEN g % 3 = 0 THEN NULL
            ELSE jsonb_build_object('newsletter', g % 2 = 0, 'language', (ARRAY['de', 'fr', 'en'])[1 + g % 3]) END,
       g % 11 = 0
FROM generate_series(1, 300) g;

INSERT INTO demo.products (sku, name, price, weight_g, tags, active)
SELECT md5('product' || g)::uuid,
       'Product ' || g,
       round((1 + random() * 499)::numeric, 2),
       CASE WHEN g % 9 = 0 THEN NULL ELSE 50 + g * 13 END,
       CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY['tag' || g % 5, 'line' || g % 3] END,
       g % 13 <> 0
FROM generate_series(1, 60) g;

INSERT INTO demo.orders (customer_id, product_id, quantity, amount, discount, currency, status,
                           note, shipping, delivery_date, created_at, updated_at)
SELECT 1 + (g * 7) % 300,
       CASE WHEN g % 50 = 0 THEN NULL ELSE 1 + g % 60 END,
       1 + g % 4,
       round((5 + random() * 995)::numeric, 2),
       CASE WHEN g % 6 = 0 THEN round(random()::numeric / 4, 4) END,
       (ARRAY['EUR', 'USD', 'JPY'])[1 + g % 3],
       (ARRAY['pending', 'completed', 'completed', 'cancelled'])[1 + g % 4]::demo.order_status,
       CASE WHEN g % 10 = 0 THEN 'gift, wrap "nicely"' || E'\\n' || 'second line' END,
       jsonb_build_object('carrier', (ARRAY['dhl', 'ups', 'post'])[1 + g % 3], 'express', g % 8 = 0),
       CASE WHEN g % 4 = 0 THEN NULL ELSE current_date - 7 + g % 10 END,
       ts, ts
FROM (SELECT g, date_trunc('day', now()) - interval '7 days'
                + (g * interval '3 minutes 21.123457 seconds') AS ts
      FROM generate_series(1, 3000) g) s;

-- Orders are updated on later days: these versions land in later partitions.
UPDATE demo.orders
SET status = 'completed', updated_at = created_at + interval '1 day 3 hours'
WHERE id % 9 = 0 AND created_at + interval '1 day 3 hours' < now();

INSERT INTO demo.order_events (order_id, event_type, payload, occurred_at)
SELECT o.id, 'created', jsonb_build_object('amount', o.amount), (o.created_at AT TIME ZONE 'UTC')
FROM demo.orders o ORDER BY o.id;
"""

TODAY_SQL = """
WITH new_orders AS (
    INSERT INTO demo.orders (customer_id, product_id, quantity, amount, status, shipping,
                               created_at, updated_at)
    SELECT 1 + (random() * 299)::int, 1 + (random() * 59)::int, 1,
           round((5 + random() * 995)::numeric, 2), 'pending',
           '{"carrier": "dhl", "express": false}', now(), now()
    FROM generate_series(1, 25)
    RETURNING id, amount
)
INSERT INTO demo.order_events (order_id, event_type, payload, occurred_at)
SELECT id, 'created', jsonb_build_object('amount', amount), now() AT TIME ZONE 'UTC' FROM new_orders;

UPDATE demo.orders SET status = 'completed', updated_at = now()
WHERE id IN (SELECT id FROM demo.orders WHERE status = 'pending' ORDER BY id LIMIT 15);

-- A few abandoned orders are deleted outright: the orders source captures deletes.
DELETE FROM demo.orders
WHERE id IN (SELECT id FROM demo.orders WHERE status = 'pending' AND created_at < now() - interval '1 hour'
             ORDER BY id LIMIT 3);
"""


class DemoRefused(RuntimeError):
    """The demo's schema holds objects the demo did not create."""


FOREIGN_OBJECTS_SQL = """
SELECT 'schema ' || n.nspname
FROM pg_namespace n
WHERE n.nspname = %(schema)s AND obj_description(n.oid, 'pg_namespace') IS DISTINCT FROM %(mark)s
UNION ALL
SELECT 'table ' || n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)
  AND obj_description(c.oid, 'pg_class') IS DISTINCT FROM %(mark)s
UNION ALL
SELECT 'type ' || n.nspname || '.' || t.typname
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = %(schema)s AND t.typname = %(type)s
  AND obj_description(t.oid, 'pg_type') IS DISTINCT FROM %(mark)s
"""


def foreign_objects(cur: Any) -> list[str]:
    """The demo's schema, tables or type that exist without the demo's mark (made by someone else)."""
    cur.execute(FOREIGN_OBJECTS_SQL, {"schema": DEMO_SCHEMA, "tables": list(DEMO_TABLES), "type": DEMO_TYPE,
                                      "mark": OWNER_MARK})
    return [row[0] for row in cur.fetchall()]


def create_demo_sources(conn: Any) -> dict[str, int]:
    """Create and seed the demo tables if needed, add today's activity; returns row counts.

    Raises DemoRefused, before writing anything, when the ``demo`` schema or an object of
    the demo's names in it was not created by the demo.
    """
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended('data_platform:demo', 0))")
        foreign = foreign_objects(cur)
        if foreign:
            cur.execute("ROLLBACK")
            database = conn.get_dsn_parameters().get("dbname")
            raise DemoRefused(
                f"database {database!r} already has {', '.join(foreign)}, not created by the demo: the demo "
                f"writes only to objects it created; point PGDATABASE at another database (or drop them)"
            )
        cur.execute(SCHEMA_SQL)
        cur.execute(f"COMMENT ON SCHEMA {DEMO_SCHEMA} IS %s", (OWNER_MARK,))
        for table in DEMO_TABLES:
            cur.execute(f"COMMENT ON TABLE {DEMO_SCHEMA}.{table} IS %s", (OWNER_MARK,))
        cur.execute(f"COMMENT ON TYPE {DEMO_SCHEMA}.{DEMO_TYPE} IS %s", (OWNER_MARK,))
        cur.execute("SELECT count(*) FROM demo.orders")
        if cur.fetchone()[0] == 0:
            cur.execute(SEED_SQL)
        cur.execute(TODAY_SQL)
        cur.execute("COMMIT")
        counts = {}
        for table in DEMO_TABLES:
            cur.execute(f"SELECT count(*) FROM {DEMO_SCHEMA}.{table}")
            counts[table] = cur.fetchone()[0]
    return counts

"""Demo source tables in ``public``: customers, products, orders, order_events.

Seeded once (deterministically, relative to today) with a few thousand rows that
carry NULLs, decimals, time zones, JSON, arrays and an enum; every later call adds
"today's activity": new orders, updates to older ones and a few deletions, so incremental loads
have something to pick up. Existing tables are never dropped.
"""

from __future__ import annotations

from typing import Any

SCHEMA_SQL = """
DO $$ BEGIN
    CREATE TYPE public.order_status AS ENUM ('pending', 'completed', 'cancelled', 'refunded');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

CREATE TABLE IF NOT EXISTS public.customers (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    email       text,
    country     char(2),
    signed_up   timestamptz NOT NULL,
    birth_date  date,
    preferences jsonb,
    vip         boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS public.products (
    id       serial PRIMARY KEY,
    sku      uuid NOT NULL,
    name     text NOT NULL,
    price    numeric(10, 2) NOT NULL,
    weight_g integer,
    tags     text[],
    active   boolean NOT NULL DEFAULT true
);

CREATE TABLE IF NOT EXISTS public.orders (
    id            bigserial PRIMARY KEY,
    customer_id   integer NOT NULL REFERENCES public.customers (id),
    product_id    integer REFERENCES public.products (id),
    quantity      smallint NOT NULL,
    amount        numeric(12, 2) NOT NULL,
    discount      numeric(5, 4),
    currency      char(3) NOT NULL DEFAULT 'EUR',
    status        public.order_status NOT NULL,
    note          text,
    shipping      jsonb,
    delivery_date date,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_updated_at_idx ON public.orders (updated_at);

CREATE TABLE IF NOT EXISTS public.order_events (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL,
    event_type  text NOT NULL,
    payload     jsonb,
    occurred_at timestamp NOT NULL
);
"""

SEED_SQL = """
SELECT setseed(0.42);

INSERT INTO public.customers (name, email, country, signed_up, birth_date, preferences, vip)
SELECT 'Customer ' || g,
       CASE WHEN g % 7 = 0 THEN NULL ELSE 'customer' || g || '@example.com' END,
       (ARRAY['DE', 'FR', 'NL', 'US', 'JP', NULL])[1 + g % 6],
       now() - (g || ' days')::interval - (g * 37 || ' minutes')::interval,
       CASE WHEN g % 5 = 0 THEN NULL ELSE date '1960-01-01' + (g * 97) % 15000 END,
       CASE WHEN g % 3 = 0 THEN NULL
            ELSE jsonb_build_object('newsletter', g % 2 = 0, 'language', (ARRAY['de', 'fr', 'en'])[1 + g % 3]) END,
       g % 11 = 0
FROM generate_series(1, 300) g;

INSERT INTO public.products (sku, name, price, weight_g, tags, active)
SELECT md5('product' || g)::uuid,
       'Product ' || g,
       round((1 + random() * 499)::numeric, 2),
       CASE WHEN g % 9 = 0 THEN NULL ELSE 50 + g * 13 END,
       CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY['tag' || g % 5, 'line' || g % 3] END,
       g % 13 <> 0
FROM generate_series(1, 60) g;

INSERT INTO public.orders (customer_id, product_id, quantity, amount, discount, currency, status,
                           note, shipping, delivery_date, created_at, updated_at)
SELECT 1 + (g * 7) % 300,
       CASE WHEN g % 50 = 0 THEN NULL ELSE 1 + g % 60 END,
       1 + g % 4,
       round((5 + random() * 995)::numeric, 2),
       CASE WHEN g % 6 = 0 THEN round(random()::numeric / 4, 4) END,
       (ARRAY['EUR', 'USD', 'JPY'])[1 + g % 3],
       (ARRAY['pending', 'completed', 'completed', 'cancelled'])[1 + g % 4]::public.order_status,
       CASE WHEN g % 10 = 0 THEN 'gift, wrap "nicely"' || E'\\n' || 'second line' END,
       jsonb_build_object('carrier', (ARRAY['dhl', 'ups', 'post'])[1 + g % 3], 'express', g % 8 = 0),
       CASE WHEN g % 4 = 0 THEN NULL ELSE current_date - 7 + g % 10 END,
       ts, ts
FROM (SELECT g, date_trunc('day', now()) - interval '7 days'
                + (g * interval '3 minutes 21.123457 seconds') AS ts
      FROM generate_series(1, 3000) g) s;

-- Orders are updated on later days: these versions land in later partitions.
UPDATE public.orders
SET status = 'completed', updated_at = created_at + interval '1 day 3 hours'
WHERE id % 9 = 0 AND created_at + interval '1 day 3 hours' < now();

INSERT INTO public.order_events (order_id, event_type, payload, occurred_at)
SELECT o.id, 'created', jsonb_build_object('amount', o.amount), (o.created_at AT TIME ZONE 'UTC')
FROM public.orders o ORDER BY o.id;
"""

TODAY_SQL = """
WITH new_orders AS (
    INSERT INTO public.orders (customer_id, product_id, quantity, amount, status, shipping,
                               created_at, updated_at)
    SELECT 1 + (random() * 299)::int, 1 + (random() * 59)::int, 1,
           round((5 + random() * 995)::numeric, 2), 'pending',
           '{"carrier": "dhl", "express": false}', now(), now()
    FROM generate_series(1, 25)
    RETURNING id, amount
)
INSERT INTO public.order_events (order_id, event_type, payload, occurred_at)
SELECT id, 'created', jsonb_build_object('amount', amount), now() AT TIME ZONE 'UTC' FROM new_orders;

UPDATE public.orders SET status = 'completed', updated_at = now()
WHERE id IN (SELECT id FROM public.orders WHERE status = 'pending' ORDER BY id LIMIT 15);

-- A few abandoned orders are deleted outright: the orders source captures deletes.
DELETE FROM public.orders
WHERE id IN (SELECT id FROM public.orders WHERE status = 'pending' AND created_at < now() - interval '1 hour'
             ORDER BY id LIMIT 3);
"""


def create_demo_sources(conn: Any) -> dict[str, int]:
    """Create and seed the demo tables if needed, add today's activity; returns row counts."""
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended('data_platform:demo', 0))")
        cur.execute(SCHEMA_SQL)
        cur.execute("SELECT count(*) FROM public.orders")
        if cur.fetchone()[0] == 0:
            cur.execute(SEED_SQL)
        cur.execute(TODAY_SQL)
        cur.execute("COMMIT")
        counts = {}
        for table in ("customers", "products", "orders", "order_events"):
            cur.execute(f"SELECT count(*) FROM public.{table}")
            counts[table] = cur.fetchone()[0]
    return counts

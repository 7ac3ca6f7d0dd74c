"""The ledger lookups asked before every partition run stay index scans as it grows."""

from __future__ import annotations

from platform_assets.ingestion.postgres.partition_load import _WRITTEN_BY_ANOTHER
from platform_assets.ingestion.tracking.migrations import bootstrap
from tests.helpers import query


def test_the_owner_of_an_object_is_found_by_index_in_a_large_ledger(pg_conn):
    bootstrap(pg_conn)
    query(pg_conn, """
        INSERT INTO data_platform.ingestion_metadata
            (source_name, source_type, execution_date, status, object_key, deletes_object_key)
        SELECT 'public.t' || (i % 50), 'postgres', DATE '2026-01-01' + (i / 50),
               'success', 'postgres/t' || (i % 50) || '/' || i || '/t.parquet',
               CASE WHEN i % 3 = 0 THEN 'postgres/t' || (i % 50) || '__deletes/' || i || '/t.parquet' END
        FROM generate_series(1, 50000) i;
        ANALYZE data_platform.ingestion_metadata""")
    keys = ["postgres/t7/7/t.parquet", "postgres/t7__deletes/7/t.parquet"]
    with pg_conn.cursor() as cur:
        cur.execute("EXPLAIN " + _WRITTEN_BY_ANOTHER, ("public.t1", keys, keys))
        plan = "\n".join(r[0] for r in cur.fetchall())

    # No scan of the whole ledger (nor a walk down its primary key, filtering every row).
    assert "Index Cond: (object_key" in plan and "Index Cond: (deletes_object_key" in plan, plan

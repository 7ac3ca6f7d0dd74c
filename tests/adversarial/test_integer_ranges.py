"""Integer-watermark partitions: "each row exactly once across partitions".

A new partition takes (stored watermark, max loaded]; ranges never overlap; the frontier
extends; other partitions replay their recorded range; a watermark reset is the only
allowed overlap and is reported as ``watermark_reset``.
"""

from __future__ import annotations

from platform_assets.ingestion.database_ingestor import extract_table_incremental
from platform_assets.registry import PostgresSource
from tests.adversarial._common import D1, D2, D3, column_union, registry
from tests.helpers import materialize_partition, query, tracking_runs

ITEMS = PostgresSource(name="items", table="items", load="incremental", watermark_column="seq",
                       watermark_type="integer", allow_empty=True)


def test_null_watermark_rows_are_loaded_by_every_partition_until_a_value_is_loaded(pg_conn, pg, store_settings):
    """Defect: D1 is loaded while the table only has a row with a NULL watermark (or is
    empty). D1 loads no value, so the stored watermark stays NULL and D1's recorded range is
    "empty, NULLs included". The next new partition D2 again reads "from the start, NULLs
    included" (``partition_planning``: ``include_nulls=lower is None``): row 1 is in D1 and
    in D2. (Variant: D1 loaded on an empty table, D2 loads the NULL row, replaying D1 loads
    it a second time.) No watermark reset was involved, nothing is reported.
    """
    query(pg_conn, "CREATE TABLE items (id int PRIMARY KEY, seq bigint); INSERT INTO items VALUES (1, NULL)")
    reg = registry(ITEMS)
    assert materialize_partition(reg, pg, store_settings, "items", D1).success
    query(pg_conn, "INSERT INTO items VALUES (2, 1), (3, 2)")
    assert materialize_partition(reg, pg, store_settings, "items", D2).success
    assert materialize_partition(reg, pg, store_settings, "items", D1).success
    assert column_union(store_settings, "items", [D1, D2], "id") == [1, 2, 3]


DAYNO = PostgresSource(name="readings", table="readings", load="incremental", watermark_column="day_no",
                       watermark_type="integer", allow_empty=True)
READINGS = ("CREATE TABLE readings (id serial PRIMARY KEY, v text,"
            " day_no int NOT NULL DEFAULT (current_date - date '2000-01-01'));"
            "INSERT INTO readings (v, day_no) VALUES ('old', 1);"
            "INSERT INTO readings (v) VALUES ('a')")


def test_row_sharing_the_boundary_value_committed_after_the_load_is_lost(pg_conn, pg, store_settings):
    """Defect: an integer watermark that is not unique (a day number, an epoch second, a
    batch id) stamped at the writer's transaction start, so never earlier than it. D1 loads
    (None, N]; a transaction started after that load writes another row with value N.
    Every later partition reads ``> N`` and no late check applies (nothing was open): the
    row is never loaded. The guide's ``extract_table_incremental`` does load it (its
    catch-up re-reads the boundary value; see the control at the end), and the Guarantees
    table promises "rows sharing the boundary value are read once".
    """
    query(pg_conn, READINGS)
    reg = registry(DAYNO)
    assert materialize_partition(reg, pg, store_settings, "readings", D1).success
    query(pg_conn, "INSERT INTO readings (v) VALUES ('b')")  # today's day number, like 'a'
    assert materialize_partition(reg, pg, store_settings, "readings", D2).success
    assert materialize_partition(reg, pg, store_settings, "readings", D3).success
    assert column_union(store_settings, "readings", [D1, D2, D3], "v") == ["a", "b", "old"]


def test_control_guide_incremental_reads_the_boundary_row(pg_conn, services):
    """Control for the test above (passes): the guide's function loads the same row."""
    query(pg_conn, READINGS)
    extract_table_incremental("readings", "public", "day_no", "g/1.parquet", watermark_type="integer",
                              services=services)
    query(pg_conn, "INSERT INTO readings (v) VALUES ('b')")
    second = extract_table_incremental("readings", "public", "day_no", "g/2.parquet", watermark_type="integer",
                                       services=services)
    assert second["row_count"] == 1


def test_changing_the_watermark_column_silently_reuses_the_other_columns_watermark(pg_conn, pg, store_settings):
    """Defect: the registry's watermark_column changes from ``id`` to ``seq`` (both integer).
    The next new partition reads ``seq > 10``, 10 being the watermark stored for ``id``
    (``partition_planning`` takes ``state.watermark.value`` without checking its column;
    ``pg_extract._read_range`` for mode ``range`` does not either). Here every row is loaded
    a second time, with no ``watermark_reset`` reported (with smaller seq values rows would
    be skipped instead). The guide's incremental refuses this case with a WatermarkError
    naming the fix.
    """
    query(pg_conn, "CREATE TABLE events (id bigserial PRIMARY KEY, seq bigint NOT NULL);"
                   "INSERT INTO events (seq) SELECT 1000 + g FROM generate_series(1, 10) g")
    by_id = PostgresSource(name="events", table="events", load="incremental", watermark_column="id",
                           watermark_type="integer", allow_empty=True)
    by_seq = by_id.model_copy(update={"watermark_column": "seq"})
    assert materialize_partition(registry(by_id), pg, store_settings, "events", D1).success
    query(pg_conn, "INSERT INTO events (seq) SELECT 1010 + g FROM generate_series(1, 5) g")
    result = materialize_partition(registry(by_seq), pg, store_settings, "events", D2, raise_on_error=False)
    if result.success:
        assert column_union(store_settings, "events", [D1, D2], "id") == list(range(1, 16)), (
            "rows loaded twice, reported as: "
            f"{[r['watermark_reset'] for r in tracking_runs(pg_conn, 'public.events')]}"
        )

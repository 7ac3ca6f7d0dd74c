"""Replays (re-materializing a day) merge into the partition's object.

Promise (README, "What a partition holds"): a replay never removes a version bronze
held; where the source still has the same version its current values win; a version
is the row's key (its primary key; the registry's ``key_columns`` for a view or a
table without one; all columns when neither exists) with its watermark value; every
version is in the partition its watermark falls in, exactly once.
"""

from __future__ import annotations

from platform_assets.registry import PostgresSource
from tests.adversarial._common import D2, D3, column_union, registry, rows
from tests.adversarial._common2 import ORDERS
from tests.helpers import materialize_partition, object_rows, query


def test_replay_after_drop_column_wipes_the_values_the_object_held(pg_conn, pg, store_settings):
    """A column is dropped from the source (``evolve`` accepts it, flagged). Re-materializing
    a day that held it keeps the column in the merged object (``merged_schema`` appends the
    previous object's columns the source lost, "so no value it held is lost", says
    ``object_merge``) but every row the source still has is written from the source, and
    the kept column is NULL in those rows: the values bronze held are gone for good.
    Observed: note = [None, None]; expected the held 'n1', 'n2'.
    Suspect: ``pg_extract._write``/``object_merge.kept_rows`` (a matched version drops the
    old row entirely instead of carrying the columns the source no longer has).
    """
    query(pg_conn, "CREATE TABLE orders (id int PRIMARY KEY, note text, updated_at timestamptz);"
                   "INSERT INTO orders VALUES (1, 'n1', '2024-03-02 08:00Z'), (2, 'n2', '2024-03-02 09:00Z')")
    reg = registry(ORDERS)
    assert materialize_partition(reg, pg, store_settings, "orders", D2).success
    assert sorted(rows(store_settings, "orders", D2, "id", "note")) == [(1, "n1"), (2, "n2")]
    query(pg_conn, "ALTER TABLE orders DROP COLUMN note")
    assert materialize_partition(reg, pg, store_settings, "orders", D2).success
    assert sorted(rows(store_settings, "orders", D2, "id", "note")) == [(1, "n1"), (2, "n2")]


def test_replay_after_the_watermark_column_is_renamed_drops_older_versions(pg_conn, pg, store_settings):
    """D2 holds two versions of row 1 (08:00 and 09:00, both on D2). The watermark column is
    renamed ``updated_at`` -> ``modified_at`` and the registry follows. Replaying D2 must
    keep both versions (same values, same day). ``object_merge.version_columns`` leaves the
    watermark out of the version when the old object lacks a column of its new name, so
    the version becomes the key alone: the source's (1, 09:00) matches *both* old rows and
    the 08:00 version is dropped. Observed [(1, 2)]; expected [(1, 1), (1, 2)].
    """
    query(pg_conn, "CREATE TABLE orders (id int PRIMARY KEY, amount int, updated_at timestamptz);"
                   "INSERT INTO orders VALUES (1, 1, '2024-03-02 08:00Z')")
    assert materialize_partition(registry(ORDERS), pg, store_settings, "orders", D2).success
    query(pg_conn, "UPDATE orders SET amount = 2, updated_at = '2024-03-02 09:00Z'")
    assert materialize_partition(registry(ORDERS), pg, store_settings, "orders", D2).success
    assert sorted(rows(store_settings, "orders", D2, "id", "amount")) == [(1, 1), (1, 2)]

    query(pg_conn, "ALTER TABLE orders RENAME COLUMN updated_at TO modified_at")
    renamed = ORDERS.model_copy(update={"watermark_column": "modified_at"})
    # The versions cannot be told apart any more: the replay is refused, naming the fix,
    # and bronze keeps both versions.
    result = materialize_partition(registry(renamed), pg, store_settings, "orders", D2, raise_on_error=False)
    assert not result.success
    [(message,)] = query(pg_conn, "SELECT error_message FROM data_platform.ingestion_metadata WHERE status = 'failed'")
    assert "modified_at" in message and "rebuild" in message
    assert sorted(rows(store_settings, "orders", D2, "id", "amount")) == [(1, 1), (1, 2)]


def test_key_columns_on_a_table_with_a_primary_key_replace_it_and_replays_drop_versions(
    pg_conn, pg, store_settings
):
    """README: a version's key is the primary key; ``key_columns`` is for a view or a table
    without one. ``pg_extract._key_columns`` takes the registry's ``key_columns`` first even
    when the table has a primary key. Here ``key_columns: [customer]`` (a business
    attribute, not unique) on a table with PRIMARY KEY (id): orders 1 and 2 of customer
    'c' share the version (c, 08:00). Order 2 moves to D3; replaying D2 matches both held
    rows with the source's order 1 and drops order 2's D2 version. Observed ids [1];
    expected [1, 2].
    """
    query(pg_conn, "CREATE TABLE orders (id int PRIMARY KEY, customer text, updated_at timestamptz);"
                   "INSERT INTO orders VALUES (1, 'c', '2024-03-02 08:00Z'), (2, 'c', '2024-03-02 08:00Z')")
    source = ORDERS.model_copy(update={"key_columns": ["customer"]})
    reg = registry(source)
    # key_columns that contradict the primary key are refused, naming both
    result = materialize_partition(reg, pg, store_settings, "orders", D2, raise_on_error=False)
    assert not result.success
    [(message,)] = query(pg_conn, "SELECT error_message FROM data_platform.ingestion_metadata WHERE status = 'failed'")
    assert "key_columns ['customer']" in message and "primary key is ['id']" in message
    by_key = registry(ORDERS)
    assert materialize_partition(by_key, pg, store_settings, "orders", D2).success
    query(pg_conn, "UPDATE orders SET updated_at = '2024-03-03 08:00Z' WHERE id = 2")
    assert materialize_partition(by_key, pg, store_settings, "orders", D2).success
    assert sorted(r[0] for r in rows(store_settings, "orders", D2, "id")) == [1, 2]


def test_switching_a_full_source_to_incremental_merges_the_old_snapshot_into_the_day(
    pg_conn, pg, store_settings
):
    """A source is first loaded ``load: full`` (D2 = a snapshot of the whole table), then the
    registry switches it to ``load: incremental`` on ``updated_at`` (a table that grew too
    big for snapshots). Re-materializing D2 is planned as a merge because D2 has a previous
    load (``partition_planning.plan_partition``: ``merge = previous is not None``, whatever
    that load's mode) and keeps every row of the old snapshot: D2 then holds rows of D3 and
    D4, and D3 holds row 2 again. Observed union of D2+D3 ids [1, 2, 2, 3]; expected [1, 2]
    (each version once, in the partition its watermark falls in).
    """
    query(pg_conn, "CREATE TABLE orders (id int PRIMARY KEY, amount int, updated_at timestamptz);"
                   "INSERT INTO orders VALUES (1, 1, '2024-03-02 08:00Z'), (2, 2, '2024-03-03 09:00Z'),"
                   " (3, 3, '2024-03-04 09:00Z')")
    full = PostgresSource(name="orders", table="orders", allow_empty=True)
    assert materialize_partition(registry(full), pg, store_settings, "orders", D2).success
    reg = registry(ORDERS)
    assert materialize_partition(reg, pg, store_settings, "orders", D2).success
    assert materialize_partition(reg, pg, store_settings, "orders", D3).success
    assert column_union(store_settings, "orders", [D2, D3], "id") == [1, 2]


def test_changing_the_object_key_pattern_makes_the_next_replay_forget_what_the_partition_held(
    pg_conn, pg, store_settings
):
    """The registry's ``object_key`` pattern changes (e.g. a new prefix). The tracking row of
    D2 records where its object is, but ``engine._previous_object`` downloads the *new*
    key, finds nothing, logs a warning and loads D2 "from the source only": the version
    (1, D2) that bronze held for D2 is not in D2's new object (the asset's latest
    materialization), and nothing but a log line says so. Observed []; expected [(1,)].
    """
    query(pg_conn, "CREATE TABLE orders (id int PRIMARY KEY, amount int, updated_at timestamptz);"
                   "INSERT INTO orders VALUES (1, 1, '2024-03-02 08:00Z')")
    assert materialize_partition(registry(ORDERS), pg, store_settings, "orders", D2).success
    moved = ORDERS.model_copy(update={"object_key": "bronze_v2/{name}/{date}/{name}.parquet"})
    query(pg_conn, "UPDATE orders SET updated_at = '2024-03-04 08:00Z' WHERE id = 1")
    assert materialize_partition(registry(moved), pg, store_settings, "orders", D2).success
    assert object_rows(store_settings, f"bronze_v2/orders/{D2}/orders.parquet", "id") == [(1,)]

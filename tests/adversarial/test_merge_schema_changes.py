"""Re-materializing (merging) a partition after an ordinary schema change of the source.

Promise: materializing a day again MERGES the source's current rows into the object:
versions bronze held are never dropped, the source wins for the same version
(version = primary key, or all columns without one, plus the watermark). A late-row
reload is such a merge too.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from platform_assets.registry import PostgresSource
from tests.adversarial._common import D2, D3, D4, registry, rows
from tests.helpers import materialize_partition, query

ORDERS = PostgresSource(name="orders", table="orders", load="incremental", watermark_column="updated_at",
                        watermark_type="timestamp", allow_empty=True)
LOGS = PostgresSource(name="logs", table="logs", load="incremental", watermark_column="at",
                      watermark_type="timestamp", allow_empty=True)


def test_merge_fails_after_a_not_null_column_is_added_and_late_rows_are_never_reloaded(pg_conn, pg, store_settings):
    """Defect: after ``ALTER TABLE ... ADD COLUMN c ... NOT NULL DEFAULT ...`` every merge of an
    already-loaded partition fails ("Column 'c' is declared non-nullable but contains nulls").

    The merged schema keeps the source's non-nullable field and the rows kept from the old
    object get NULL in it (``object_merge.merged_schema`` / ``conform``). So re-materializing
    the day fails, and the automatic late-row reload of that day fails on every later run:
    the late row is never loaded (only a rebuild, which drops the held versions, gets out).
    """
    query(pg_conn, "CREATE TABLE orders (id int PRIMARY KEY, amount numeric(12,2), updated_at timestamptz);"
                   "INSERT INTO orders VALUES (1, 1.0, '2024-03-03 08:00Z'), (2, 2.0, '2024-03-03 09:00Z')")
    reg = registry(ORDERS)
    late = pg.connect()
    try:
        query(late, "INSERT INTO orders VALUES (3, 3.0, '2024-03-03 10:00Z')")  # open during D3's load
        assert materialize_partition(reg, pg, store_settings, "orders", D3).success
        query(late, "UPDATE orders SET updated_at = '2024-03-04 07:00Z' WHERE id = 1")  # row 1 moves on
        late.commit()
    finally:
        late.close()
    query(pg_conn, "ALTER TABLE orders ADD COLUMN channel text NOT NULL DEFAULT 'web'")

    result = materialize_partition(reg, pg, store_settings, "orders", D4)  # late check: reloads D3
    assert result.success
    [d4] = [m for m in result.get_asset_materialization_events() if m.partition == D4]
    failures = d4.materialization.metadata.get("late_reload_failures")
    assert failures is None, f"the late-row reload of {D3} failed: {failures.value}"
    assert sorted(r[0] for r in rows(store_settings, "orders", D3, "id")) == [1, 2, 3]
    # Re-materializing the day by hand fails the same way.
    assert materialize_partition(reg, pg, store_settings, "orders", D3, raise_on_error=False).success


def test_table_without_key_doubles_every_row_after_a_column_with_default_is_added(pg_conn, pg, store_settings):
    """Defect: for a table without primary key (version = all columns) the merge matches the
    old object's rows on the source's *current* columns; a column the old object lacks is
    compared as NULL against the source's value (``object_merge.kept_rows``/``_encoded``).

    ``ALTER TABLE logs ADD COLUMN level int DEFAULT 0`` touches no row (no new version), yet
    re-materializing the day then holds every row twice: once from the source (level 0) and
    once kept from the old object (level NULL). Same with a renamed column.
    """
    query(pg_conn, "CREATE TABLE logs (msg text, at timestamptz);"
                   "INSERT INTO logs VALUES ('a', '2024-03-02 10:00Z'), ('b', '2024-03-02 11:00Z')")
    reg = registry(LOGS)
    assert materialize_partition(reg, pg, store_settings, "logs", D2).success
    query(pg_conn, "ALTER TABLE logs ADD COLUMN level int DEFAULT 0")
    assert materialize_partition(reg, pg, store_settings, "logs", D2).success
    held = rows(store_settings, "logs", D2, "msg", "at", "level")
    counts = Counter((msg, at) for msg, at, _ in held)
    assert all(n == 1 for n in counts.values()), f"rows held more than once: {held}"


def test_retyping_the_watermark_to_naive_timestamp_is_refused_until_a_rebuild(pg_conn, pg, store_settings):
    """Found by an attack test: registry timezone America/New_York; ``updated_at timestamptz``
    is retyped to ``timestamp`` (``USING updated_at AT TIME ZONE 'America/New_York'``). The
    merge cast the old object's UTC instants to naive timestamps in UTC, so no old version
    matched its new form: every row twice, the kept copies 5 hours off.

    A change of type that changes what a value means cannot be merged: the replay fails
    naming the column and the rebuild, bronze is left as it was, and a rebuild works.
    """
    query(pg_conn, "CREATE TABLE orders (id int PRIMARY KEY, updated_at timestamptz);"
                   "INSERT INTO orders VALUES (1, '2024-03-02 10:00-05'), (2, '2024-03-02 12:00-05')")
    reg = registry(ORDERS, timezone="America/New_York")
    assert materialize_partition(reg, pg, store_settings, "orders", D2).success
    before = sorted(rows(store_settings, "orders", D2, "id", "updated_at"))
    query(pg_conn, "ALTER TABLE orders ALTER COLUMN updated_at TYPE timestamp "
                   "USING updated_at AT TIME ZONE 'America/New_York'")
    result = materialize_partition(reg, pg, store_settings, "orders", D2, raise_on_error=False)
    assert not result.success
    [(message,)] = query(pg_conn, "SELECT error_message FROM data_platform.ingestion_metadata "
                                  "WHERE status = 'failed'")
    assert "'updated_at'" in message and "rebuild" in message
    assert sorted(rows(store_settings, "orders", D2, "id", "updated_at")) == before
    assert materialize_partition(reg, pg, store_settings, "orders", D2, run_config={"rebuild": True}).success
    held = sorted(rows(store_settings, "orders", D2, "id", "updated_at"))
    assert held == [(1, dt.datetime(2024, 3, 2, 10, 0)), (2, dt.datetime(2024, 3, 2, 12, 0))]

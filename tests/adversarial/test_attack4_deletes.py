"""Found by an attack test: deletes capture (README, "Deletes (`capture_deletes: true`)").

Promise: "Each deletion is in exactly one partition's tombstone"; the key sets are compared
"in byte order, COLLATE "C""; README (Types): "Text is read with client encoding UTF8, so
PostgreSQL converts it from the database's encoding (LATIN1, WIN1252, ...)", i.e. such
databases are supported sources.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from platform_assets.registry import PostgresSource
from platform_resources.config import PostgresSettings
from tests.adversarial._common import D1, D2, registry
from tests.conftest import database_with_encoding
from tests.helpers import bronze_objects, materialize_partition, query, tracking_runs


@pytest.fixture
def win1252() -> Iterator[PostgresSettings]:
    """A database of its own in WIN1252 (source and platform), dropped afterwards."""
    yield from database_with_encoding("WIN1252")


def _connect(settings: PostgresSettings) -> Any:
    conn = settings.connect()
    conn.autocommit = True
    conn.set_client_encoding("UTF8")
    return conn


def _tombstone_keys(store_settings: Any, name: str, partition: str, column: str) -> list[Any]:
    objects = bronze_objects(store_settings, f"postgres/{name}__deletes/{partition}/")
    return sorted(r[column] for table in objects.values() for r in table.to_pylist())


def test_text_keys_of_a_win1252_database_a_key_still_present_is_reported_deleted(win1252, store_settings):
    """WIN1252 stores '€' as byte 0x80 and 'é' as 0xE9: COLLATE "C" (byte order) sorts '€'
    before 'é', while the merge of the two key sets (``key_sets.missing_keys``) assumes
    code point order (U+00E9 'é' < U+20AC '€'). Its binary searches then cut the sorted
    streams at the wrong place: deleting only 'é' also reports '€', a row that is still in
    the table, as deleted."""
    conn = _connect(win1252)
    query(conn, "CREATE TABLE words (code text PRIMARY KEY, n int)")
    query(conn, "INSERT INTO words VALUES ('a', 1), ('z', 2), ('€', 3), ('é', 4)")
    reg = registry(PostgresSource(name="words", table="words", capture_deletes=True))
    assert materialize_partition(reg, win1252, store_settings, "words", D1).success
    query(conn, "DELETE FROM words WHERE code = 'é'")
    assert materialize_partition(reg, win1252, store_settings, "words", D2).success
    remaining = sorted(r[0] for r in query(conn, "SELECT code FROM words"))
    conn.close()
    assert remaining == ["a", "z", "€"]
    assert _tombstone_keys(store_settings, "words", D2, "code") == ["é"]


@pytest.mark.xfail(strict=True, reason="not promised (README, Deletes): a row with a NULL key part is in no key set, "
                                       "so its deletion is not observed; key columns should be NOT NULL")
def test_a_deleted_row_whose_composite_key_has_a_null_part_is_in_no_tombstone(pg_conn, pg, store_settings):
    """``key_columns: [id, region]`` on a table whose ``region`` may be NULL (the pair is still
    unique: ids are). ``query_builder.key_query`` reads the key set with ``WHERE ... IS NOT
    NULL``: a row with a NULL key part is never in a key set, so deleting it is never
    observed, in no partition's tombstone (README: each deletion is in exactly one; nothing
    says key columns must be NOT NULL, and no run refuses them)."""
    query(pg_conn, "CREATE TABLE sites (id int NOT NULL UNIQUE, region text, note text, UNIQUE (id, region));"
                   "INSERT INTO sites VALUES (1, 'eu', 'a'), (2, NULL, 'b'), (3, 'us', 'c')")
    source = PostgresSource(name="sites", table="sites", key_columns=["id", "region"], capture_deletes=True)
    reg = registry(source)
    assert materialize_partition(reg, pg, store_settings, "sites", D1).success
    query(pg_conn, "DELETE FROM sites WHERE id IN (2, 3)")
    assert materialize_partition(reg, pg, store_settings, "sites", D2).success
    assert _tombstone_keys(store_settings, "sites", D2, "id") == [2, 3]


def test_a_key_column_changed_from_integer_to_text_makes_the_frontier_run_loop_forever(
        pg_conn, pg, store_settings, monkeypatch):
    """``ALTER TABLE codes ALTER COLUMN code TYPE text`` between two frontier runs. The previous
    key set (integers, in integer order 1, 2, ..., 12) is cast to text ("1", "2", ..., "12")
    without complaint (``delete_capture._cast``, whose refusal says "the key's columns or
    types changed: deletes cannot be compared across that change"), and merged with the new
    set, sorted in byte order ("1", "10", "11", "12", "2", ...). ``key_sets.missing_keys``
    assumes both are sorted: with "2".."12" pending and "2".."9" buffered, both cuts are 0
    and the loop never advances. The run neither succeeds nor fails; it spins forever
    holding the source's lock, so every later run of the source waits on it.

    (Made deterministic by counting ``_count_up_to`` calls: a merge of 12 keys needs a few;
    the wrapper stops the run after 10,000.)"""
    from platform_assets.ingestion.postgres import key_sets

    query(pg_conn, "CREATE TABLE codes (code int PRIMARY KEY, n int);"
                   "INSERT INTO codes SELECT i, i FROM generate_series(1, 12) i")
    reg = registry(PostgresSource(name="codes", table="codes", capture_deletes=True))
    assert materialize_partition(reg, pg, store_settings, "codes", D1).success
    query(pg_conn, "ALTER TABLE codes ALTER COLUMN code TYPE text")

    calls = {"n": 0}
    real = key_sets._count_up_to

    def counted(table, bound):
        calls["n"] += 1
        if calls["n"] > 10_000:
            raise RuntimeError("key_sets.missing_keys is making no progress")
        return real(table, bound)

    monkeypatch.setattr(key_sets, "_count_up_to", counted)
    result = materialize_partition(reg, pg, store_settings, "codes", D2, raise_on_error=False)
    assert calls["n"] <= 10_000, "the frontier run after the key's type change never ends"
    if result.success:  # nothing was deleted: an empty tombstone is the only right answer
        assert _tombstone_keys(store_settings, "codes", D2, "code") == []


def test_capture_turned_off_and_on_again_drops_the_frontiers_earlier_deletion(pg_conn, pg, store_settings):
    """D1, delete id 2, D2: D2's tombstone holds 2. The registry turns ``capture_deletes`` off
    and D2 is materialized again (its tracking row records no tombstone), then it is turned
    on again, id 3 is deleted and D2 (still the frontier) is materialized again. The run
    takes the partition's earlier tombstone rows from its latest successful run, the
    capture-off one, which recorded none, and overwrites the object: it now holds 3 only.
    The deletion of id 2 is in no partition's tombstone (README: "the frontier loaded again
    keeps its earlier deletions and adds the new ones"; each deletion in exactly one)."""
    query(pg_conn, "CREATE TABLE items (id int PRIMARY KEY, n int);"
                   "INSERT INTO items SELECT i, i FROM generate_series(1, 6) i")
    on = registry(PostgresSource(name="items", table="items", capture_deletes=True))
    off = registry(PostgresSource(name="items", table="items", capture_deletes=False))
    assert materialize_partition(on, pg, store_settings, "items", D1).success
    query(pg_conn, "DELETE FROM items WHERE id = 2")
    assert materialize_partition(on, pg, store_settings, "items", D2).success
    assert _tombstone_keys(store_settings, "items", D2, "id") == [2]
    assert materialize_partition(off, pg, store_settings, "items", D2).success
    query(pg_conn, "DELETE FROM items WHERE id = 3")
    assert materialize_partition(on, pg, store_settings, "items", D2).success
    every = sorted(r["id"] for table in bronze_objects(store_settings, "postgres/items__deletes/").values()
                   for r in table.to_pylist())
    assert every == [2, 3]


def test_key_columns_listed_in_another_order_report_a_present_row_as_deleted(pg_conn, pg, store_settings):
    """A table without a primary key, ``key_columns: [a, b]``, later written ``[b, a]`` (same
    columns). ``delete_capture._cast`` reorders the previous key set's columns
    (``batch.select``) but its rows stay sorted by (a, b), while the new set is sorted by
    (b, a); the merge assumes both are sorted the same way. One row (b = 7) is deleted; the
    run also reports (b = 20, a = 0), still in the table, as deleted. (Same for a key
    column whose type changes from integer to text, see the test above: the refusal
    "the key's columns or types changed" is never reached.)"""
    query(pg_conn, "CREATE TABLE pairs (a int NOT NULL, b int NOT NULL, n int, UNIQUE (a, b));"
                   "INSERT INTO pairs SELECT i % 4, i, i FROM generate_series(1, 20) i")
    first = registry(PostgresSource(name="pairs", table="pairs", capture_deletes=True, key_columns=["a", "b"]))
    swapped = registry(PostgresSource(name="pairs", table="pairs", capture_deletes=True, key_columns=["b", "a"]))
    assert materialize_partition(first, pg, store_settings, "pairs", D1).success
    query(pg_conn, "DELETE FROM pairs WHERE b = 7")
    result = materialize_partition(swapped, pg, store_settings, "pairs", D2, raise_on_error=False)
    if result.success:  # refusing the changed key would be fine; a wrong tombstone is not
        assert _tombstone_keys(store_settings, "pairs", D2, "b") == [7]


def test_a_renamed_table_wipes_the_frontiers_tombstone(pg_conn, pg, store_settings):
    """Source ``items`` (table ``items``): D1, delete id 2, D2: D2's tombstone holds 2. The
    table is renamed ``items_v2`` and the registry entry follows it (same ``name``, so the
    same objects and tombstones). The tracking rows are keyed by ``public.items_v2`` now, so
    the next run of D2 sees no earlier load of the partition: it starts the partition's
    tombstone empty and overwrites ``postgres/items__deletes/<D2>/items.parquet``. The
    deletion of id 2 is in no tombstone any more."""
    query(pg_conn, "CREATE TABLE items (id int PRIMARY KEY, n int);"
                   "INSERT INTO items SELECT i, i FROM generate_series(1, 6) i")
    before = registry(PostgresSource(name="items", table="items", capture_deletes=True))
    assert materialize_partition(before, pg, store_settings, "items", D1).success
    query(pg_conn, "DELETE FROM items WHERE id = 2")
    assert materialize_partition(before, pg, store_settings, "items", D2).success
    assert _tombstone_keys(store_settings, "items", D2, "id") == [2]
    query(pg_conn, "ALTER TABLE items RENAME TO items_v2")
    after = registry(PostgresSource(name="items", table="items_v2", capture_deletes=True))
    result = materialize_partition(after, pg, store_settings, "items", D2, raise_on_error=False)
    every = sorted(r["id"] for table in bronze_objects(store_settings, "postgres/items__deletes/").values()
                   for r in table.to_pylist())
    assert every == [2], f"run {'succeeded' if result.success else 'failed'}; tombstones now hold {every}"
    assert not result.success
    failed = [r for r in tracking_runs(pg_conn, "public.items_v2") if r["status"] == "failed"]
    assert failed and "renamed" in failed[-1]["error_message"], [(r["source_name"], r["status"]) for r in tracking_runs(pg_conn)]

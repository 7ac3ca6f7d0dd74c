"""Hard deletes captured by comparing key sets (README, "Deletes").

Promises: a deletion appears in exactly one partition's tombstone, whatever order
partitions are materialized or replayed in; a key deleted and re-inserted between two
runs is not a deletion; the first run reports none; a run that fails leaves the
previous key set current, so the next run observes the same deletions; replays of an
older partition re-emit its tombstone and observe nothing new.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from typing import Any

import pyarrow as pa
import pydantic
import pytest

from platform_assets.ingestion.tracking import run_records
from platform_assets.registry import PostgresSource
from tests.adversarial._common import D1, D2, D3, D4, registry
from tests.helpers import bronze_objects, materialize_partition, query, tracking_runs

ITEMS = PostgresSource(name="items", table="items", capture_deletes=True, allow_empty=True)


def _table(pg_conn: Any, n: int = 6) -> None:
    query(pg_conn, "CREATE TABLE items (id bigint PRIMARY KEY, name text, updated_at timestamptz DEFAULT now());"
                   f"INSERT INTO items (id, name) SELECT i, 'n' || i FROM generate_series(1, {n}) i")


def _tombstones(store_settings: Any, name: str = "items") -> dict[str, list[tuple]]:
    """Each partition's tombstone rows (key, _deleted_at), by partition."""
    out = {}
    for key, table in bronze_objects(store_settings, f"postgres/{name}__deletes/").items():
        out[key.split("/")[2]] = [tuple(r.values()) for r in table.to_pylist()]
    return out


def _deleted_ids(store_settings: Any) -> Counter:
    return Counter(row[0] for rows in _tombstones(store_settings).values() for row in rows)


def _load(reg: Any, pg: Any, store_settings: Any, partition: str, name: str = "items", **kwargs: Any) -> Any:
    result = materialize_partition(reg, pg, store_settings, name, partition, **kwargs)
    if result.success:
        [materialization] = result.asset_materializations_for_node(f"bronze__postgres__{name}")
        return materialization.metadata
    return None


def test_deletes_land_in_the_frontier_partition_once(pg_conn, pg, store_settings):
    _table(pg_conn)
    reg = registry(ITEMS)
    first = _load(reg, pg, store_settings, D1)
    assert first["deleted_rows"].value == 0  # the first run reports none
    query(pg_conn, "DELETE FROM items WHERE id IN (2, 5)")
    second = _load(reg, pg, store_settings, D2)
    assert second["deleted_rows"].value == 2
    assert second["deletes_uri"].value.endswith("postgres/items__deletes/2024-03-02/items.parquet")
    [(key, table)] = [(k, t) for k, t in bronze_objects(store_settings, "postgres/items__deletes/2024-03-02/").items()]
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("_deleted_at").type == pa.timestamp("us", tz="UTC")
    assert sorted(table.column("id").to_pylist()) == [2, 5]
    # a replay of D1 observes nothing and re-emits its own (empty) tombstone
    replay = _load(reg, pg, store_settings, D1)
    assert replay["deleted_rows"].value == 0
    query(pg_conn, "DELETE FROM items WHERE id = 1")
    # the frontier loaded again: its tombstone keeps 2 and 5 first, then adds 1
    again = _load(reg, pg, store_settings, D2)
    assert again["deleted_rows"].value == 3
    ids = [r[0] for r in _tombstones(store_settings)["2024-03-02"]]
    assert sorted(ids[:2]) == [2, 5] and ids[2:] == [1]
    assert _deleted_ids(store_settings) == Counter({1: 1, 2: 1, 5: 1})
    runs = tracking_runs(pg_conn, "public.items")
    assert [r["deleted_rows"] for r in runs if r["status"] == "success"] == [0, 2, 0, 3]


def test_a_key_deleted_and_inserted_again_between_runs_is_not_a_deletion(pg_conn, pg, store_settings):
    _table(pg_conn)
    reg = registry(ITEMS)
    _load(reg, pg, store_settings, D1)
    query(pg_conn, "DELETE FROM items WHERE id = 3; INSERT INTO items (id, name) VALUES (3, 'back')")
    assert _load(reg, pg, store_settings, D2)["deleted_rows"].value == 0
    query(pg_conn, "DELETE FROM items WHERE id = 3")
    assert _load(reg, pg, store_settings, D3)["deleted_rows"].value == 1
    assert _deleted_ids(store_settings) == Counter({3: 1})


def test_an_older_partition_loaded_later_observes_nothing(pg_conn, pg, store_settings):
    """Backfill order: D3 first, then D1 and D2 (a backfill of older days), then D4."""
    _table(pg_conn)
    reg = registry(ITEMS)
    _load(reg, pg, store_settings, D3)
    query(pg_conn, "DELETE FROM items WHERE id = 4")
    assert _load(reg, pg, store_settings, D1)["deleted_rows"].value == 0
    assert _load(reg, pg, store_settings, D2)["deleted_rows"].value == 0
    assert _load(reg, pg, store_settings, D4)["deleted_rows"].value == 1
    assert _deleted_ids(store_settings) == Counter({4: 1})
    assert set(_tombstones(store_settings)) == {D3, D4}


def test_a_run_that_fails_before_committing_leaves_the_deletions_for_the_next(pg_conn, pg, store_settings,
                                                                               monkeypatch):
    """The tombstone is stored before the tracking transaction: a run that fails in between
    wrote a tombstone with deletions the tracking tables never recorded. The next run puts
    it back and observes them again: each deletion is in exactly one tombstone."""
    _table(pg_conn)
    reg = registry(ITEMS)
    _load(reg, pg, store_settings, D1)
    query(pg_conn, "DELETE FROM items WHERE id = 6")
    real_commit = run_records.commit_success

    def commit_fails(*args, **kwargs):
        raise run_records.IngestionError("the platform database went away")

    monkeypatch.setattr(run_records, "commit_success", commit_fails)
    assert _load(reg, pg, store_settings, D2, raise_on_error=False) is None
    monkeypatch.setattr(run_records, "commit_success", real_commit)
    assert _tombstones(store_settings).get(D2) == [] or 6 in [r[0] for r in _tombstones(store_settings)[D2]]
    assert _load(reg, pg, store_settings, D3)["deleted_rows"].value == 1
    assert _deleted_ids(store_settings) == Counter({6: 1}), _tombstones(store_settings)


def test_parallel_runs_report_each_deletion_once(pg_conn, pg, store_settings):
    _table(pg_conn, 40)
    reg = registry(ITEMS)
    _load(reg, pg, store_settings, D1)
    query(pg_conn, "DELETE FROM items WHERE id % 3 = 0")
    results: list[Any] = []
    threads = [threading.Thread(target=lambda p=p: results.append(_load(reg, pg, store_settings, p)))
               for p in (D2, D3, D2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(r is not None for r in results)
    assert _deleted_ids(store_settings) == Counter({i: 1 for i in range(3, 41, 3)})


def test_text_keys_under_a_linguistic_collation_and_composite_keys(pg_conn, pg, store_settings):
    """PostgreSQL sorts text by the column's collation; the key sets are compared in byte
    order (COLLATE "C"), so keys whose order differs between the two are found."""
    query(pg_conn, 'CREATE TABLE tags (kind text COLLATE "en-US-x-icu", code varchar(8), n int, PRIMARY KEY (kind, code));'
                   "INSERT INTO tags VALUES ('b', 'x', 1), ('B', 'x', 2), ('a', 'Z', 3), ('a', 'z', 4), "
                   "('é', 'y', 5), ('e', 'y', 6), ('Ä', 'q', 7)")
    source = PostgresSource(name="tags", table="tags", capture_deletes=True)
    reg = registry(source)
    _load(reg, pg, store_settings, D1, name="tags")
    query(pg_conn, "DELETE FROM tags WHERE n IN (2, 4, 5, 7)")
    assert _load(reg, pg, store_settings, D2, name="tags")["deleted_rows"].value == 4
    [table] = bronze_objects(store_settings, f"postgres/tags__deletes/{D2}/").values()
    assert sorted((r["kind"], r["code"]) for r in table.to_pylist()) == [("B", "x"), ("a", "z"), ("Ä", "q"),
                                                                         ("é", "y")]


def test_an_incremental_source_keeps_its_key_set_across_a_watermark_reset(pg_conn, pg, store_settings):
    query(pg_conn, "CREATE TABLE events (id int PRIMARY KEY, updated_at timestamp);"
                   "INSERT INTO events SELECT i, '2024-03-01 10:00' FROM generate_series(1, 5) i")
    source = PostgresSource(name="events", table="events", load="incremental", watermark_column="updated_at",
                            watermark_type="timestamp", capture_deletes=True, allow_empty=True)
    reg = registry(source)
    _load(reg, pg, store_settings, D1, name="events")
    query(pg_conn, "DELETE FROM events WHERE id = 2;"
                   "UPDATE data_platform.watermarks SET watermark_value = NULL WHERE source_name = 'public.events'")
    assert _load(reg, pg, store_settings, D2, name="events")["deleted_rows"].value == 1


def test_a_table_without_a_key_fails_naming_key_columns(pg_conn, pg, store_settings):
    query(pg_conn, "CREATE TABLE loose (a int, b text); INSERT INTO loose VALUES (1, 'x')")
    reg = registry(PostgresSource(name="loose", table="loose", capture_deletes=True))
    result = materialize_partition(reg, pg, store_settings, "loose", D1, raise_on_error=False)
    assert not result.success
    [failed] = [r for r in tracking_runs(pg_conn, "public.loose")]
    assert failed["status"] == "failed" and "key_columns" in failed["error_message"]
    keyed = registry(PostgresSource(name="loose", table="loose", capture_deletes=True, key_columns=["a"]))
    assert materialize_partition(keyed, pg, store_settings, "loose", D1).success


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"query": "SELECT 1 AS x"}, "capture_deletes needs a table"),
        ({"schema": "pg_catalog", "table": "pg_class"}, "system views"),
    ],
)
def test_the_registry_refuses_capture_deletes_without_a_table(entry, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        PostgresSource.model_validate({"name": "x", "capture_deletes": True, **entry})


def test_deleted_at_is_the_snapshot_time(pg_conn, pg, store_settings):
    _table(pg_conn)
    reg = registry(ITEMS)
    _load(reg, pg, store_settings, D1)
    before = dt.datetime.now(dt.timezone.utc)
    query(pg_conn, "DELETE FROM items WHERE id = 1")
    _load(reg, pg, store_settings, D2)
    [(_, deleted_at)] = _tombstones(store_settings)[D2]
    [run] = [r for r in tracking_runs(pg_conn, "public.items") if r["partition_key"] == D2]
    assert before <= deleted_at == run["snapshot_taken_at"]

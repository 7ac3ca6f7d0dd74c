"""Incremental extracts while writers insert and update rows, one of them holding a
transaction open across several extracts; runs of the source that overlap.

Writers stamp ``updated_at = now()`` (their transaction's start), so commit order
differs from timestamp order, and a version committed late can carry a timestamp
below a watermark already stored. Afterwards the union of every run's object holds
the latest version of every row, and no (id, version) twice.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from typing import Any

import psycopg2

from platform_assets.ingestion.database_ingestor import extract_table_incremental
from tests.faults.support import query, read_rows, runs, ts, watermark_row

SOURCE = "public.items"
SEED_ROWS = 200
RESERVED = (1, 2, 3)  # rows only the long transaction updates (no lock waits for the others)

ITEMS_DDL = """
CREATE TABLE items (
    id         bigserial PRIMARY KEY,
    version    int NOT NULL DEFAULT 1,
    writer     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON items (updated_at);
INSERT INTO items (writer, updated_at)
SELECT 'seed', now() - interval '1 hour' + g * interval '1 ms' FROM generate_series(1, %s) g;
"""


def _writer(pg: Any, seed: int, stop: threading.Event, errors: list[BaseException], counts: list[int]) -> None:
    rng = random.Random(seed)
    conn = pg.connect()
    try:
        while not stop.is_set():
            try:
                with conn.cursor() as cur:
                    cur.execute(  # inserts: version 1, stamped with the transaction start
                        "INSERT INTO items (writer) SELECT %s FROM generate_series(1, %s)",
                        (f"w{seed}", rng.randint(1, 3)),
                    )
                    # updates in id order: no deadlocks between writers
                    for item in sorted(rng.sample(range(RESERVED[-1] + 1, SEED_ROWS + 1), rng.randint(1, 3))):
                        cur.execute(
                            "UPDATE items SET version = version + 1, updated_at = now(), writer = %s "
                            "WHERE id = %s",
                            (f"w{seed}", item),
                        )
                    time.sleep(rng.uniform(0, 0.04))  # commit some time after the stamp
                conn.commit()
                counts.append(1)
            except psycopg2.errors.DeadlockDetected:
                conn.rollback()
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append(e)
    finally:
        conn.close()


def _long_writer(pg: Any, began: threading.Event, release: threading.Event, errors: list[BaseException],
                 written: dict[str, Any]) -> None:
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO items (writer) VALUES ('long') RETURNING id, updated_at")
            written["insert"] = cur.fetchone()
            cur.execute(
                "UPDATE items SET version = version + 1, updated_at = now(), writer = 'long' "
                "WHERE id = ANY(%s)", (list(RESERVED),),
            )
        began.set()
        release.wait(60)
        conn.commit()
        written["committed"] = True
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append(e)
        began.set()
    finally:
        conn.close()


def _run_pair(services: Any, keys: list[str], results: list[Any]) -> None:
    """Two runs of the source started together: the lock serialises them."""
    barrier = threading.Barrier(2)
    pair = [f"items/{len(keys) + n}.parquet" for n in (1, 2)]
    keys.extend(pair)

    def run(key: str) -> None:
        barrier.wait()
        try:
            results.append(extract_table_incremental("items", "public", "updated_at", key, services=services))
        except BaseException as e:  # noqa: BLE001 - checked below
            results.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in pair]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def test_incremental_runs_under_concurrent_writers(pg: Any, pg_conn: Any, services: Any) -> None:
    query(pg_conn, ITEMS_DDL, (SEED_ROWS,))
    client, bucket = services.store.client, services.bronze_bucket
    stop, began, release = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []
    commits: list[int] = []
    written: dict[str, Any] = {}
    writers = [threading.Thread(target=_writer, args=(pg, n, stop, errors, commits)) for n in range(3)]
    long_writer = threading.Thread(target=_long_writer, args=(pg, began, release, errors, written))
    keys: list[str] = []
    results: list[Any] = []
    started = time.monotonic()

    for t in writers:
        t.start()
    try:
        for i in range(16):
            if i == 2:
                long_writer.start()
                assert began.wait(10)
            if i == 9:
                release.set()  # the long transaction commits now, 7 extracts after its writes
                long_writer.join(10)
            if i % 5 == 4:
                _run_pair(services, keys, results)
            else:
                keys.append(f"items/{len(keys) + 1}.parquet")
                results.append(
                    extract_table_incremental("items", "public", "updated_at", keys[-1], services=services)
                )
            time.sleep(0.05)
    finally:
        stop.set()
        release.set()
        for t in writers:
            t.join(30)
        if long_writer.is_alive() or long_writer.ident:
            long_writer.join(30)
    assert not errors, errors
    assert written.get("committed"), "the long transaction did not commit"
    assert len(commits) > 20, "the writers hardly wrote"
    # the final run, after the writers stopped
    keys.append(f"items/{len(keys) + 1}.parquet")
    results.append(extract_table_incremental("items", "public", "updated_at", keys[-1], services=services))
    assert time.monotonic() - started < 30

    failures = [r for r in results if not isinstance(r, dict)]
    assert not failures, failures
    assert all(r["status"] == "success" for r in results)
    tracking = runs(pg_conn, SOURCE)
    assert [r["status"] for r in tracking] == ["success"] * len(keys)
    # overlapping runs took turns: no run started before the previous one finished
    for earlier, later in itertools.pairwise(tracking):
        assert later["started_at"] >= earlier["finished_at"], (earlier["id"], later["id"])

    objects = {key: read_rows(client, bucket, key, "id", "version", "updated_at") for key in keys}
    loaded = [(i, v) for key in keys for i, v, _ in objects[key]]
    duplicated = {row for row in loaded if loaded.count(row) > 1} if len(loaded) != len(set(loaded)) else set()
    assert not duplicated, f"loaded twice: {sorted(duplicated)[:20]}"
    latest = set(query(pg_conn, "SELECT id, version FROM items"))
    missing = latest - set(loaded)
    assert not missing, f"latest versions never loaded: {sorted(missing)[:20]}"
    newest_loaded: dict[int, int] = {}
    for item, version in loaded:
        newest_loaded[item] = max(version, newest_loaded.get(item, 0))
    assert newest_loaded == dict(latest)  # nothing loaded that the source never had
    # the long transaction's rows, stamped before many loaded values, are in
    long_id, long_stamp = written["insert"]
    [late_run] = [
        (key, result) for key, result in zip(keys, results)
        if (long_id, 1) in [(i, v) for i, v, _ in objects[key]]
    ]
    # ...loaded by a run whose watermark was already past their stamp: the catch-up of late rows
    assert ts(late_run[1]["watermark_before"]) > long_stamp, late_run
    assert {(i, v) for i, v in latest if i in RESERVED} <= set(loaded)
    late = sum(
        1 for key, result in zip(keys, results) if result["watermark_before"]
        for _, _, stamp in objects[key]
        if stamp <= ts(result["watermark_before"])
    )
    print(f"{len(commits)} writer commits, {len(loaded)} versions loaded by {len(keys)} runs, {late} late")
    [(max_stamp,)] = query(pg_conn, "SELECT max(updated_at) FROM items")
    assert ts(watermark_row(pg_conn, SOURCE)["watermark_value"]) >= max_stamp
    assert sum(r["row_count"] for r in results) == len(loaded)

"""The file ledger (``data_platform.ingested_files``), the family asset and its sensor
(found by an attack test; each failed before file versions were keyed and locked).

Partitions are materialized with ``dg.materialize`` and sensors evaluated with
``dg.build_sensor_context``; bronze is read back whatever the object keys.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

import dagster as dg
import psycopg2

from platform_assets.definitions import build_definitions
from platform_assets.ingestion.files.family_load import load_family_partition
from platform_assets.registry import FileFamily, Registry
from tests.helpers import (
    dagster_resources,
    family_rows,
    query,
    waiting_advisory_locks,
    write_input,
)

START = dt.date(2024, 3, 1)


def _family(directory, **overrides) -> FileFamily:
    settings = {
        "name": "customer_files",
        "directory": str(directory),
        "glob": "customers_*.csv",
        "format": "csv",
        "date_pattern": r"_(\d{8})\.",
        "date_format": "%Y%m%d",
        "stable_seconds": 0,
        **overrides,
    }
    return FileFamily(**settings)


def _materialize(registry, family, pg, store_settings, partition):
    defs = build_definitions(registry)
    result = dg.materialize(
        [defs.get_assets_def(dg.AssetKey(["bronze", "files", family.name]))],
        partition_key=partition,
        resources=dagster_resources(pg, store_settings),
    )
    [materialization] = result.asset_materializations_for_node(f"bronze__files__{family.name}")
    return materialization.metadata


def _tick(registry, family, pg, store_settings, cursor):
    sensor = build_definitions(registry).resolve_sensor_def(f"{family.name}_sensor")
    with dg.build_sensor_context(cursor=cursor, resources=dagster_resources(pg, store_settings)) as context:
        result = sensor(context)
    return result.run_requests or [], result.cursor


def test_ledger_is_not_scoped_by_family(tmp_path, pg, pg_conn, store_settings):
    """Promise (README, Ledger): "A family's sensor requests a run only for files unchanged
    across two ticks and absent from the ledger"; each family is its own asset.

    Two families read one directory with overlapping globs (an archive family of every
    CSV, and the customers family). Once the archive family loaded customers_20240302.csv,
    the customers family never loads it: ``tracking.already_ingested`` looks the file up
    by (path, size, mtime) only, ignoring ``family``, so the customers partition reports
    the file "skipped" and its sensor never requests it - bronze/files/customer_files has
    no object for it. (A ``batch_ingest_files`` run, family NULL, blocks families the
    same way.)
    """
    write_input(tmp_path, "customers_20240302.csv", "id,name\n1,ann\n")
    customers = _family(tmp_path)
    archive = _family(tmp_path, name="all_csv_files", glob="*.csv")
    registry = Registry(start_date=START, files=[customers, archive])

    _materialize(registry, archive, pg, store_settings, "2024-03-02")
    assert family_rows(store_settings, "all_csv_files", "id") == [(1,)]

    _, cursor = _tick(registry, customers, pg, store_settings, None)
    requests, _ = _tick(registry, customers, pg, store_settings, cursor)
    metadata = _materialize(registry, customers, pg, store_settings, "2024-03-02")
    stored = family_rows(store_settings, "customer_files", "id")
    assert (len(requests), metadata["files_loaded"].value, stored) == (1, 1, [(1,)]), (
        f"customer_files: sensor requests {len(requests)}, files_loaded "
        f"{metadata['files_loaded'].value}, skipped {metadata['files_skipped'].value}, object {stored}"
    )


def test_replaced_content_with_same_size_and_mtime_is_never_loaded(tmp_path, pg, pg_conn, store_settings):
    """Promise (README, Ledger/Guarantees): "a file replaced with new content is loaded
    again"; the ledger records each file's MD5 (``FileIdentity``: "path, size, mtime and
    content checksum").

    A corrected file of the same size is delivered with its original modification time
    kept (``cp -p``, ``rsync -t``, an unzip, or a coarse-mtime share). The ledger lookup
    (``already_ingested``) compares path, size and mtime only - never the stored
    ``content_md5`` - so the sensor never requests it and a materialization skips it:
    bronze keeps the old amounts forever.
    """
    path = write_input(tmp_path, "customers_20240302.csv", "id,amount\n1,100\n")
    family = _family(tmp_path)
    registry = Registry(start_date=START, files=[family])
    _materialize(registry, family, pg, store_settings, "2024-03-02")
    mtime = path.stat().st_mtime_ns

    path.write_text("id,amount\n1,999\n")  # same size, new content
    os.utime(path, ns=(mtime, mtime))

    _, cursor = _tick(registry, family, pg, store_settings, None)
    requests, _ = _tick(registry, family, pg, store_settings, cursor)
    metadata = _materialize(registry, family, pg, store_settings, "2024-03-02")
    stored = family_rows(store_settings, "customer_files", "amount")
    assert stored == [(100,), (999,)], (
        f"new content not loaded: sensor requests {len(requests)}, files_loaded "
        f"{metadata['files_loaded'].value}, bronze still holds amount {stored}"
    )


def test_symlink_inside_the_directory_loads_the_same_file_twice(tmp_path, pg, pg_conn, store_settings):
    """Promise (README, Guarantees): "A file is loaded once per identity (path, size,
    mtime)"; the ledger records the resolved path.

    ``customers_latest.csv`` is a symlink to ``customers_20240302.csv`` in the input
    directory (a common "latest" convention). Both names fall in the same partition
    (arrival day), ``load_partition`` checks the ledger once before loading, so the one
    file (one resolved path, size, mtime) is loaded twice in one run: two objects with
    the same rows in the partition and two ledger rows for the same file.
    """
    target = write_input(tmp_path, "customers_20240302.csv", "id,name\n1,ann\n")
    (tmp_path / "customers_latest.csv").symlink_to(target)
    arrival = dt.datetime(2024, 3, 2, 12, tzinfo=dt.timezone.utc).timestamp()
    os.utime(target, (arrival, arrival))
    family = _family(tmp_path, date_pattern=None)
    registry = Registry(start_date=START, files=[family])

    _materialize(registry, family, pg, store_settings, "2024-03-02")

    ledger = query(pg_conn, "SELECT file_path, object_key FROM data_platform.ingested_files ORDER BY id")
    assert len(ledger) == 1, f"one file, loaded {len(ledger)} times: {ledger}"


def test_two_runs_of_one_partition_at_once_load_the_file_twice(tmp_path, pg, pg_conn, store_settings, services):
    """Promise (README, Guarantees): "A file is loaded once per identity"; runs of one
    source are serialised.

    Two runs of the same partition start together (a sensor-launched run and a manual
    one, or a backfill overlapping a sensor run). ``load_partition`` reads the ledger
    before taking the file's lock and ``_ingest_file`` never re-checks it under the lock,
    so both runs load the file: two ``success`` rows, two ledger rows for one identity.
    (With ``after_load: move`` the second run instead fails: the file is gone.)
    """
    write_input(tmp_path, "customers_20240302.csv", "id,name\n1,ann\n")
    family = _family(tmp_path)
    registry = Registry(start_date=START, files=[family])
    services.bootstrap()

    blocker = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, dbname=pg.dbname)
    blocker.autocommit = True
    lock = ("SELECT pg_advisory_{}(hashtextextended(%s, 0))", ("source:customer_files/customers_20240302.csv",))
    query(blocker, lock[0].format("lock"), lock[1])  # hold the file's lock briefly
    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(
            load_family_partition(family.spec(registry), "2024-03-02", services)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while waiting_advisory_locks(pg_conn) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    query(blocker, lock[0].format("unlock"), lock[1])
    blocker.close()
    for t in threads:
        t.join(20)

    statuses = sorted(o.status for run in results for o in run.outcomes)
    loads = query(pg_conn, "SELECT count(*) FROM data_platform.ingested_files")[0][0]
    assert (statuses, loads) == (["loaded", "skipped"], 1), (
        f"two concurrent runs: file statuses {statuses}, ledger rows for the one file: {loads}"
    )


def test_move_after_load_overwrites_the_archived_earlier_delivery(tmp_path, pg, pg_conn, store_settings):
    """Promise (README, registry ``after_load: move``): loaded files are moved to
    ``<directory>/_processed/<date>/`` (kept, out of the way); a replaced file is loaded again.

    The source re-delivers ``customers_20240302.csv`` with corrected content. The
    correction is loaded (right) and moved onto ``_processed/2024-03-02/customers_20240302.csv``
    with ``shutil.move``, which silently replaces the archived first delivery: the
    original file is destroyed (and its bronze object was overwritten too), so the
    first delivery exists nowhere any more.
    """
    family = _family(tmp_path, after_load="move")
    registry = Registry(start_date=START, files=[family])
    write_input(tmp_path, "customers_20240302.csv", "id,amount\n1,100\n")
    _materialize(registry, family, pg, store_settings, "2024-03-02")
    write_input(tmp_path, "customers_20240302.csv", "id,amount\n1,100\n2,250\n")
    _materialize(registry, family, pg, store_settings, "2024-03-02")

    archived = sorted(p.read_text() for p in (tmp_path / "_processed").rglob("*") if p.is_file())
    assert "id,amount\n1,100\n" in archived, f"archive holds only {archived}"


def test_tsv_family_is_loaded_as_one_comma_separated_column(tmp_path, pg, pg_conn, store_settings, services):
    """Promise (README, Formats): ``.tsv`` (optionally ``.gz``) is a supported format; the
    guide's ``ingest_csv_file``/``batch_ingest_files`` read ``.tsv`` as tab-delimited.

    The same file picked up by a family (``glob: "people_*.tsv"``, ``format: csv``, no
    ``delimiter`` set) is parsed with the registry's default ``","``
    (``file_partitions.csv_options`` ignores the extension): it "loads" as a single text
    column named ``id\\tname`` holding ``1\\tann`` - no error, wrong table.
    """
    from platform_assets.ingestion.file_ingestor import ingest_csv_file

    text = "id\tname\n1\tann\n"
    (tmp_path / "elsewhere").mkdir()
    copy = write_input(tmp_path / "elsewhere", "people_20240302.tsv", text)
    direct = ingest_csv_file(copy, "files/direct.parquet", "2024-03-02", services=services)
    assert [c["name"] for c in direct["schema"]["columns"]] == ["id", "name"]
    write_input(tmp_path, "people_20240302.tsv", text)

    family = _family(tmp_path, name="people_files", glob="people_*.tsv")
    registry = Registry(start_date=START, files=[family])
    _materialize(registry, family, pg, store_settings, "2024-03-02")
    stored = family_rows(store_settings, "people_files", "id", "name")
    assert stored == [(1, "ann")], f"family stored {stored}"

"""File families: runs and ticks (third adversarial pass)."""

from __future__ import annotations

import errno
import os

from platform_assets.ingestion.files import family_load, family_watch
from tests.adversarial._files_support import age, family, registry, ticks
from tests.helpers import family_rows, materialize_partition, query, write_input


def test_a_loaded_file_that_cannot_be_moved_stops_the_partitions_other_files(
        tmp_path, pg, pg_conn, store_settings, monkeypatch):
    """Promise (README, "File ingestion"): "A bad file is that file's problem ... the
    other files go on"; a run reports each file's outcome (loaded, skipped, failed) and
    the blocking check ``all_files_loaded`` lists the failed ones.

    A family with ``after_load: move`` whose ``_processed`` folder is on another volume
    (``os.rename`` fails with EXDEV), or on a directory the run may not write (read-only
    share; EACCES): ``family_loader._move_processed`` lets the OSError escape from
    ``_load_one`` after the first file's load committed. ``load_family_partition``
    stops: the partition's other file (customers_20240301_b.csv) is never loaded by this
    run, no outcome is reported and the step fails with a raw traceback. Every later run
    of the partition finds the first file loaded, tries to move it again (``is_loaded``
    branch), fails again, and never reaches the second file.

    Expected: a move that fails is that file's problem (logged/reported, the file stays),
    and the other files of the partition load.
    """
    for name, rows in (("customers_20240301.csv", "id\n1\n"), ("customers_20240301_b.csv", "id\n2\n")):
        age(write_input(tmp_path, name, rows))
    reg = registry(family(tmp_path, after_load="move"))
    real_rename = os.rename

    def rename(src, dst, *args, **kwargs):
        if "_processed" in str(dst):
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(family_load.os, "rename", rename)
    for _ in range(2):  # the run, then a manual retry of the partition
        materialize_partition(reg, pg, store_settings, "customer_files", "2024-03-01", group="files",
                              raise_on_error=False)
    loaded = query(pg_conn, "SELECT relative_path FROM data_platform.ingested_files ORDER BY 1")
    assert family_rows(store_settings, "customer_files", "id") == [(1,), (2,)], (
        f"loaded: {loaded}; the second file of the partition was never reached"
    )


def test_a_family_column_that_became_text_flips_back_to_a_number_after_a_file_without_it(
        tmp_path, pg, pg_conn, store_settings):
    """Promise (README, "Reading files"): "a family's column that became text in an
    earlier file starts as text" (types do not flap from file to file).

    ``file_load.load_file`` takes the text columns from ``tracking.last_schema(family)``:
    the schema of the family's most recent load only. Files of a family often omit
    optional columns. Sequence (manual runs, one day each):

    - customers_20240301.csv: ``id,code`` with code ``A1`` -> code is text;
    - customers_20240302.csv: ``id`` only (code removed: flagged, accepted under evolve);
    - customers_20240303.csv: ``id,code`` with code ``12345`` -> code is inferred int64.

    The family's ``code`` column is string in D1's object and int64 in D3's: a reader of
    the family's objects (one dataset) meets two types for one column, and a ``code``
    like ``12345`` is no longer the text the family recorded.
    """
    for day, text in (("01", "id,code\n1,A1\n"), ("02", "id\n2\n"), ("03", "id,code\n3,12345\n")):
        age(write_input(tmp_path, f"customers_202403{day}.csv", text))
        assert materialize_partition(registry(family(tmp_path)), pg, store_settings, "customer_files",
                                     f"2024-03-{day}", group="files").success
    types = query(pg_conn, "SELECT execution_date::text, c->>'arrow_type' FROM data_platform.schema_history, "
                           "jsonb_array_elements(schema_metadata::jsonb->'columns') c "
                           "WHERE c->>'name' = 'code' ORDER BY id")
    assert [t for _, t in types] == ["string", "string"], f"code's type per file: {types}"


def test_a_file_with_a_bad_name_is_hashed_whole_at_every_tick_whatever_the_budget(
        tmp_path, pg, store_settings, monkeypatch):
    """Promise (README, "What a run loads"): "The sensor hashes for at most 20 s per tick,
    within a file too".

    A file whose name cannot be used (here ``customers_20240230.csv``: not a date) is a
    ``FileProblem``. ``plan_tick`` passes every problem to ``family_loader.record_problem``,
    which computes ``file_md5(problem.path)`` - the whole file, outside the tick's hashing
    budget - *before* asking ``has_failed`` whether it was recorded already. So every tick,
    not only the first, reads the whole file. Scaled down: budget 0.5 s, a 2 GiB (sparse)
    file; a tick after the problem was recorded (nothing changed) still takes seconds. At
    full scale a misnamed database dump of tens of GB makes every tick exceed Dagster's
    sensor timeout, so no file of the family is requested any more.
    """
    monkeypatch.setattr(family_watch, "HASH_SECONDS_PER_TICK", 0.5)
    big = tmp_path / "customers_20240230.csv"
    with big.open("wb") as f:
        f.write(b"id\n1\n")
        f.truncate(2 << 30)
    reg = registry(family(tmp_path))
    _, cursor = ticks(reg, "customer_files", pg, store_settings, count=1)  # records the problem
    hashed: list[str] = []

    def counting(module, name):
        original = getattr(module, name)

        def wrapper(target, *args, **kwargs):
            hashed.append(str(getattr(target, "path", target)))
            return original(target, *args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    from platform_assets.ingestion.files import family_load, family_scan
    from platform_assets.ingestion.sink import parquet

    for module, name in ((family_watch, "content_md5"), (family_load, "content_md5"),
                         (family_scan, "content_md5"), (parquet, "file_md5")):
        counting(module, name)
    for module in (family_load, family_watch):
        if hasattr(module, "file_md5"):
            counting(module, "file_md5")
    ticks(reg, "customer_files", pg, store_settings, cursor, count=1)
    assert str(big) not in hashed, "a tick hashed the misnamed 2 GiB file again (outside its budget)"


def test_a_file_dated_before_start_date_by_its_mtime_is_never_loaded_after_the_touch_its_report_advises(
        tmp_path, pg, pg_conn, store_settings):
    """Promise (README, "A bad file is that file's problem"): a file dated before
    ``start_date`` is recorded once per version; "once the cause is fixed ... [it] is
    requested". The report itself (``family_scan._partition_date``) says: "set start_date
    earlier, or rename (or touch) the file".

    A family dated by arrival (no ``date_pattern``) receives customers_a.csv extracted
    from an archive with its original mtime (2023-06-01, before start_date 2024-03-01):
    ``record_problem`` records a failure for (relative path, MD5). The operator follows
    the advice and touches the file: its partition is now today's, a valid one. But
    ``family_watch.plan_tick`` skips every version for which ``file_ledger.has_failed``
    holds, and a touch keeps path and content, hence the MD5: the sensor never requests
    the file. The advice does not work; only a manual materialization of today's
    partition would load it.
    """
    import datetime as dt

    path = write_input(tmp_path, "customers_a.csv", "id\n1\n")
    old = dt.datetime(2023, 6, 1, 12, tzinfo=dt.timezone.utc).timestamp()
    os.utime(path, (old, old))
    reg = registry(family(tmp_path, date_pattern=None))
    requests, cursor = ticks(reg, "customer_files", pg, store_settings)
    assert requests == []
    [(message,)] = query(pg_conn, "SELECT error_message FROM data_platform.file_failures")
    assert "touch" in message
    os.utime(path)  # the advised fix: touch the file
    requests, cursor = ticks(reg, "customer_files", pg, store_settings, cursor, count=3)
    # the same request may come at each tick until it runs (the daemon launches a run key once)
    assert {(r.partition_key, r.run_key) for r in requests} == {(dt.datetime.now(dt.timezone.utc).date().isoformat(), requests[0].run_key)}, (
        f"after the touch its report advises, the sensor requested {requests}; failures: {message!r}"
    )

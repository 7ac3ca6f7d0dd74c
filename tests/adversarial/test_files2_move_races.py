"""``after_load: move`` and runs that overlap (second adversarial pass).

Promises: overlapping runs never load a version twice (per-file lock + ledger re-read)
and a file is moved only once it is loaded completely; one file never hides the
others' results.
"""

from __future__ import annotations

import threading
import time

import psycopg2

from platform_assets.ingestion.files import family_load
from platform_assets.ingestion.files.family_load import load_family_partition
from tests.adversarial._files_support import DAY, family, registry
from tests.helpers import family_rows, query, waiting_advisory_locks, write_input

PARTITION = "2024-03-02"


def _hold_lock(pg, relative: str):
    conn = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, dbname=pg.dbname)
    conn.autocommit = True
    query(conn, "SELECT pg_advisory_lock(hashtextextended(%s, 0))", (f"source:customer_files/{relative}",))
    return conn


def test_overlapping_runs_with_move_crash_the_run_that_finds_the_file_moved(tmp_path, pg, pg_conn,
                                                                            store_settings, services):
    """Promise: overlapping runs (a sensor's and a manual one) never load a version twice,
    and the second simply skips what the first loaded; one file never hides the others.

    Family with ``after_load: move``; partition 2024-03-02 holds a.csv and b.csv. Two runs
    of the partition start together; both scan the directory, then queue on a.csv's
    lock. The first loads a.csv and moves it to ``_processed``. The second gets the lock,
    and ``family_load._content_md5`` calls ``file_md5(seen.path)`` on the path it
    scanned before waiting: FileNotFoundError, uncaught. The whole second run crashes
    (in Dagster: a failed run, no ``all_files_loaded`` result; a sensor run's key is
    used up) instead of reporting a.csv as "loaded already / no longer here".
    """
    write_input(tmp_path, "customers_20240302_a.csv", "id,name\n1,ann\n")
    write_input(tmp_path, "customers_20240302_b.csv", "id,name\n2,bob\n")
    fam = family(tmp_path, stable_seconds=0, after_load="move")
    spec = fam.spec(registry(fam))
    services.bootstrap()

    blocker = _hold_lock(pg, "customers_20240302_a.csv")
    outcomes, errors = [], []

    def run() -> None:
        try:
            outcomes.append(load_family_partition(spec, PARTITION, services))
        except Exception as e:  # noqa: BLE001 - what the Dagster step would see
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while waiting_advisory_locks(pg_conn) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    blocker.close()  # releases the lock: the two runs go on, one after the other
    for t in threads:
        t.join(20)

    assert family_rows(store_settings, "customer_files", "id") == [(1,), (2,)]
    assert errors == [], f"a run crashed: {errors!r}"


def test_a_file_appended_to_after_its_load_is_moved_with_the_unloaded_rows(tmp_path, pg, pg_conn,
                                                                          store_settings, services,
                                                                          monkeypatch):
    """Promise: ``after_load: move`` never moves a file before it is loaded completely.

    a.csv is at rest and loaded (rows 1, 2). Right after the load committed (here: when
    ``file_ledger.forget_failure`` runs, between the commit and ``_move_processed``), the
    producer appends row 3 (an hourly export that resumes, say). ``_move_processed``
    moves the file without checking that it is still the version just loaded: the file
    holding row 3 lands in ``_processed/`` (never scanned), so row 3 never reaches bronze
    and the sensor never sees a new version.
    """
    path = write_input(tmp_path, "customers_20240302_a.csv", "id\n1\n2\n")
    fam = family(tmp_path, stable_seconds=0, after_load="move")
    spec = fam.spec(registry(fam))

    real_forget = family_load.file_ledger.forget_failure

    def forget_then_producer_appends(*args, **kwargs):
        real_forget(*args, **kwargs)
        with path.open("a") as f:
            f.write("3\n")

    monkeypatch.setattr(family_load.file_ledger, "forget_failure", forget_then_producer_appends)
    done = load_family_partition(spec, PARTITION, services)
    monkeypatch.undo()
    assert [o.status for o in done.outcomes] == ["loaded"]

    # the family's next runs (any number) should pick up the new version with row 3
    for _ in range(2):
        load_family_partition(spec, PARTITION, services)
    moved = [p.read_text() for p in (tmp_path / "_processed").rglob("*.csv")]
    assert (3,) in family_rows(store_settings, "customer_files", "id"), (
        f"row 3 is in no object; the file holding it was moved to _processed: {moved!r}"
    )


def test_a_family_that_moves_its_files_takes_them_from_another_family_of_the_same_directory(tmp_path):
    """Promise: each version of each file of a family is loaded exactly once - per family
    (the ledger is per family: two families may read one directory with overlapping
    globs, tests/adversarial/test_files_ledger.py::test_ledger_is_not_scoped_by_family).

    The registry accepted the customers family (``after_load: move``) and an archive
    family of every CSV in the same directory (``after_load: leave``): the customers run
    moved customers_20240302.csv to ``_processed/`` (which every family skips) before
    the archive family had seen it, and no failure or warning said so. The registry now
    refuses ``move`` on files another family may read; families with disjoint globs in
    one directory are accepted.
    """
    import pydantic
    import pytest

    customers = family(tmp_path, stable_seconds=0, after_load="move")
    archive = family(tmp_path, name="all_csv_files", glob="*.csv", stable_seconds=0)
    with pytest.raises(pydantic.ValidationError, match="may read the same files"):
        registry(customers, archive)
    nested = family(tmp_path.parent, name="everything", glob="**/*.csv", stable_seconds=0)
    with pytest.raises(pydantic.ValidationError, match="may read the same files"):
        registry(customers, nested)
    orders = family(tmp_path, name="order_files", glob="orders_*.csv", after_load="move")
    registry(customers, orders)


def test_a_delivery_landing_in_processed_between_the_check_and_the_move_is_not_overwritten(
        tmp_path, services, monkeypatch):
    """Promise: "Moving a loaded file never overwrites another file in the processed folder."

    Defect: ``_move_processed`` looked for a free name (``exists()``) and then renamed: a
    run moving another delivery of the same name between the two (two runs at once, or
    a name like ``X.csv.1``) had its file replaced. The move is now a hard link, which
    fails when the name exists, then an unlink.
    """
    import os

    write_input(tmp_path, "customers_20240301.csv", "id\n1\n")
    fam = family(tmp_path, stable_seconds=0, after_load="move")
    spec = fam.spec(registry(fam))
    processed = tmp_path / "_processed" / DAY / "customers_20240301.csv"
    real = {"link": os.link, "rename": os.rename}

    def landing_first(name):
        def call(source, destination, *args, **kwargs):
            if str(destination) == str(processed) and not processed.exists():
                processed.write_text("id\n99\n")  # the other run's move lands now, after the name was chosen
            return real[name](source, destination, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "link", landing_first("link"))
    monkeypatch.setattr(os, "rename", landing_first("rename"))
    outcomes = load_family_partition(spec, DAY, services).outcomes
    monkeypatch.undo()
    assert [o.status for o in outcomes] == ["loaded"]
    assert processed.read_text() == "id\n99\n"
    assert (processed.parent / "customers_20240301.csv.1").read_text() == "id\n1\n"

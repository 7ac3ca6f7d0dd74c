"""Defects of file families found by the model-based test (tests/model/test_file_model.py),
each reduced to a deterministic sequence."""

from __future__ import annotations

import psycopg2
import pytest

from platform_assets.ingestion.tracking import schema_log
from platform_resources.object_store import ObjectStore, ObjectStoreError
from tests.adversarial._files_support import DAY, age, family, registry, ticks
from tests.helpers import family_rows, launch, query, write_input


def _store_refuses(monkeypatch):
    def refuse(self, bucket):
        raise ObjectStoreError(f"cannot access bucket {bucket!r}: 403 AccessDenied (wrong credentials)",
                               transient=False)

    monkeypatch.setattr(ObjectStore, "ensure_bucket", refuse)


def _platform_refuses(monkeypatch):
    def refuse(*args, **kwargs):
        raise psycopg2.errors.InsufficientPrivilege("permission denied for table schema_history")

    monkeypatch.setattr(schema_log, "last_schema", refuse)


@pytest.mark.parametrize("outage", [_store_refuses, _platform_refuses], ids=["object_store", "platform_database"])
def test_a_run_the_platform_refuses_is_not_recorded_as_the_files_failure(
        tmp_path, pg, pg_conn, store_settings, monkeypatch, outage):
    """Promise (README, "A bad file is that file's problem"): a version recorded as failed
    is one that failed for a reason of its own; "the sensor does not request a failed
    version again". A sensor's run that fails for a reason of its own (an outage) "is
    requested again at the next tick".

    Defect: the object store refusing the run (403: wrong credentials, a bucket policy)
    or the platform database refusing a statement (a revoked grant) is not a
    ``TransientError``; ``family_load._load_version`` caught it as the file's
    ``IngestionError`` and wrote a ``file_failures`` row for the (good) version. Once
    the store was fixed, the sensor never asked for the file again: it was never loaded.
    """
    age(write_input(tmp_path, "customers_20240301.csv", "id,name\n1,ann\n"))
    reg = registry(family(tmp_path))
    requests, cursor = ticks(reg, "customer_files", pg, store_settings)
    assert [r.partition_key for r in requests] == [DAY]
    with monkeypatch.context() as broken:
        outage(broken)
        assert not launch(reg, requests[0], "customer_files", pg, store_settings).success
    assert query(pg_conn, "SELECT relative_path FROM data_platform.file_failures") == [], (
        "the outage was recorded as the file's own failure"
    )
    requests, cursor = ticks(reg, "customer_files", pg, store_settings, cursor, count=1)
    assert [r.partition_key for r in requests] == [DAY], "the sensor no longer asks for the file"
    assert launch(reg, requests[0], "customer_files", pg, store_settings).success
    assert family_rows(store_settings, "customer_files", "id", "name") == [(1, "ann")]


def test_a_loaded_file_delivered_again_is_moved_by_the_sensors_run(tmp_path, pg, pg_conn, store_settings):
    """Promise (README, "``after_load: move``"): "A file already loaded and found again is
    moved" (a redelivery of the same name gets ``.1``), never over another file.

    Defect: ``family_watch.plan_tick`` leaves out every version the ledger holds, so a
    loaded version found again in the directory (delivered twice, or left there by a run
    that died between its commit and the move) was never requested: with the sensor
    (the default way files arrive) it stayed in the input directory for ever; only a
    manual materialization moved it.
    """
    reg = registry(family(tmp_path, after_load="move"))
    write_input(tmp_path, "customers_20240301.csv", "id,name\n1,ann\n")
    requests, cursor = ticks(reg, "customer_files", pg, store_settings)
    assert launch(reg, requests[-1], "customer_files", pg, store_settings).success
    processed = tmp_path / "_processed" / DAY
    assert [p.name for p in processed.iterdir()] == ["customers_20240301.csv"]
    write_input(tmp_path, "customers_20240301.csv", "id,name\n1,ann\n")  # delivered again
    requests, cursor = ticks(reg, "customer_files", pg, store_settings, cursor)
    for request in requests:
        assert launch(reg, request, "customer_files", pg, store_settings).success
    assert not (tmp_path / "customers_20240301.csv").exists(), "the loaded file stays in the input directory"
    assert sorted(p.name for p in processed.iterdir()) == ["customers_20240301.csv", "customers_20240301.csv.1"]
    assert family_rows(store_settings, "customer_files", "id", "name") == [(1, "ann")]
    assert query(pg_conn, "SELECT count(*) FROM data_platform.ingested_files")[0][0] == 1

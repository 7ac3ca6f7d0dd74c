"""Adversarial tests of "every stable file version loaded once, unchanged" for file families.

Each test drives a family as the platform does (sensor ticks, the runs they request,
manual materializations) and reads bronze back: every object of the family, whatever
its key.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import pytest

from platform_assets.registry import FileFamily, Registry
from tests.helpers import (
    bronze_objects,
    family_rows,
    launch,
    materialize_partition,
    query,
    sensor_tick,
    tracking_runs,
    write_input,
)

START = dt.date(2024, 3, 1)
DAY = "2024-03-01"


def _family(directory: Any, **overrides: Any) -> FileFamily:
    return FileFamily(**{
        "name": "customer_files", "directory": str(directory), "glob": "customers_*.csv*", "format": "csv",
        "date_pattern": r"_(\d{8})\.", "date_format": "%Y%m%d", **overrides,
    })


def _registry(*families: FileFamily) -> Registry:
    return Registry(start_date=START, files=list(families))


def _age(path: Any, seconds: float = 3600) -> None:
    """Make a file look written ``seconds`` ago (a manual run loads only files at rest)."""
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def _ticks(registry: Registry, family: str, pg: Any, store_settings: Any, cursor: str | None = None,
           ticks: int = 2) -> tuple[list, str | None]:
    requests: list = []
    for _ in range(ticks):
        new, cursor = sensor_tick(registry, family, pg, store_settings, cursor)
        requests += new
    return requests, cursor


def test_a_gz_twin_and_same_named_files_in_subdirectories_each_get_their_own_object(tmp_path, pg, pg_conn,
                                                                                    store_settings):
    """Defect: the object key was built from the file stem: customers_20240301.csv and
    customers_20240301.csv.gz of the same day (and a/x.csv, b/x.csv) shared one object,
    the second load overwrote the first, and both were recorded as loaded."""
    write_input(tmp_path, "customers_20240301.csv", "id,name\n1,plain\n")
    write_input(tmp_path, "customers_20240301.csv.gz", "id,name\n2,gzipped\n")
    (tmp_path / "east").mkdir()
    (tmp_path / "west").mkdir()
    write_input(tmp_path / "east", "customers_20240301.csv", "id,name\n3,east\n")
    write_input(tmp_path / "west", "customers_20240301.csv", "id,name\n4,west\n")
    registry = _registry(_family(tmp_path, glob="**/customers_*.csv*"))
    requests, _ = _ticks(registry, "customer_files", pg, store_settings)
    assert [r.partition_key for r in requests] == [DAY]
    assert launch(registry, requests[0], "customer_files", pg, store_settings).success
    assert family_rows(store_settings, "customer_files", "id", "name") == [
        (1, "plain"), (2, "gzipped"), (3, "east"), (4, "west")]
    ledger = query(pg_conn, "SELECT relative_path, object_key, content_md5 FROM data_platform.ingested_files")
    assert len({key for _, key, _ in ledger}) == len(ledger) == 4
    assert sorted(path for path, _, _ in ledger) == [
        "customers_20240301.csv", "customers_20240301.csv.gz", "east/customers_20240301.csv",
        "west/customers_20240301.csv"]


def test_a_file_replaced_with_new_content_is_a_new_version_and_the_old_object_stays(tmp_path, pg, store_settings):
    path = write_input(tmp_path, "customers_20240301.csv", "id,name\n1,first\n")
    _age(path)
    registry = _registry(_family(tmp_path))
    assert materialize_partition(registry, pg, store_settings, "customer_files", DAY, group="files").success
    path.write_text("id,name\n1,second\n")  # same size: a corrected export, say
    _age(path, 1800)
    assert materialize_partition(registry, pg, store_settings, "customer_files", DAY, group="files").success
    assert family_rows(store_settings, "customer_files", "id", "name") == [(1, "first"), (1, "second")]
    assert len(bronze_objects(store_settings, "files/customer_files/")) == 2


def test_the_run_a_sensor_launches_loads_only_the_files_it_saw_at_rest(tmp_path, pg, pg_conn, store_settings):
    """Defect: the sensor asked for the partition because file a was stable; the run then
    loaded every file of the partition, b too, while b was still being written, and with
    after_load: move moved it: b's later rows never reached bronze."""
    write_input(tmp_path, "customers_20240301_a.csv", "id\n1\n")
    b = write_input(tmp_path, "customers_20240301_b.csv", "id\n2\n")
    registry = _registry(_family(tmp_path, date_pattern=r"_(\d{8})_", after_load="move"))
    _, cursor = sensor_tick(registry, "customer_files", pg, store_settings, None)
    with b.open("a") as f:
        f.write("3\n")  # b is still being written
    [request], cursor = sensor_tick(registry, "customer_files", pg, store_settings, cursor)
    with b.open("a") as f:
        f.write("4\n")
    assert launch(registry, request, "customer_files", pg, store_settings).success
    assert family_rows(store_settings, "customer_files", "id") == [(1,)]
    assert b.exists(), "a file still being written was moved"
    assert not (tmp_path / "customers_20240301_a.csv").exists()
    # b comes to rest: the next ticks load all of it
    requests, _ = _ticks(registry, "customer_files", pg, store_settings, cursor)
    for request in requests:
        assert launch(registry, request, "customer_files", pg, store_settings).success
    assert family_rows(store_settings, "customer_files", "id") == [(1,), (2,), (3,), (4,)]


def test_a_manual_run_skips_files_still_changing_and_says_so(tmp_path, pg, store_settings):
    _age(write_input(tmp_path, "customers_20240301_a.csv", "id\n1\n"))
    write_input(tmp_path, "customers_20240301_b.csv", "id\n2\n")  # written just now
    registry = _registry(_family(tmp_path, date_pattern=r"_(\d{8})_"))
    result = materialize_partition(registry, pg, store_settings, "customer_files", DAY, group="files")
    [materialization] = result.asset_materializations_for_node("bronze__files__customer_files")
    assert materialization.metadata["files_skipped"].value == 1
    assert "still changing" in materialization.metadata["files"].value
    assert family_rows(store_settings, "customer_files", "id") == [(1,)]


def test_one_file_name_without_a_valid_date_does_not_block_the_family(tmp_path, pg, pg_conn, store_settings):
    """Defect: customers_20240230.csv (no such date) made the family's scan raise: every
    partition and every sensor tick of the family failed until someone deleted it."""
    write_input(tmp_path, "customers_20240230.csv", "id\n9\n")
    write_input(tmp_path, "customers_20240301.csv", "id\n1\n")
    registry = _registry(_family(tmp_path))
    requests, cursor = _ticks(registry, "customer_files", pg, store_settings)
    assert [r.partition_key for r in requests] == [DAY]
    assert launch(registry, requests[0], "customer_files", pg, store_settings).success
    assert family_rows(store_settings, "customer_files", "id") == [(1,)]
    failed = [r for r in tracking_runs(pg_conn) if r["status"] == "failed"]
    [bad] = failed
    assert bad["source_name"] == "customers_20240230.csv" and "20240230" in bad["error_message"]
    arrived = dt.datetime.fromtimestamp((tmp_path / "customers_20240230.csv").stat().st_mtime, dt.UTC).date()
    assert bad["execution_date"] == arrived
    # recorded once per file version, not on every tick
    _ticks(registry, "customer_files", pg, store_settings, cursor, ticks=3)
    assert len([r for r in tracking_runs(pg_conn) if r["status"] == "failed"]) == 1


def test_one_bad_file_does_not_hide_the_others_results(tmp_path, pg, pg_conn, store_settings):
    _age(write_input(tmp_path, "customers_20240301_a.csv", "id,name\n1,ann\n"))
    _age(write_input(tmp_path, "customers_20240301_b.csv", 'id,name\n2,"never closed\n'))
    family = _family(tmp_path, date_pattern=r"_(\d{8})_",
                     checks=[{"type": "not_null", "columns": ["name"]}])
    result = materialize_partition(_registry(family), pg, store_settings, "customer_files", DAY, group="files",
                                   raise_on_error=False)
    [materialization] = result.asset_materializations_for_node("bronze__files__customer_files")
    assert materialization.metadata["files_loaded"].value == 1
    assert materialization.metadata["files_failed"].value == 1
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["not_null_name"].passed and checks["stored_object_matches_record"].passed
    assert not checks["all_files_loaded"].passed
    assert "customers_20240301_b.csv" in str(checks["all_files_loaded"].metadata["failed_files"].value)
    assert family_rows(store_settings, "customer_files", "id") == [(1,)]


def test_a_failed_file_version_is_reported_once_and_a_manual_run_retries_it(tmp_path, pg, pg_conn, store_settings):
    """Defect: a file that failed was never tried again, its run key being used. The sensor
    still does not request a failed version again (it would fail the same way), but once
    the cause is fixed (here the family's pinned type), a manual materialization loads it."""
    _age(write_input(tmp_path, "customers_20240301.csv", "id,code\n1,A7\n"))
    strict = _registry(_family(tmp_path, column_types={"code": "int64"}))
    requests, cursor = _ticks(strict, "customer_files", pg, store_settings)
    for request in requests:
        assert not launch(strict, request, "customer_files", pg, store_settings).success
    assert family_rows(store_settings, "customer_files", "id") == []
    again, _ = _ticks(strict, "customer_files", pg, store_settings, cursor, ticks=2)
    assert again == []  # not requested again
    fixed = _registry(_family(tmp_path, column_types={"code": "string"}))
    assert materialize_partition(fixed, pg, store_settings, "customer_files", DAY, group="files").success
    assert family_rows(store_settings, "customer_files", "id", "code") == [(1, "A7")]


@pytest.mark.parametrize(("text", "kept"), [("1e400", "1e400"), ("-1e400", "-1e400"), ("1e-400", "1e-400")])
def test_csv_numbers_that_a_float_cannot_hold_keep_the_column_as_text(tmp_path, services, text, kept):
    """Defect: 1e400 was stored as inf and 1e-400 as 0.0."""
    from platform_assets.ingestion.file_ingestor import ingest_csv_file
    from tests.helpers import read_parquet

    path = write_input(tmp_path, "n.csv", f"id,x\n1,1.5\n2,{text}\n")
    ingest_csv_file(path, "n.parquet", "2024-03-01", services=services)
    assert read_parquet(services, "n.parquet").column("x").to_pylist() == ["1.5", kept]


def test_a_pinned_float_column_refuses_a_number_it_cannot_hold(tmp_path, services):
    from platform_assets.ingestion.errors import IngestionError
    from platform_assets.ingestion.file_ingestor import ingest_csv_file
    from platform_assets.ingestion.files.csv_reader import CsvOptions
    from platform_assets.ingestion.files.text_types import parse_pinned_type

    path = write_input(tmp_path, "n.csv", "id,x\n1,1.5\n2,1e400\n")
    options = CsvOptions(column_types={"x": parse_pinned_type("float64")})
    with pytest.raises(IngestionError, match=r"'1e400' of column 'x'"):
        ingest_csv_file(path, "n.parquet", "2024-03-01", options=options, services=services)


@pytest.mark.parametrize("layout", ["ndjson", "array"])
def test_json_numbers_that_a_float_cannot_hold_are_kept_as_their_text(tmp_path, services, layout):
    from platform_assets.ingestion.file_ingestor import ingest_json_file
    from tests.helpers import read_parquet

    records = ['{"id": 1, "x": 1.5}', '{"id": 2, "x": 1e400}', '{"id": 3, "x": 1e-400}']
    text = "\n".join(records) + "\n" if layout == "ndjson" else "[" + ",".join(records) + "]"
    path = write_input(tmp_path, "n.json", text)
    ingest_json_file(path, "n.parquet", "2024-03-01", services=services)
    assert read_parquet(services, "n.parquet").column("x").to_pylist() == ["1.5", "1e400", "1e-400"]

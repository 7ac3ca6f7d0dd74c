"""Files whose partition is outside the family's partitions (second adversarial pass)."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from tests.adversarial._files_support import family, registry, ticks
from tests.helpers import family_rows, launch, query, tracking_runs, write_input


@pytest.mark.parametrize("dated_by", ["name", "preserved_mtime"])
def test_a_file_dated_before_start_date_is_never_loaded_nor_reported(tmp_path, pg, pg_conn, store_settings,
                                                                      dated_by):
    """Promise: bad names/contents are recorded once per version (a ``failed`` run, a
    ``file_failures`` row) and never block the others; every file of the family is
    loaded or reported.

    The registry's ``start_date`` is 2024-03-01. A file dated 2024-02-29 - by its name
    (``date_pattern``), or, for a family dated by arrival, by an mtime kept by
    ``cp -p``/``rsync -t``/an unzipped archive - belongs to a partition that does not
    exist. The sensor logs it at INFO level on every tick and goes on
    (``file_assets._sensor``: ``continue``); no run, no failed tracking row, no
    ``file_failures`` row; no manual run can reach it either. The file is silently
    never loaded.
    """
    if dated_by == "name":
        fam = family(tmp_path)
        write_input(tmp_path, "customers_20240229.csv", "id\n1\n")
        write_input(tmp_path, "customers_20240301.csv", "id\n2\n")
    else:
        fam = family(tmp_path, date_pattern=None)
        old = write_input(tmp_path, "customers_a.csv", "id\n1\n")
        stamp = dt.datetime(2024, 2, 29, 12, tzinfo=dt.UTC).timestamp()
        os.utime(old, (stamp, stamp))
        write_input(tmp_path, "customers_b.csv", "id\n2\n")
    reg = registry(fam, start_date=dt.date(2024, 3, 1))
    requests, _ = ticks(reg, "customer_files", pg, store_settings, count=3)
    for request in requests:
        launch(reg, request, "customer_files", pg, store_settings)
    assert (2,) in family_rows(store_settings, "customer_files", "id")
    loaded = (1,) in family_rows(store_settings, "customer_files", "id")
    failures = query(pg_conn, "SELECT relative_path, error_message FROM data_platform.file_failures")
    failed_runs = [r["source_name"] for r in tracking_runs(pg_conn) if r["status"] == "failed"]
    assert loaded or failures or failed_runs, (
        "the file dated 2024-02-29 was neither loaded nor recorded anywhere (no failed run, no file_failures row)"
    )

"""What a family's scan takes for its files (second adversarial pass)."""

from __future__ import annotations

import os

from tests.adversarial._files_support import family, registry, ticks
from tests.helpers import family_rows, launch, query, write_input


def test_a_symlinked_directory_loads_every_file_twice(tmp_path, pg, pg_conn, store_settings):
    """Promise: each version of each file is loaded exactly once; a link to a file of the
    family is not loaded again under its own name (first pass:
    test_symlink_inside_the_directory_loads_the_same_file_twice, fixed in
    ``family_scan.scan_family``).

    Deliveries land in dated folders and a ``latest`` symlink points at the newest one
    (a common layout). With ``glob: "**/customers_*.csv"`` the scan matches
    ``2024-03-01/customers_20240301.csv`` and ``latest/customers_20240301.csv``. The fix
    for links only looks at the last component (``path.is_symlink()``): a file reached
    through a linked *directory* is not a symlink itself, so both paths are requested in
    one run and loaded into two objects: every row twice.
    """
    (tmp_path / "2024-03-01").mkdir()
    write_input(tmp_path / "2024-03-01", "customers_20240301.csv", "id\n1\n")
    os.symlink("2024-03-01", tmp_path / "latest")
    reg = registry(family(tmp_path, glob="**/customers_*.csv"))
    requests, _ = ticks(reg, "customer_files", pg, store_settings)
    for request in requests:
        launch(reg, request, "customer_files", pg, store_settings)
    ledger = query(pg_conn, "SELECT relative_path FROM data_platform.ingested_files ORDER BY 1")
    assert family_rows(store_settings, "customer_files", "id") == [(1,)], f"loaded as {ledger}"

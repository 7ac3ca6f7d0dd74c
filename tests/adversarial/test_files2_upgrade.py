"""Upgrading the platform with files already loaded (second adversarial pass)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from tests.adversarial._files_support import family, registry, ticks
from tests.helpers import family_rows, launch, query, write_input

PROJECT = Path(__file__).resolve().parents[2]
PREVIOUS = "2ffc265"  # the release before file versions (ledger rows without relative_path)


def _previous_release(target: Path) -> Path:
    done = subprocess.run(["git", "archive", PREVIOUS, "platform_assets", "platform_resources", "sql"],
                          cwd=PROJECT, capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"the previous release {PREVIOUS} is not in this clone's history (a shallow clone?)")
    archive = done.stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def test_files_loaded_by_the_previous_release_are_loaded_again_after_the_upgrade(tmp_path, pg, pg_conn,
                                                                                 store_settings):
    """Promise: each version of each file of a family is loaded exactly once; the sensor
    cursor of an older version loads nothing twice (README: "a reset sensor cursor loads
    nothing twice").

    The previous release (2ffc265) loads customers_20240301.csv of the family (ledger row:
    family, absolute file_path, size, mtime, MD5; no ``relative_path``, a column added by
    sql/008). After the upgrade the file is still in the directory (``after_load: leave``,
    the default). ``file_ledger.is_loaded`` looks only at ``relative_path``, so rows of the
    previous release never count: the new sensor requests the file again and the run
    loads it into a second object (new key scheme): bronze holds every row twice.
    """
    data = tmp_path / "data"
    data.mkdir()
    write_input(data, "customers_20240301.csv", "id,name\n1,ann\n2,bob\n")
    old = _previous_release(tmp_path / "previous")
    script = textwrap.dedent(f"""
        from platform_assets.file_partitions import load_partition
        from platform_assets.ingestion.services import Services
        from platform_assets.registry import FileFamily, Registry
        from platform_resources.config import ObjectStoreSettings, PostgresSettings
        from platform_resources.object_store import ObjectStore
        import datetime as dt
        store = ObjectStoreSettings(endpoint_url={store_settings.endpoint_url!r}, access_key="test-access",
                                    secret_key="test-secret", buckets={dict(store_settings.buckets)!r})
        pg = PostgresSettings(host={pg.host!r}, port={pg.port!r}, user={pg.user!r}, password={pg.password!r},
                              dbname={pg.dbname!r})
        services = Services(source=pg, platform=pg, store=ObjectStore(store.client(), store.endpoint_url),
                            bronze_bucket=store.buckets["bronze"])
        family = FileFamily(name="customer_files", directory={str(data)!r}, glob="customers_*.csv*", format="csv",
                            date_pattern=r"_(\\d{{8}})", date_format="%Y%m%d")
        registry = Registry(start_date=dt.date(2024, 3, 1), files=[family])
        print([r["status"] for r in load_partition(family, registry, "2024-03-01", services)])
    """)
    env = {**os.environ, "PYTHONPATH": str(old)}
    done = subprocess.run([sys.executable, "-c", script], cwd=old, env=env, capture_output=True, text=True,
                          timeout=60)
    assert "['success']" in done.stdout, done.stdout + done.stderr[-2000:]
    assert family_rows(store_settings, "customer_files", "id") == [(1,), (2,)]

    # the upgrade: this release's sensor on the same directory (a fresh cursor)
    reg = registry(family(data))
    requests, _ = ticks(reg, "customer_files", pg, store_settings, count=3)
    for request in requests:
        launch(reg, request, "customer_files", pg, store_settings)
    ledger = query(pg_conn, "SELECT relative_path, object_key FROM data_platform.ingested_files ORDER BY id")
    assert family_rows(store_settings, "customer_files", "id") == [(1,), (2,)], (
        f"loaded again after the upgrade; ledger: {ledger}"
    )

"""A version's object holds that version (second adversarial pass)."""

from __future__ import annotations

import hashlib

from platform_assets.ingestion.files.family_load import load_family_partition
from platform_assets.ingestion.partitions.files import VERSION_DIGITS
from platform_assets.ingestion.tracking import run_scope
from tests.adversarial._files_support import age, family, registry
from tests.helpers import bronze_objects, query, write_input


def test_a_file_rewritten_after_it_was_hashed_is_stored_under_the_earlier_versions_name(
        tmp_path, pg, pg_conn, store_settings, services, monkeypatch):
    """Promise: each version (path + content MD5) is loaded into its own object (key with
    the path and MD5 prefix), with exact values; the ledger records that version.

    A manual run: ``_load_one`` hashes a.csv (``_content_md5``: version A, unchanged
    since the scan), then starts the tracking run; only then does ``load_file`` take the
    file's status (``before``) and convert it. The producer rewrites the file in that
    gap (here when the ``running`` row is inserted) with version B. ``load_file`` sees
    no change between its own ``before`` and ``after`` and, trusting
    ``request.content_md5``, does not hash what it reads: B's rows are stored under A's
    key and the ledger records A's MD5 with B's size and mtime. The family's sensor
    then finds the ledger row by (size, mtime, ctime), takes the file for version A,
    loaded: A's rows are in no object, and version A, if delivered again, is skipped.
    """
    path = write_input(tmp_path, "customers_20240302_a.csv", "id\n1\n")
    age(path)
    version_a = hashlib.md5(path.read_bytes()).hexdigest()
    fam = family(tmp_path)
    spec = fam.spec(registry(fam))

    real_start = run_scope.run_records.start_run

    def start_then_producer_rewrites(*args, **kwargs):
        run_id = real_start(*args, **kwargs)
        path.write_text("id\n7\n")  # version B, same size
        return run_id

    monkeypatch.setattr(run_scope.run_records, "start_run", start_then_producer_rewrites)
    load_family_partition(spec, "2024-03-02", services)
    monkeypatch.undo()

    ledger = query(pg_conn, "SELECT content_md5, object_key FROM data_platform.ingested_files")
    stored = {key: table.column("id").to_pylist() for key, table in bronze_objects(store_settings, "files/").items()}
    for md5, key in ledger:
        assert not (md5 == version_a and stored.get(key) == [7]), (
            f"the object named for version {version_a[:VERSION_DIGITS]} ({key}) holds version B's rows "
            f"{stored.get(key)}; ledger: {ledger}"
        )

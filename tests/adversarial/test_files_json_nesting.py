"""Found by an attack test: deeply nested JSON. The README promises bad input gets a specific error and a
``failed`` row, and every stored object is a complete, readable Parquet file."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from platform_assets.definitions import build_definitions
from platform_assets.registry import FileFamily, Registry
from tests.helpers import dagster_resources, query, tracking_runs, write_input

DS = "2024-01-01"
PROJECT = Path(__file__).resolve().parents[2]


def test_deeply_nested_ndjson_crashes_the_process(tmp_path, pg, pg_conn, store_settings):
    """Promise (README, Bad input): malformed or unusable JSON gets a
    SchemaDetectionError/IngestionError naming the file, a ``failed`` tracking row, and
    one bad file never stops the others.

    A 40 KB NDJSON line whose value is 20,000 nested arrays (``[[[...1...]]]``) kills
    the Python process with SIGSEGV inside pyarrow's JSON reader (the NDJSON fast path,
    ``json_fast.fast_ndjson_batches``) - no exception, no ``failed`` row (it stays
    ``running``), and in Dagster the whole run worker dies, taking every other file of
    the partition with it. The same value in a JSON array file gets a clean error
    (Python's RecursionError, wrapped).
    """
    depth = 20_000
    path = write_input(tmp_path, "deep.ndjson", '{"id": 1, "x": ' + "[" * depth + "1" + "]" * depth + "}\n")
    script = textwrap.dedent(
        f"""
        from platform_assets.ingestion.errors import IngestionError
        from platform_assets.ingestion.file_ingestor import ingest_json_file
        try:
            ingest_json_file({str(path)!r}, "files/deep.parquet", {DS!r})
        except IngestionError as e:
            print("refused:", str(e)[:200])
        """
    )
    env = {
        **os.environ,
        "PGHOST": pg.host, "PGPORT": str(pg.port), "PGUSER": pg.user, "PGDATABASE": pg.dbname,
        "MINIO_ENDPOINT": store_settings.endpoint_url, "MINIO_ACCESS_KEY": store_settings.access_key,
        "MINIO_SECRET_KEY": store_settings.secret_key, "BRONZE_BUCKET": store_settings.buckets["bronze"],
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60
    )
    statuses = [r["status"] for r in tracking_runs(pg_conn, "deep.ndjson")]
    assert done.returncode == 0 and statuses == ["failed"], (
        f"process exit code {done.returncode} (-11 = SIGSEGV), tracking rows {statuses}, "
        f"stderr tail: {done.stderr[-300:]!r}"
    )


def test_deeply_nested_json_is_stored_as_a_parquet_file_nobody_can_read(tmp_path, pg, pg_conn, store_settings):
    """Promises (README): nested objects become Parquet structs "when their shape is
    consistent"; objects appear in bronze only when complete; the asset checks read the
    stored object back.

    An NDJSON record with one field nested 100 objects deep loads "successfully" (tracking
    row ``success``, ledger entry), but the Parquet file written has a schema deeper than
    Parquet readers accept: pyarrow (the platform's own reader) fails with "Parquet schema
    too deeply nested". In the family asset the step then fails in its asset checks
    *after* the ledger recorded the file: the partition run fails, and every later run
    skips the file as already loaded - bronze keeps an object nobody can open.
    """
    depth = 100
    write_input(tmp_path, "deep_20240302.ndjson", '{"id": 1, "x": ' + '{"a": ' * depth + "1" + "}" * depth + "}\n")
    family = FileFamily(
        name="event_files", directory=str(tmp_path), glob="deep_*.ndjson", format="json",
        date_pattern=r"_(\d{8})\.", date_format="%Y%m%d", stable_seconds=0,
    )
    defs = build_definitions(Registry(start_date=dt.date(2024, 3, 1), files=[family]))
    result = dg.materialize(
        [defs.get_assets_def(dg.AssetKey(["bronze", "files", "event_files"]))],
        partition_key="2024-03-02",
        resources=dagster_resources(pg, store_settings),
        raise_on_error=False,
    )
    ledger = query(pg_conn, "SELECT object_key FROM data_platform.ingested_files")
    readable = None
    if ledger:
        body = store_settings.client().get_object(
            Bucket=store_settings.buckets["bronze"], Key=ledger[0][0])["Body"].read()
        local = tmp_path / "stored.parquet"
        local.write_bytes(body)
        try:
            pq.read_table(local)
            readable = True
        except OSError as e:
            readable = f"unreadable: {e}"
    assert result.success and readable is True, (
        f"run success={result.success}, ledger={ledger}, stored object {readable}"
    )

"""Found by an attack test: a load that fails must leave nothing in bronze (README, Bad input)."""

from __future__ import annotations

import pytest

from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.file_ingestor import ingest_json_file
from tests.helpers import read_parquet, tracking_runs, write_input

DS = "2024-01-01"


def _keys(services) -> list[str]:
    services.store.ensure_bucket(services.bronze_bucket)
    return sorted(o["Key"] for o in services.store.list_objects(services.bronze_bucket))


def test_column_name_with_nul_fails_after_the_object_was_stored(services, pg_conn, tmp_path):
    """Promise (README, Bad input): bad input gets an error, a ``failed`` tracking row
    "and nothing in bronze"; a failed reload leaves the previous object untouched.

    An NDJSON key holding ``\\u0000`` (legal JSON) converts fine, the object is uploaded,
    and only then ``tracking.commit_success`` fails: ``schema_history.schema_metadata`` is
    JSONB, which refuses ``\\u0000``. The run is marked ``failed`` ("the data was stored but
    recording the run failed") yet the object stays at its final key - here replacing the
    good object of an earlier load of the same file name. (A CSV header cell with a NUL
    byte does the same.)
    """
    key = "files/events.parquet"
    good = write_input(tmp_path, "events.ndjson", '{"id": 1, "ab": 2}\n')
    ingest_json_file(good, key, DS, services=services)
    assert read_parquet(services, key).to_pylist() == [{"id": 1, "ab": 2}]

    good.write_text('{"id": 7, "a\\u0000b": 8}\n')
    with pytest.raises(IngestionError):
        ingest_json_file(good, key, DS, services=services)

    assert [r["status"] for r in tracking_runs(pg_conn, "events.ndjson")] == ["success", "failed"]
    stored = read_parquet(services, key).to_pylist()
    assert stored == [{"id": 1, "ab": 2}], f"failed run replaced the bronze object with {stored}"

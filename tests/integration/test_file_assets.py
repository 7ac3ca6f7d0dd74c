"""File families through Dagster: partition materialization and the directory sensor."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg
import pyarrow as pa
import pytest

from platform_assets.definitions import build_definitions
from platform_assets.registry import FileFamily, Registry
from tests.helpers import bronze_objects, dagster_resources, launch, query

START = dt.date(2024, 3, 1)


def _family(directory, **overrides) -> FileFamily:
    settings = {
        "name": "customer_files",
        "directory": str(directory),
        "glob": "customers_*.csv*",
        "format": "csv",
        "date_pattern": r"_(\d{8})\.",
        "date_format": "%Y%m%d",
        "column_types": {"zip": "string"},
        "stable_seconds": 0,  # files written by the test are at rest for a manual run
        **overrides,
    }
    return FileFamily(**settings)


def _defs(family: FileFamily) -> dg.Definitions:
    return build_definitions(Registry(start_date=START, files=[family]))


def _materialize(family, pg, store_settings, partition, raise_on_error=True):
    defs = _defs(family)
    return dg.materialize(
        [defs.get_assets_def(dg.AssetKey(["bronze", "files", family.name]))],
        partition_key=partition,
        resources=dagster_resources(pg, store_settings),
        raise_on_error=raise_on_error,
    )


def _tick(family, pg, store_settings, cursor):
    sensor = _defs(family).resolve_sensor_def(f"{family.name}_sensor")
    with dg.build_sensor_context(cursor=cursor, resources=dagster_resources(pg, store_settings)) as context:
        result = sensor(context)
    return result.run_requests or [], result.cursor


def test_partition_loads_that_days_files(tmp_path, pg, pg_conn, store_settings):
    (tmp_path / "customers_20240302.csv").write_text("id,zip,amount\n1,01234,1.5\n2,,2\n")
    (tmp_path / "customers_20240303.csv").write_text("id,zip,amount\n3,99999,3\n")
    family = _family(tmp_path)
    result = _materialize(family, pg, store_settings, "2024-03-02")
    [(key, table)] = bronze_objects(store_settings, "files/customer_files/").items()
    assert key.startswith("files/customer_files/2024-03-02/customers_20240302.csv.")
    assert table.to_pylist() == [{"id": 1, "zip": "01234", "amount": 1.5}, {"id": 2, "zip": None, "amount": 2.0}]
    assert table.schema.field("zip").type == pa.string()
    metadata = result.asset_materializations_for_node("bronze__files__customer_files")[0].metadata
    assert metadata["files_loaded"].value == 1
    assert "customers_20240302.csv" in metadata["files"].value
    [(path, partition)] = query(pg_conn, "SELECT file_path, partition_key FROM data_platform.ingested_files")
    assert path.endswith("customers_20240302.csv") and partition == "2024-03-02"

    # Materializing again skips the file already loaded; nothing is loaded twice.
    again = _materialize(family, pg, store_settings, "2024-03-02")
    metadata = again.asset_materializations_for_node("bronze__files__customer_files")[0].metadata
    assert (metadata["files_loaded"].value, metadata["files_skipped"].value) == (0, 1)


def test_bad_file_fails_the_partition_but_loads_the_others(tmp_path, pg, pg_conn, store_settings):
    (tmp_path / "customers_20240302.csv").write_text("id,zip\n1,2\n")
    (tmp_path / "customers_20240302.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    result = _materialize(_family(tmp_path), pg, store_settings, "2024-03-02", raise_on_error=False)
    assert not result.success
    rows = dict(query(pg_conn, "SELECT source_name, status FROM data_platform.ingestion_metadata"))
    assert rows == {"customers_20240302.csv": "success", "customers_20240302.csv.gz": "failed"}


def test_sensor_requests_stable_new_files_once(tmp_path, pg, store_settings):
    family = _family(tmp_path)
    path = tmp_path / "customers_20240305.csv"
    path.write_text("id,zip\n1,00001\n")

    requests, cursor = _tick(family, pg, store_settings, None)
    assert requests == []  # seen once: it may still be written

    requests, cursor = _tick(family, pg, store_settings, cursor)
    assert [r.partition_key for r in requests] == ["2024-03-05"]
    first_key = requests[0].run_key

    # The run happens; later ticks (even with the cursor reset) do not ask again.
    assert launch(Registry(start_date=START, files=[family]), requests[0], family.name, pg, store_settings).success
    assert _tick(family, pg, store_settings, cursor)[0] == []
    assert _tick(family, pg, store_settings, None)[0] == []
    _, cursor = _tick(family, pg, store_settings, None)
    assert _tick(family, pg, store_settings, cursor)[0] == []

    # A file still growing is not requested until it stops changing.
    with path.open("a") as f:
        f.write("2,00002\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    requests, cursor = _tick(family, pg, store_settings, cursor)
    assert requests == []
    requests, cursor = _tick(family, pg, store_settings, cursor)
    # Replaced content is a new file identity: requested again, with a new run key.
    assert [r.partition_key for r in requests] == ["2024-03-05"]
    assert requests[0].run_key != first_key


def test_sensor_uses_arrival_day_without_date_in_name(tmp_path, pg, store_settings):
    family = _family(tmp_path, name="event_files", glob="events*.*json*", format="json",
                     date_pattern=None, column_types={})
    path = tmp_path / "events.ndjson"
    path.write_text('{"a": 1}\n')
    arrival = dt.datetime(2024, 3, 7, 12, tzinfo=dt.timezone.utc).timestamp()
    os.utime(path, (arrival, arrival))
    _, cursor = _tick(family, pg, store_settings, None)
    requests, _ = _tick(family, pg, store_settings, cursor)
    assert [r.partition_key for r in requests] == ["2024-03-07"]


def test_sensor_surfaces_a_missing_directory(tmp_path, pg, store_settings):
    family = _family(tmp_path / "nope")
    with pytest.raises(Exception, match="does not exist"):
        _tick(family, pg, store_settings, None)


def test_a_file_dated_in_the_future_is_explained_on_the_tick_not_logged_as_an_error(
    tmp_path, pg, pg_conn, store_settings
):
    # Regression: such a file logged on every tick while the tick showed "0 runs requested".
    (tmp_path / "customers_20990101.csv").write_text("id,zip\n1,2\n")
    family = _family(tmp_path)
    sensor = _defs(family).resolve_sensor_def(f"{family.name}_sensor")
    cursor = None
    for _ in range(2):  # the first tick sees the file, the second sees it at rest
        with dg.build_sensor_context(cursor=cursor, resources=dagster_resources(pg, store_settings)) as context:
            result = sensor(context)
        cursor = result.cursor
    assert not result.run_requests
    assert "customers_20990101.csv" in result.skip_reason.skip_message and "2099-01-01" in result.skip_reason.skip_message
    assert "does not exist yet" in result.skip_reason.skip_message

"""Found by an attack test: JSON date/timestamp inference (README, Reading files -> Types).

Promise: "Top-level JSON string fields follow the same date and timestamp rules, decided
over the whole file: a field whose every value is an ISO date becomes a date, ISO
timestamps become timestamps (...)"; a field that mixes dates and timestamps, or holds a
value that is not an ISO date/timestamp, stays text holding the strings as written. The
NDJSON fast path and the exact path must give the same content the same types and values.

The fast path (``json_fast._TemporalFields``) decides a field's type on the first streamed
block (1 MiB) with the ISO patterns, and later blocks only go through Arrow's
``cast(string -> timestamp)``. Arrow's parser accepts more than the ISO patterns: for a naive
timestamp column a bare date ``2024-03-02`` (made midnight) and an hour-only
``2024-03-02T10``; for a zoned one ``2024-03-02T10Z`` / ``2024-03-02T10+05``. Such a late
value is silently converted: the NDJSON file gets a timestamp column (and the date string
``"2024-03-02"`` becomes ``2024-03-02 00:00:00``), while the same records as a JSON array
(exact path, decided over every value) stay text holding the strings as written.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from platform_assets.ingestion.files.convert import convert_json
from tests.helpers import write_input

# Enough records that the fast path streams several 1 MiB blocks, the late value in the last.
EARLY_RECORDS = 60_000


def _convert(tmp_path, name: str, text: str) -> pa.Table:
    path = write_input(tmp_path, name, text)
    convert_json(path, tmp_path / f"{name}.parquet")
    return pq.read_table(tmp_path / f"{name}.parquet")


@pytest.mark.parametrize(
    ("early", "late"),
    [
        ("2024-03-01T10:00:00", "2024-03-02"),  # a date among naive timestamps
        ("2024-03-01T10:00:00", "2024-03-02T10"),  # hour only: not the ISO pattern
        ("2024-03-01T10:00:00Z", "2024-03-02T10Z"),
        ("2024-03-01T10:00:00Z", "2024-03-02T10+05"),
    ],
)
def test_a_late_non_iso_timestamp_value_is_converted_on_the_ndjson_fast_path(tmp_path, early, late):
    records = [{"id": i, "v": early} for i in range(EARLY_RECORDS)] + [{"id": EARLY_RECORDS, "v": late}]
    ndjson = "".join(json.dumps(r) + "\n" for r in records)
    assert len(ndjson.encode()) > 2 * 1024 * 1024  # several fast-path blocks

    exact = _convert(tmp_path, "same.json", json.dumps(records))
    # The exact path: not every value is one ISO kind -> text, strings as written.
    assert exact.schema.field("v").type == pa.string()
    assert exact.column("v").to_pylist()[-1] == late

    fast = _convert(tmp_path, "same.ndjson", ndjson)
    assert str(fast.schema.field("v").type) == str(exact.schema.field("v").type), (
        f"NDJSON gives {fast.schema.field('v').type}, the same records as an array give "
        f"{exact.schema.field('v').type}; the late value {late!r} became {fast.column('v').to_pylist()[-1]!r}"
    )
    assert fast.column("v").to_pylist()[-1] == late


@pytest.mark.parametrize("late", ["2024-03-02", "2024-03-02T10", "2024-03-02 10+05"])
def test_a_late_value_that_is_not_an_iso_timestamp_keeps_a_csv_column_as_text(tmp_path, late):
    """The same break in CSV (found with the JSON one): the first block infers a timestamp
    column, pyarrow's parser then took a later bare date or hour-only time silently."""
    import pyarrow.parquet as pq

    from platform_assets.ingestion.files.convert import convert_csv
    from platform_assets.ingestion.files.csv_reader import CsvOptions

    path = tmp_path / "late.csv"
    path.write_text("id,at\n" + "".join(f"{i},2024-03-01 10:00:00\n" for i in range(200_000)) + f"200000,{late}\n")
    convert_csv(path, tmp_path / "late.parquet", CsvOptions())
    table = pq.read_table(tmp_path / "late.parquet")
    assert table.schema.field("at").type == pa.string()
    assert table.column("at").to_pylist()[-2:] == ["2024-03-01 10:00:00", late]

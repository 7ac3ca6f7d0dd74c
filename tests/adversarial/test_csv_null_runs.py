"""A column whose values stop for a while: a read block holding only its nulls.

The CSV rows stream in blocks (``memory.STREAM_BLOCK_BYTES``). A block in which an
integer, float, boolean or date column held only empty fields made the exact
conversion report a value that "does not fit" (``None``) and the whole column was
read again as text: the same file typed differently by where its gaps fall.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from platform_assets.ingestion.files.convert import convert_csv
from platform_assets.ingestion.files.csv_reader import CsvOptions
from platform_assets.ingestion.files.text_types import TIMESTAMP_UTC, convert_strict


@pytest.mark.parametrize("arrow_type", [pa.int64(), pa.float64(), pa.bool_(), pa.date32(), TIMESTAMP_UTC])
def test_a_batch_of_nulls_converts_to_nulls(arrow_type):
    converted = convert_strict(pa.array([None, None], pa.string()), arrow_type, "c")

    assert converted.type == arrow_type and converted.null_count == 2


def test_a_block_without_values_keeps_the_columns_types(tmp_path):
    rows = ["id,n,x,ok,day", "1,5,1.5,true,2024-01-02"]
    rows += [f"{i}," + ",,," for i in range(2, 40_000)]
    rows += ["40000,7,2.5,false,2024-01-03"]
    path = tmp_path / "gaps.csv"
    path.write_text("\n".join(rows) + "\n")
    dest = tmp_path / "gaps.parquet"

    converted = convert_csv(path, dest, CsvOptions(block_size=64, stream_block_size=64 * 1024))

    table = pq.read_table(dest)
    assert converted.schema.types[1:] == [pa.int64(), pa.float64(), pa.bool_(), pa.date32()]
    assert table.column("n").drop_null().to_pylist() == [5, 7]
    assert table.num_rows == 40_000

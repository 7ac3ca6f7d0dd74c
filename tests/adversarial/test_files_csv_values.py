"""Found by an attack test: CSV values that land in bronze different from the file's text.

Every test loads a file through the guide's ``ingest_csv_file`` (real PostgreSQL and
S3 server on loopback) and reads the stored Parquet object back.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from platform_assets.ingestion.errors import SchemaDetectionError
from platform_assets.ingestion.file_ingestor import ingest_csv_file
from platform_assets.ingestion.files.csv_reader import CsvOptions
from tests.helpers import read_parquet, tracking_runs, write_input

DS = "2024-01-01"


def test_pinned_integer_column_accepts_hexadecimal_text(services, pg_conn, tmp_path):
    """Promise (README, Types): "a value that does not fit a pinned type fails the file".

    ``0x10`` is not an integer literal (the inference's own INTEGER pattern rejects it,
    and an unpinned column holding it stays text), yet a column pinned ``int64`` loads
    it as 16: pyarrow's string->int cast parses hexadecimal and ``text_types.convert``
    only screens leading zeros (``0x`` is not ``0[0-9]``).
    """
    path = write_input(tmp_path, "pinned.csv", "id,qty\n1,0x10\n2,0X1F\n")
    key = "files/pinned.parquet"
    with pytest.raises(SchemaDetectionError, match="0x10"):
        result = ingest_csv_file(
            path, key, DS, options=CsvOptions(column_types={"qty": pa.int64()}), services=services
        )
        stored = read_parquet(services, key).column("qty").to_pylist()
        pytest.fail(f"loaded as {result['status']}: text '0x10','0X1F' stored as {stored}")
    assert [r["status"] for r in tracking_runs(pg_conn)] == ["failed"]


def test_inferred_integer_column_turns_later_hex_value_into_a_number(services, tmp_path):
    """Promise (README, Types): "A value that stops fitting its inferred type later in the
    file turns that column into text (never a truncation)".

    The column is inferred int64 from the first block; a later block holds ``0x1F``
    (text that, in the first block, would have kept the column as text). Instead of
    widening, ``text_types.convert`` -> ``pc.cast`` silently stores 31.
    (Small blocks stand in for "beyond the first 4 MiB".)
    """
    rows = "".join(f"{i},{i}\n" for i in range(300))
    path = write_input(tmp_path, "late_hex.csv", "id,code\n" + rows + "300,0x1F\n")
    key = "files/late_hex.parquet"
    ingest_csv_file(path, key, DS, options=CsvOptions(block_size=1024), services=services)
    table = read_parquet(services, key)
    last = table.column("code").to_pylist()[-1]
    assert (table.schema.field("code").type, last) == (pa.string(), "0x1F"), (
        f"column stored as {table.schema.field('code').type}, last value {last!r} (file text: '0x1F')"
    )


def test_float_column_rounds_integers_beyond_2_pow_53(services, tmp_path):
    """Promise (README, Types): columns "converted exactly ... (never a truncation)";
    "integers beyond 64 bits stay text". The JSON reader applies the same rule to
    floats (``json_types.JType.float_safe``: an integer beyond 2^53 mixed with
    floats becomes text, never an inexact float).

    In CSV a column holding ``1.5`` and ``9007199254740993`` is inferred float64 and
    the integer is stored as 9007199254740992 - a different number. The same values
    in NDJSON are kept exactly (as text).
    """
    path = write_input(tmp_path, "amounts.csv", "id,amount\n1,1.5\n2,9007199254740993\n")
    key = "files/amounts.parquet"
    ingest_csv_file(path, key, DS, services=services)
    stored = read_parquet(services, key).column("amount").to_pylist()[1]
    assert str(stored) == "9007199254740993", (
        f"file text 9007199254740993 stored as {stored!r} ({int(stored)})"
    )

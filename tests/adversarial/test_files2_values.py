"""Values reach bronze exactly, malformed input is refused (second adversarial pass)."""

from __future__ import annotations

import pytest

from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.file_ingestor import ingest_csv_file, ingest_json_file
from platform_assets.ingestion.files.csv_reader import CsvOptions
from tests.helpers import read_parquet, write_input


def test_ndjson_decimal_too_small_for_a_float_without_exponent_becomes_zero(tmp_path, services):
    """Promise: numbers are never silently changed (values a float64 cannot hold keep
    their text, as ``1e-400`` does).

    ``0.000...0001`` with 400 zeros is the number 1e-401 written without an exponent.
    The NDJSON fast path guards only against exponents (``_FAST_PATH_HAZARDS``:
    ``[eE]-[0-9]{3}``) and ``_refuse_inexact_floats`` checks NaN and magnitudes >= 2^53,
    never a non-zero number read as 0: pyarrow stores 0.0. (The exact path, a JSON
    array, and CSV all keep it as text.)
    """
    tiny = "0." + "0" * 400 + "1"
    path = write_input(tmp_path, "n.json", f'{{"id": 1, "x": 1.5}}\n{{"id": 2, "x": {tiny}}}\n')
    ingest_json_file(path, "n.parquet", "2024-03-01", services=services)
    values = read_parquet(services, "n.parquet").column("x").to_pylist()
    assert values[1] != 0.0, f"{tiny[:12]}...1 was stored as {values[1]!r}"


def test_ndjson_line_holding_two_objects_is_loaded_as_two_rows(tmp_path, services, pg_conn):
    """Promise: malformed JSON gets a SchemaDetectionError, a ``failed`` tracking row and
    nothing in bronze; NDJSON is one object per line.

    ``{"id": 1}{"id": 2}`` on one line is not NDJSON (the exact path says "line 1 is
    not valid JSON (Extra data ...)"). pyarrow's reader on the fast path accepts it and
    stores two rows; whether the file loads or fails depends on whether another line
    happens to send it down the exact path (a line ``null``, an exponent ``e-400``).
    """
    path = write_input(tmp_path, "two.json", '{"id": 1}{"id": 2}\n{"id": 3}\n')
    with pytest.raises(IngestionError):
        result = ingest_json_file(path, "two.parquet", "2024-03-01", services=services)
        pytest.fail(f"loaded {result['row_count']} rows from a malformed NDJSON line "
                    f"{read_parquet(services, 'two.parquet').to_pylist()}")


def test_one_column_csv_skips_empty_lines_as_pandas_and_python_do(tmp_path, services):
    """Reading rule (README, "Reading rules"): empty lines are skipped, in a one-column
    file too, as ``pandas.read_csv`` and Python's csv module read them.

    The second adversarial pass reported that ``x\\n1\\n\\n3\\n`` (how pandas writes a
    one-column frame holding a missing value) loads 2 rows, not 3. Both readings exist;
    we keep the one the common readers share (an editor's trailing empty line is then
    not a row) and say so. A NULL in a one-column file is a value from ``null_values``.
    """
    path = write_input(tmp_path, "one.csv", "code\n1\n\n3\n")
    ingest_csv_file(path, "one.parquet", "2024-03-01", services=services)
    assert read_parquet(services, "one.parquet").column("code").to_pylist() == [1, 3]
    path = write_input(tmp_path, "two.csv", "code\n1\nNULL\n3\n")
    ingest_csv_file(path, "two.parquet", "2024-03-01", services=services, options=CsvOptions(null_values=("", "NULL")))
    assert read_parquet(services, "two.parquet").column("code").to_pylist() == [1, None, 3]

"""Type inference and strict conversion of text columns (``ingestion.text_types``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from platform_assets.ingestion.files.text_types import (
    TIMESTAMP,
    TIMESTAMP_UTC,
    Widen,
    convert,
    infer_type,
    parse_pinned_type,
)

UTC = dt.timezone.utc


def text(*values: str | None) -> pa.Array:
    return pa.array(list(values), type=pa.string())


# --------------------------------------------------------------------------- infer_type


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # booleans, any case
        (["true", "FALSE", "True", None], pa.bool_()),
        (["yes", "no"], pa.string()),
        # integers; missing values keep the column integer
        (["1", None, "-3", "0", "42"], pa.int64()),
        (["9223372036854775807", "-9223372036854775808"], pa.int64()),
        # beyond int64: text, never an inexact float
        (["9223372036854775808"], pa.string()),
        (["99999999999999999999", "1"], pa.string()),
        (["-12345678901234567890"], pa.string()),
        # leading zeros: text (codes, zip codes)
        (["007", "8"], pa.string()),
        (["01234", "90210"], pa.string()),
        (["-01"], pa.string()),
        (["00.5"], pa.string()),
        # floats (an int and a float together are float)
        (["0.5", "1e3", "-2.5E-3", ".5", "1.", "nan", "inf", "Infinity"], pa.float64()),
        (["1", "1.5"], pa.float64()),
        (["0", "0.0"], pa.float64()),
        # dates
        (["2024-02-29", "2023-12-31"], pa.date32()),
        (["2024-02-30"], pa.string()),  # looks like a date, is not one
        (["2023-02-29"], pa.string()),
        # timestamps: naive when none has an offset, UTC when all have one
        (["2024-01-01T10:00:00", "2024-01-01 10:00", "2024-01-01T10:00:00.123456"], TIMESTAMP),
        (["2024-01-01T10:00:00Z", "2024-01-01T10:00:00+02:00", "2024-01-01T10:00:00-0530"], TIMESTAMP_UTC),
        (["2024-01-01T10:00:00+02:00", "2024-01-01T10:00:00"], pa.string()),  # mixed
        (["2024-01-01T10:00:00.1234567"], pa.string()),  # more than microseconds
        (["2024-01-01", "2024-01-01T10:00:00"], pa.string()),  # date and timestamp mixed
        # anything else
        (["1", "x"], pa.string()),
        (["", "1"], pa.string()),  # a quoted empty field is an empty string, not null
        ([None, None], pa.string()),
        ([], pa.string()),
    ],
)
def test_infer_type(values, expected):
    assert infer_type(text(*values)) == expected


def test_inferred_type_converts_exactly():
    values = text("1", None, "-3", "9223372036854775807")
    t = infer_type(values)
    assert convert(values, t, "n").to_pylist() == [1, None, -3, 9223372036854775807]


def test_zoned_timestamps_are_converted_to_utc():
    values = text("2024-01-01T10:00:00+02:00", "2024-01-01T23:30:00Z", "2024-01-01T00:00:00-05:00")
    assert infer_type(values) == TIMESTAMP_UTC
    assert convert(values, TIMESTAMP_UTC, "t").to_pylist() == [
        dt.datetime(2024, 1, 1, 8, 0, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 23, 30, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 5, 0, tzinfo=UTC),
    ]


def test_naive_timestamps_stay_naive():
    values = text("2024-01-01T10:00:00", "2024-01-02 11:30:15.25")
    converted = convert(values, TIMESTAMP, "t").to_pylist()
    assert converted == [dt.datetime(2024, 1, 1, 10, 0), dt.datetime(2024, 1, 2, 11, 30, 15, 250000)]
    assert all(v.tzinfo is None for v in converted)


# ------------------------------------------------------------------------------ convert


@pytest.mark.parametrize(
    ("values", "arrow_type", "bad"),
    [
        (["1", "x"], pa.int64(), "x"),
        (["1", "007"], pa.int64(), "007"),  # would silently become 7
        (["1", "1.5"], pa.int64(), "1.5"),  # would be truncated
        (["1", "9223372036854775808"], pa.int64(), "9223372036854775808"),
        (["1", "2147483648"], pa.int32(), "2147483648"),
        (["1.5", "1.5.5"], pa.float64(), "1.5.5"),
        (["0.5", "01.5"], pa.float64(), "01.5"),
        (["true", "maybe", None], pa.bool_(), "maybe"),
        (["true", "1"], pa.bool_(), "1"),
        (["2024-02-28", "2024-02-30"], pa.date32(), "2024-02-30"),
        (["12.50", "12.505"], pa.decimal128(12, 2), "12.505"),  # would be rounded
        (["1", "1234567890123"], pa.decimal128(12, 2), "1234567890123"),  # too many digits
        (["2024-01-01T10:00:00", "2024-01-01T10:00:00+02:00"], TIMESTAMP, "2024-01-01T10:00:00+02:00"),
        (["2024-01-01T10:00:00Z", "2024-01-01T10:00:00"], TIMESTAMP_UTC, "2024-01-01T10:00:00"),
    ],
)
def test_convert_raises_widen_naming_the_first_bad_value(values, arrow_type, bad):
    with pytest.raises(Widen) as excinfo:
        convert(text(*values), arrow_type, "col")
    assert excinfo.value.column == "col"
    assert excinfo.value.value == bad
    assert "'col'" in str(excinfo.value) and repr(bad) in str(excinfo.value)


@pytest.mark.parametrize(
    ("values", "arrow_type", "expected"),
    [
        (["1", None, "-2"], pa.int64(), [1, None, -2]),
        (["2147483647"], pa.int32(), [2147483647]),
        (["true", "False", "TRUE", None], pa.bool_(), [True, False, True, None]),
        (["0.5", "-1e3", None], pa.float64(), [0.5, -1000.0, None]),
        (["12.5", "3", "-0.99"], pa.decimal128(12, 2), [Decimal("12.50"), Decimal("3.00"), Decimal("-0.99")]),
        (["2024-02-29"], pa.date32(), [dt.date(2024, 2, 29)]),
    ],
)
def test_convert_exact_values(values, arrow_type, expected):
    result = convert(text(*values), arrow_type, "col")
    assert result.type == arrow_type
    assert result.to_pylist() == expected


def test_convert_to_string_returns_the_values_unchanged():
    values = text("007", "", None, "x")
    assert convert(values, pa.string(), "col") is values


# -------------------------------------------------------------------- parse_pinned_type


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("string", pa.string()),
        ("bool", pa.bool_()),
        ("int32", pa.int32()),
        ("int64", pa.int64()),
        (" INT64 ", pa.int64()),
        ("float32", pa.float32()),
        ("float64", pa.float64()),
        ("date", pa.date32()),
        ("timestamp", pa.timestamp("us")),
        ("timestamptz", pa.timestamp("us", tz="UTC")),
        ("decimal(12,2)", pa.decimal128(12, 2)),
        ("Decimal(12, 2)", pa.decimal128(12, 2)),
        ("decimal(38,0)", pa.decimal128(38, 0)),
        ("decimal(5,5)", pa.decimal128(5, 5)),
    ],
)
def test_parse_pinned_type(name, expected):
    assert parse_pinned_type(name) == expected


@pytest.mark.parametrize(
    "name",
    ["varchar", "integer", "decimal(39,2)", "decimal(2,3)", "decimal(0,0)", "decimal(12)", "decimal", ""],
)
def test_parse_pinned_type_rejects_unknown_names(name):
    with pytest.raises(ValueError) as excinfo:
        parse_pinned_type(name)
    message = str(excinfo.value)
    assert repr(name) in message
    assert "int64" in message and "decimal(p,s)" in message


def test_converting_a_csv_does_not_import_pandas(tmp_path):
    """pandas costs a fresh process a third of a second and ~40 MiB: a Python number
    handed to pyarrow imports it (it happened in the middle of every CSV load)."""
    import subprocess
    import sys

    source = tmp_path / "f.csv"
    source.write_text("id,x,ok,day,at\n1,1.5,true,2024-01-02,2024-01-02T03:04:05Z\n2,0,false,,\n")
    code = (
        "import sys, pathlib\n"
        "from platform_assets.ingestion.files.convert import convert_csv\n"
        "from platform_assets.ingestion.files.csv_reader import CsvOptions\n"
        f"convert_csv(pathlib.Path({str(source)!r}), pathlib.Path({str(tmp_path / 'f.parquet')!r}), CsvOptions())\n"
        "print('pandas' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False", result.stdout + result.stderr

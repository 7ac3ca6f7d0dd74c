"""quality.py: the declared rules evaluated on small local Parquet files."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from platform_assets import quality
from platform_assets.registry_checks import (
    AcceptedValuesCheck,
    NotNullCheck,
    PanderaCheck,
    RangeCheck,
    RowCountCheck,
    UniqueCheck,
)

UTC = dt.UTC


@pytest.fixture
def write(tmp_path):
    """Write a table (dict of columns or pa.Table) to a numbered Parquet file."""
    counter = iter(range(1000))

    def _write(data, row_group_size=None) -> Path:
        table = data if isinstance(data, pa.Table) else pa.table(data)
        path = tmp_path / f"part-{next(counter)}.parquet"
        pq.write_table(table, path, row_group_size=row_group_size)
        return path

    return _write


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(quality, "BATCH_ROWS", 2)


# --- row_count ---------------------------------------------------------------------------


def test_row_count_sums_every_file(write):
    files = [write({"a": [1, 2, 3]}), write({"a": [4]}), write({"a": pa.array([], pa.int64())})]
    outcome = quality.row_count(files, 1, None)
    assert outcome.passed
    assert outcome.details == {"row_count": 4, "min": 1, "max": None}
    assert outcome.failing_rows == 0 and outcome.sample == []


@pytest.mark.parametrize(
    ("minimum", "maximum", "passed"),
    [(4, 4, True), (5, None, False), (0, 3, False), (0, None, True)],
)
def test_row_count_bounds_are_inclusive(write, minimum, maximum, passed):
    files = [write({"a": [1, 2]}), write({"a": [3, 4]})]
    assert quality.row_count(files, minimum, maximum).passed is passed


def test_row_count_of_nothing(write):
    empty = write({"a": pa.array([], pa.int64())})
    assert not quality.row_count([empty], 1, None).passed
    assert quality.row_count([empty], 0, None).passed
    assert quality.row_count([], 0, 0).details["row_count"] == 0


def values(sample: list[dict]) -> list[dict]:
    """A sample's rows without their position (``_row``, ``_object``)."""
    return [{k: v for k, v in row.items() if k not in ("_row", "_object")} for row in sample]


def test_sample_names_the_rows_key_and_position(write):
    files = [write({"id": [7, 8], "a": [1, None]}), write({"id": [9], "a": [None]})]
    rows = quality.Rows(files, key_columns=["id"], object_keys=["postgres/t/d1/t.parquet", "postgres/t/d1/u.parquet"],
                        source_name="t")
    outcome = quality.evaluate(NotNullCheck(type="not_null", columns=["a"]), rows)
    assert outcome.sample == [
        {"_row": 2, "_object": "postgres/t/d1/t.parquet", "id": 8, "a": None},
        {"_row": 1, "_object": "postgres/t/d1/u.parquet", "id": 9, "a": None},
    ]


def test_a_check_on_a_missing_column_names_the_source_and_the_object(write):
    rows = quality.Rows([write({"b": [1]})], object_keys=["postgres/t/d1/t.parquet"], source_name="shop.orders")
    outcome = quality.evaluate(NotNullCheck(type="not_null", columns=["a"]), rows)
    error = outcome.details["error"]
    assert "source 'shop.orders'" in error and "postgres/t/d1/t.parquet" in error and "['a']" in error
    assert "registry" in error


# --- not_null ----------------------------------------------------------------------------


def test_not_null_passes_without_nulls(write):
    outcome = quality.not_null([write({"a": [1, 2], "b": ["x", "y"]})], ["a", "b"])
    assert (outcome.passed, outcome.failing_rows, outcome.sample) == (True, 0, [])


def test_not_null_counts_rows_with_a_null_in_any_column(write):
    files = [
        write({"id": [1, 2, 3], "a": [1, None, None], "b": ["x", "y", None], "other": [None] * 3}),
        write({"id": [4, 5], "a": [5, 6], "b": [None, "z"], "other": [1, 1]}),
    ]
    outcome = quality.not_null(files, ["a", "b"])
    assert not outcome.passed
    assert outcome.failing_rows == 3  # rows 2, 3 and 4; row 3 has two nulls but counts once
    assert outcome.sample == [
        {"_row": 2, "_object": "part-0.parquet", "a": None, "b": "y"},
        {"_row": 3, "_object": "part-0.parquet", "a": None, "b": None},
        {"_row": 1, "_object": "part-1.parquet", "a": 5, "b": None},
    ]


def test_not_null_over_batches_and_files(write, small_batches):
    files = [write({"a": [1, None, 3, None, 5]}), write({"a": [None, None, 8]})]
    outcome = quality.not_null(files, ["a"])
    assert outcome.failing_rows == 4
    assert [(r["_object"], r["_row"]) for r in outcome.sample] == [
        ("part-0.parquet", 2), ("part-0.parquet", 4), ("part-1.parquet", 1), ("part-1.parquet", 2)]
    assert values(outcome.sample) == [{"a": None}] * 4


def test_sample_is_capped_across_batches(write, small_batches):
    outcome = quality.not_null([write({"id": list(range(9)), "a": [None] * 9})], ["id", "a"])
    assert outcome.failing_rows == 9
    assert outcome.sample == [{"_row": i + 1, "id": i, "a": None} for i in range(quality.SAMPLE_ROWS)]


def test_missing_column_is_a_failed_outcome_with_the_error(write):
    files = [write({"a": [1]}), write({"b": [1]})]
    outcome = quality.evaluate(NotNullCheck(type="not_null", columns=["a"]), files)
    assert not outcome.passed
    assert outcome.failing_rows == 0
    assert "check 'not_null_a'" in outcome.details["error"]
    assert "columns ['a'] are not columns of the source (object part-1.parquet" in outcome.details["error"]
    assert "['b']" in outcome.details["error"]


# --- unique ------------------------------------------------------------------------------


def test_unique_passes_on_distinct_keys(write):
    outcome = quality.unique([write({"id": [1, 2]}), write({"id": [3]})], ["id"])
    assert outcome.passed and outcome.failing_rows == 0
    assert outcome.details == {"duplicate_keys": 0}


def test_unique_finds_duplicates_across_files_and_batches(write, small_batches):
    files = [write({"id": [1, 2, 3, 1]}), write({"id": [4, 1, 3]})]
    outcome = quality.unique(files, ["id"])
    assert not outcome.passed
    assert outcome.failing_rows == 5  # every row of a duplicated key: three 1s and two 3s
    assert outcome.details == {"duplicate_keys": 2}
    assert sorted(outcome.sample, key=lambda r: r["id"]) == [
        {"id": 1, "occurrences": 3},
        {"id": 3, "occurrences": 2},
    ]


def test_unique_composite_key(write):
    data = {"a": [1, 1, 2, 2, 1], "b": ["x", "y", "x", "x", "x"], "c": [0, 0, 0, 0, 0]}
    outcome = quality.unique([write(data)], ["a", "b"])
    assert not outcome.passed
    assert outcome.failing_rows == 4
    assert sorted(outcome.sample, key=lambda r: r["a"]) == [
        {"a": 1, "b": "x", "occurrences": 2},
        {"a": 2, "b": "x", "occurrences": 2},
    ]
    assert quality.unique([write({"a": [1, 1, 2], "b": ["x", "y", "x"]})], ["a", "b"]).passed


def test_unique_sample_values_are_printable(write):
    day = dt.date(2024, 1, 1)
    outcome = quality.unique([write({"d": [day, day]})], ["d"])
    assert outcome.sample == [{"d": "2024-01-01", "occurrences": 2}]


def test_unique_missing_column(write):
    outcome = quality.evaluate(UniqueCheck(type="unique", columns=["id", "nope"]), [write({"id": [1]})])
    assert not outcome.passed and "['nope']" in outcome.details["error"]


def test_unique_without_files_passes():
    assert quality.unique([], ["id"]).passed


def test_unique_on_an_empty_file_passes(write):
    assert quality.unique([write({"id": pa.array([], pa.int64())})], ["id"]).passed


# --- accepted_values ---------------------------------------------------------------------


def test_accepted_values_strings(write, small_batches):
    files = [write({"s": ["new", "paid", "lost"]}), write({"s": ["paid", "weird"]})]
    outcome = quality.accepted_values(files, "s", ["new", "paid"])
    assert not outcome.passed
    assert outcome.failing_rows == 2
    assert values(outcome.sample) == [{"s": "lost"}, {"s": "weird"}]
    assert outcome.details == {"accepted": ["new", "paid"]}
    assert quality.accepted_values(files, "s", ["new", "paid", "lost", "weird"]).passed


def test_accepted_values_numbers_cast_to_the_column_type(write):
    path = write({"n": pa.array([1, 2, 3], pa.int16())})
    assert quality.accepted_values([path], "n", [1, 2, 3]).passed
    outcome = quality.accepted_values([path], "n", [1, 2])
    assert (outcome.passed, outcome.failing_rows, values(outcome.sample)) == (False, 1, [{"n": 3}])


def test_accepted_values_on_a_string_column_compare_as_text(write):
    # Registry values may be numbers; on a text column they compare as their text.
    outcome = quality.accepted_values([write({"code": ["1", "2", "x"]})], "code", [1, 2])
    assert outcome.failing_rows == 1 and values(outcome.sample) == [{"code": "x"}]


def test_accepted_values_booleans(write):
    outcome = quality.accepted_values([write({"flag": [True, False, True]})], "flag", [True])
    assert outcome.failing_rows == 1 and values(outcome.sample) == [{"flag": False}]


# --- range -------------------------------------------------------------------------------


def test_range_numeric_inclusive_bounds(write, small_batches):
    files = [write({"x": [0.0, 5.0, 10.0]}), write({"x": [-0.5, 10.5, None]})]
    outcome = quality.value_range(files, "x", 0, 10)
    assert not outcome.passed
    assert outcome.failing_rows == 2  # nulls are not out of range
    assert values(outcome.sample) == [{"x": -0.5}, {"x": 10.5}]
    assert outcome.details == {"min": 0, "max": 10}
    assert quality.value_range(files[:1], "x", 0, 10).passed


def test_range_with_only_one_bound(write):
    path = write({"n": [1, 50, 100]})
    assert quality.value_range([path], "n", None, 50).failing_rows == 1
    assert quality.value_range([path], "n", 50, None).failing_rows == 1
    assert quality.value_range([path], "n", 1.0, None).passed


def test_range_decimal_column(write):
    amounts = pa.array([decimal.Decimal("0.99"), decimal.Decimal("1.00"), decimal.Decimal("99.99")], pa.decimal128(12, 2))
    outcome = quality.value_range([write({"amount": amounts})], "amount", 1, 50.5)
    assert outcome.failing_rows == 2
    assert values(outcome.sample) == [{"amount": "0.99"}, {"amount": "99.99"}]


def test_range_timestamp_with_string_bounds(write):
    stamps = pa.array(
        [dt.datetime(2023, 12, 31, 23, tzinfo=UTC), dt.datetime(2024, 1, 15, tzinfo=UTC), dt.datetime(2024, 2, 1, tzinfo=UTC)],
        pa.timestamp("us", tz="UTC"),
    )
    outcome = quality.value_range(
        [write({"ts": stamps})], "ts", "2024-01-01T00:00:00+00:00", "2024-01-31T23:59:59+00:00"
    )
    assert outcome.failing_rows == 2
    assert values(outcome.sample) == [{"ts": "2023-12-31 23:00:00+00:00"}, {"ts": "2024-02-01 00:00:00+00:00"}]


def test_range_date_with_string_bounds(write):
    days = pa.array([dt.date(2024, 1, 1), dt.date(2024, 3, 1)], pa.date32())
    outcome = quality.value_range([write({"d": days})], "d", "2024-01-01", "2024-02-01")
    assert outcome.failing_rows == 1 and values(outcome.sample) == [{"d": "2024-03-01"}]


def test_range_fractional_bound_on_an_integer_column(write):
    outcome = quality.value_range([write({"n": [0, 1, 2]})], "n", 0.5, None)
    assert outcome.failing_rows == 1 and values(outcome.sample) == [{"n": 0}]


def test_range_missing_column(write):
    check = RangeCheck(type="range", column="nope", min=0)
    outcome = quality.evaluate(check, [write({"x": [1]})])
    assert not outcome.passed and "['nope']" in outcome.details["error"]


# --- pandera -----------------------------------------------------------------------------


def test_pandera_passes_on_good_data(write):
    outcome = quality.pandera_schema([write({"amount": [1, 2, 3], "other": ["a", "b", "c"]})],
                                     "tests.quality_rules:positive_amount")
    assert outcome.passed and outcome.failing_rows == 0
    assert outcome.details == {"schema": "tests.quality_rules:positive_amount"}


def test_pandera_counts_failing_rows_over_files_and_batches(write, small_batches):
    files = [write({"amount": [1, -2, 3, -4, 5]}), write({"amount": [-6, 7]})]
    outcome = quality.pandera_schema(files, "tests.quality_rules:positive_amount")
    assert not outcome.passed
    assert outcome.failing_rows == 3
    assert [s["failure_case"] for s in outcome.sample] == ["-2", "-4", "-6"]
    assert {s["check"] for s in outcome.sample} == {"greater_than(0)"}
    assert {s["column"] for s in outcome.sample} == {"amount"}


def test_pandera_fails_when_a_required_column_is_missing(write):
    outcome = quality.pandera_schema([write({"amount": [1, 2]})], "tests.quality_rules:needs_missing_column")
    assert not outcome.passed


def test_pandera_reports_a_missing_column_in_the_sample(write):
    outcome = quality.pandera_schema([write({"amount": [1, 2]})], "tests.quality_rules:needs_missing_column")
    assert [(s["check"], s["failure_case"]) for s in outcome.sample] == [("column_in_dataframe", "not_there")]


def test_pandera_reference_that_does_not_resolve():
    with pytest.raises(ValueError, match="cannot load 'tests.quality_rules:nope'"):
        quality.load_object("tests.quality_rules:nope")
    with pytest.raises(ValueError, match="cannot load 'tests.no_such_module:x'"):
        quality.load_object("tests.no_such_module:x")
    assert quality.load_object("tests.quality_rules:NOT_A_SCHEMA") == 42


# --- evaluate dispatch -------------------------------------------------------------------


def test_evaluate_dispatches_each_declared_check(write):
    path = write({"id": [1, 2, 2], "s": ["a", "b", None], "amount": [5, -1, 3]})
    cases = [
        (RowCountCheck(type="row_count", min=1, max=2), False, 0),
        (NotNullCheck(type="not_null", columns=["s"]), False, 1),
        (UniqueCheck(type="unique", columns=["id"]), False, 2),
        (AcceptedValuesCheck(type="accepted_values", column="id", values=[1, 2]), True, 0),
        (RangeCheck(type="range", column="amount", min=0), False, 1),
        (PanderaCheck(type="pandera", schema="tests.quality_rules:positive_amount"), False, 1),
    ]
    for check, passed, failing in cases:
        outcome = quality.evaluate(check, [path])
        assert (outcome.passed, outcome.failing_rows) == (passed, failing), check.name


def test_evaluate_rejects_an_unknown_check(write):
    with pytest.raises(TypeError, match="unknown check"):
        quality.evaluate(object(), [write({"a": [1]})])

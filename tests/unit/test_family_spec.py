"""Pure rules of file families: a file's partition, its object key, which globs may share files."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from platform_assets.ingestion.partitions.files import (
    FamilySpec,
    check_object_key_pattern,
    file_stem,
    globs_may_overlap,
    partition_date,
)


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("customers_*.csv", "orders_*.csv", False),
        ("*.csv", "customers_*.csv*", True),
        ("a.csv", "*.csv", True),
        ("a.csv", "b.csv", False),
        ("sub/*.csv", "**/*.csv", True),
        ("x_[0-9].csv", "x_*.json", False),
        ("**/*.csv", "*.json", False),
        ("*", "anything.bin", True),
    ],
)
def test_globs_may_overlap(first: str, second: str, overlap: bool) -> None:
    assert globs_may_overlap(first, second) is overlap
    assert globs_may_overlap(second, first) is overlap


def _spec(**overrides: object) -> FamilySpec:
    values = {"name": "customer_files", "directory": Path("/in"), "glob": "customers_*.csv", "format": "csv",
              "date_pattern": r"_(\d{8})", "date_format": "%Y%m%d", "start_date": dt.date(2024, 3, 1)}
    return FamilySpec(**{**values, **overrides})


ARRIVED = dt.date(2024, 3, 5)


@pytest.mark.parametrize(
    ("name", "date", "problem"),
    [
        ("customers_20240302.csv", dt.date(2024, 3, 2), None),
        ("customers_x.csv", ARRIVED, None),  # no date in the name: the day it arrived
        ("customers_20240230.csv", ARRIVED, "is not a date"),
        ("customers_20240229.csv", ARRIVED, "before the registry's start_date 2024-03-01"),
        ("customers_\udcff.csv", ARRIVED, "is not valid UTF-8"),
    ],
)
def test_partition_date_of_a_file(name: str, date: dt.date, problem: str | None) -> None:
    found, why = partition_date(_spec(), name, name, ARRIVED)
    assert found == date
    assert (why is None) if problem is None else (problem in why)


def test_a_file_that_arrived_before_start_date_is_a_problem_too() -> None:
    _, why = partition_date(_spec(date_pattern=None), "customers_a.csv", "customers_a.csv", dt.date(2024, 2, 1))
    assert why is not None and "last modified 2024-02-01" in why


def test_object_keys_hold_file_and_version() -> None:
    spec = _spec()
    key = spec.object_key("2024-03-02", "east/customers_20240302.csv.gz", "0123456789abcdef" * 2)
    assert key == "files/customer_files/2024-03-02/east/customers_20240302.csv.gz.0123456789abcdef.parquet"
    assert file_stem("east/customers_20240302.CSV.GZ") == "customers_20240302"


@pytest.mark.parametrize(
    ("pattern", "refusal"),
    [
        ("files/{name}/{date}/{file}.{version}.parquet", None),
        ("files/{date}/{stem}/{file}.{version}.parquet", None),
        ("files/{name}/{date}/{file}.parquet", "must use {version}"),
        ("files/{name}/{date:.7}/{file}.{version}.parquet", "placeholders must be plain"),
        ("files/{name}/{date}/{file}.{version!r}.parquet", "placeholders must be plain"),
        ("files/{name}/{day}/{file}.{version}.parquet", "uses {day}"),
        ("files/{0}/{date}/{file}.{version}.parquet", "uses {0}"),
        ("files/{name/{date}", "not a valid pattern"),
    ],
)
def test_object_key_patterns(pattern: str, refusal: str | None) -> None:
    if refusal is None:
        check_object_key_pattern(pattern)
    else:
        with pytest.raises(ValueError, match=re.escape(refusal)):
            check_object_key_pattern(pattern)

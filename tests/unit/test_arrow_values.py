"""Zoned timestamps converted to Python without pyarrow's pandas path."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pyarrow as pa
import pyarrow.compute as pc

from platform_assets.ingestion.sink.arrow_values import python_value, python_values

UTC_US = pa.timestamp("us", tz="UTC")


def test_zoned_values_are_aware_in_their_zone() -> None:
    instants = pa.array([0, None, 86_400_000_001], pa.int64())
    utc = python_values(instants.cast(UTC_US))
    assert utc == [dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), None,
                   dt.datetime(1970, 1, 2, 0, 0, 0, 1, tzinfo=dt.timezone.utc)]
    tokyo = python_values(instants.cast(pa.timestamp("us", tz="Asia/Tokyo")))
    assert tokyo[0] == utc[0] and tokyo[0].utcoffset() == dt.timedelta(hours=9)
    assert tokyo[0].tzinfo == zoneinfo.ZoneInfo("Asia/Tokyo")


def test_fixed_offset_zones() -> None:
    [value] = python_values(pa.array([0], pa.int64()).cast(pa.timestamp("s", tz="+05:30")))
    assert value.utcoffset() == dt.timedelta(hours=5, minutes=30)
    assert value == dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    [value] = python_values(pa.array([0], pa.int64()).cast(pa.timestamp("s", tz="-03:00")))
    assert value.utcoffset() == -dt.timedelta(hours=3)


def test_other_types_are_pyarrows_values() -> None:
    values = pa.array([1, None], pa.int64())
    assert python_values(values) == [1, None]
    naive = pa.array([0], pa.int64()).cast(pa.timestamp("ms"))
    assert python_values(naive) == [dt.datetime(1970, 1, 1)]


def test_scalar_values() -> None:
    column = pa.chunked_array([pa.array([5, None, 7], pa.int64()).cast(UTC_US)])
    assert python_value(pc.max(column)) == dt.datetime(1970, 1, 1, 0, 0, 0, 7, tzinfo=dt.timezone.utc)
    assert python_value(pc.max(pa.array([None], pa.int64()).cast(UTC_US))) is None
    assert python_value(pc.max(pa.array([3, 4], pa.int64()))) == 4

"""The streaming merge that finds deleted keys (``postgres.key_sets.missing_keys``)."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_assets.ingestion.postgres import key_sets


def _batches(rows: list[tuple], schema: pa.Schema, rng: random.Random) -> list[pa.RecordBatch]:
    """``rows`` in batches of random sizes (empty ones too)."""
    out, start = [], 0
    while start < len(rows) or not out:
        size = rng.randint(0, 7)
        chunk = rows[start:start + size]
        out.append(pa.RecordBatch.from_pylist([dict(zip(schema.names, r)) for r in chunk], schema=schema))
        start += size
    return out


def _missing(old: list[tuple], new: list[tuple], schema: pa.Schema, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    tables = key_sets.missing_keys(iter(_batches(old, schema, rng)), iter(_batches(new, schema, rng)))
    return [tuple(r.values()) for t in tables for r in t.to_pylist()]


@settings(max_examples=200, deadline=None)
@given(
    old=st.sets(st.integers(-50, 50)), new=st.sets(st.integers(-50, 50)), seed=st.integers(0, 10**6),
    window=st.integers(1, 9),
)
def test_missing_integer_keys_equal_the_set_difference(old, new, seed, window):
    schema = pa.schema([("id", pa.int64())])
    key_sets.MAX_WINDOW_ROWS, saved = window, key_sets.MAX_WINDOW_ROWS
    try:
        got = _missing([(k,) for k in sorted(old)], [(k,) for k in sorted(new)], schema, seed)
    finally:
        key_sets.MAX_WINDOW_ROWS = saved
    assert got == [(k,) for k in sorted(old - new)]


@settings(max_examples=100, deadline=None)
@given(
    old=st.sets(st.tuples(st.text(max_size=3), st.integers(0, 3))),
    new=st.sets(st.tuples(st.text(max_size=3), st.integers(0, 3))),
    seed=st.integers(0, 10**6),
)
def test_missing_composite_text_keys_in_code_point_order(old, new, seed):
    old = {(a.replace("\x00", ""), b) for a, b in old}
    new = {(a.replace("\x00", ""), b) for a, b in new}
    schema = pa.schema([("name", pa.string()), ("n", pa.int32())])
    got = _missing(sorted(old), sorted(new), schema, seed)
    assert got == sorted(old - new)


def test_timestamp_keys_and_empty_sides():
    schema = pa.schema([("at", pa.timestamp("us", tz="UTC"))])
    day = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    keys = [(day + dt.timedelta(hours=h),) for h in range(5)]
    assert _missing(keys, keys[1:4], schema, 1) == [keys[0], keys[4]]
    assert _missing(keys, [], schema, 2) == keys
    assert _missing([], keys, schema, 3) == []


def test_the_new_set_is_read_only_as_far_as_needed():
    schema = pa.schema([("id", pa.int64())])
    read = []

    def new():
        for start in range(0, 1000, 10):
            read.append(start)
            yield pa.RecordBatch.from_pylist([{"id": i} for i in range(start, start + 10)], schema=schema)

    old = [pa.RecordBatch.from_pylist([{"id": 3}, {"id": 5}], schema=schema)]
    assert list(key_sets.missing_keys(iter(old), new())) == []
    assert len(read) <= 2

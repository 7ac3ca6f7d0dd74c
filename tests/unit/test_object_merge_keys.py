"""Which rows of a partition's previous object a replay keeps (``object_merge.kept_rows``).

Checked against a Python set of the written versions, for the numeric path (one
integer, date or timestamp column, held sorted) and the encoded path (anything else),
with NULL keys on either side (NULL matches NULL) and a key widened since."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from platform_assets.ingestion.sink.object_merge import (
    PreviousObject,
    VersionKeys,
    kept_rows,
)

TYPES = {
    "int64": (pa.int64(), lambda r: r.randint(-2**63, 2**63 - 1) if r.random() < 0.1 else r.randint(-50, 50)),
    "int32->int64": (pa.int32(), lambda r: r.randint(-50, 50)),
    "date": (pa.date32(), lambda r: dt.date(2024, 1, 1) + dt.timedelta(days=r.randint(0, 60))),
    "timestamp": (pa.timestamp("us", tz="UTC"),
                  lambda r: dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=r.randint(0, 90))),
    "text": (pa.string(), lambda r: r.choice(["a", "b", "", "é", "a b"]) + str(r.randint(0, 30))),
    "uint64": (pa.uint64(), lambda r: r.choice([0, 2**64 - 1, r.randint(0, 40)])),
}


def _values(rng, make, n, nulls):
    return [None if rng.random() < nulls else make(rng) for _ in range(n)]


@pytest.mark.parametrize("kind", sorted(TYPES))
@pytest.mark.parametrize("seed", range(6))
def test_kept_rows_are_the_previous_versions_not_written_again(tmp_path, kind, seed):
    rng = random.Random(seed)
    old_type, make = TYPES[kind]
    new_type = pa.int64() if kind == "int32->int64" else old_type
    previous_keys = _values(rng, make, rng.randint(0, 300), 0.05 * (seed % 3))
    written = _values(rng, make, rng.randint(0, 300), 0.05 * (seed % 2))
    path = tmp_path / "previous.parquet"
    pq.write_table(pa.table({"k": pa.array(previous_keys, old_type),
                             "row": pa.array(range(len(previous_keys)), pa.int64())}),
                   path, row_group_size=64)
    schema = pa.schema([("k", new_type), ("row", pa.int64())])
    keys = VersionKeys(["k"])
    for start in range(0, len(written), 70):
        part = written[start:start + 70]
        keys.add(pa.record_batch([pa.array(part, new_type), pa.array([0] * len(part), pa.int64())], schema=schema))

    kept = [row for batch in kept_rows(PreviousObject.open(path), keys, schema) for row in batch.column("row").to_pylist()]

    expected = [i for i, k in enumerate(previous_keys) if k not in set(written)]
    assert sorted(kept) == expected
    assert keys.numeric == (kind in ("int64", "int32->int64", "date", "timestamp") and len(written) > 0)

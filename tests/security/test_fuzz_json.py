"""Fuzzing the JSON reader (``file_convert.convert_json``) with hypothesis.

Arrays of objects and NDJSON files built from arbitrary JSON values either convert
with one row per record and every value intact (JSON-text columns ``json.loads`` back
to the original, structs and lists equal, no key dropped) or raise
SchemaDetectionError; arbitrary bytes never raise anything else and never hang.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from platform_assets.ingestion.errors import IngestionError, SchemaDetectionError
from platform_assets.ingestion.files.convert import convert_json
from tests.security._fuzz import FUZZ
from tests.security._support import within

CONVERT_SECONDS = 20

TEXT = st.text(alphabet=st.one_of(st.sampled_from(list('"\\\n\r\t{}[],: \x00\u2028')),
                                  st.characters(blacklist_categories=("Cs",))), max_size=8)
KEYS = st.one_of(st.sampled_from(["id", "a", "b", "nested"]), TEXT)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(min_value=-(2**53) - 3, max_value=2**53 + 3),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.sampled_from(["2024-01-01", "2024-01-01T10:00:00", "2024-01-01 10:00:00Z", "1", "true", "null"]),
)
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=8
)
RECORDS = st.lists(st.dictionaries(KEYS, JSON_VALUES, max_size=4), min_size=1, max_size=6)


def same(a: Any, b: Any) -> bool:
    """Deep equality that tells bools from numbers and ints from floats only where JSON does."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b or (
        isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b
    )


def matches(actual: Any, original: Any, arrow_type: pa.DataType) -> bool:
    """Whether the value read back from Parquet holds ``original`` exactly."""
    if original is None:
        return actual is None
    if pa.types.is_string(arrow_type):
        if actual is None:
            return False
        if isinstance(original, str) and actual == original:
            return True
        try:
            return same(json.loads(actual), original)  # JSON text
        except json.JSONDecodeError:
            return False
    if pa.types.is_boolean(arrow_type):
        return actual is original
    if pa.types.is_integer(arrow_type):
        return type(original) is int and type(actual) is int and actual == original
    if pa.types.is_floating(arrow_type):
        return (type(original) in (int, float) and type(actual) is float and actual == float(original)
                and not math.isnan(actual))
    if pa.types.is_date(arrow_type):  # a top-level field of ISO dates (the CSV rule)
        return isinstance(original, str) and dt.date.fromisoformat(original) == actual
    if pa.types.is_timestamp(arrow_type):  # ISO timestamps: naive, or all zoned (as the same instant in UTC)
        if not isinstance(original, str) or not isinstance(actual, dt.datetime):
            return False
        written = dt.datetime.fromisoformat(original)
        return (written.tzinfo is None) == (arrow_type.tz is None) and written == actual
    if pa.types.is_struct(arrow_type):
        names = [arrow_type.field(i).name for i in range(arrow_type.num_fields)]
        return (
            isinstance(original, dict) and isinstance(actual, dict)
            and set(original) <= set(names)  # no key silently dropped
            and all(matches(actual[n], original.get(n), arrow_type.field(n).type) for n in names)
        )
    if pa.types.is_list(arrow_type):
        return (
            isinstance(original, list) and isinstance(actual, list) and len(actual) == len(original)
            and all(matches(x, y, arrow_type.value_type) for x, y in zip(actual, original))
        )
    raise AssertionError(f"unexpected type {arrow_type}")


def convert(data: bytes, suffix: str) -> tuple[Any, Path, tempfile.TemporaryDirectory]:
    tmp = tempfile.TemporaryDirectory(prefix="fuzz-json-")
    path = Path(tmp.name) / f"input{suffix}"
    path.write_bytes(data)
    dest = Path(tmp.name) / "out.parquet"
    try:
        return within(CONVERT_SECONDS, lambda: convert_json(path, dest)), dest, tmp
    except IngestionError as e:
        return e, dest, tmp


def encode(records: list[dict[str, Any]], layout: str, ensure_ascii: bool) -> bytes:
    if layout == "array":
        return json.dumps(records, ensure_ascii=ensure_ascii).encode()
    if layout == "array_indented":
        return json.dumps(records, ensure_ascii=ensure_ascii, indent=1).encode()
    return "\n".join(json.dumps(r, ensure_ascii=ensure_ascii) for r in records).encode() + b"\n"


@FUZZ
@given(RECORDS, st.sampled_from(["array", "array_indented", "ndjson"]), st.booleans())
@example([{"a": 1}, {"a": 1.5}, {"a": None}], "ndjson", True)
@example([{"a": 2**63}, {"a": 1}], "ndjson", True)
@example([{"a": 2**53 + 1}, {"a": 0.5}], "array", True)
@example([{"a": {"x": 1}}, {"a": {"y": "s"}}, {"a": {}}], "ndjson", False)
@example([{"a": [1, "x", None]}, {"a": []}], "array", False)
@example([{"t": "2024-01-01T10:00:00"}, {"t": "not a time"}], "ndjson", True)
@example([{"": 1, "a\u2028b": "\u2028"}], "ndjson", False)
@example([{}, {"a": 1}], "ndjson", True)
def test_json_records_round_trip(records, layout, ensure_ascii):
    if not any(records):
        return  # only empty objects: the known bug of test_ndjson_of_empty_objects_is_refused_like_an_array
    data = encode(records, layout, ensure_ascii)
    outcome, dest, tmp = convert(data, ".ndjson" if layout == "ndjson" else ".json")
    with tmp:
        if isinstance(outcome, Exception):
            assert isinstance(outcome, SchemaDetectionError), repr(outcome)
            assert all(not r for r in records), f"refused although records have fields: {outcome}"
            return
        table = pq.read_table(dest)
        assert table.num_rows == len(records) == outcome.parquet.row_count
        names = table.schema.names
        assert set().union(*records) <= set(names), "a key was dropped"
        for name in names:
            arrow_type = table.schema.field(name).type
            for record, actual in zip(records, table.column(name).to_pylist()):
                assert matches(actual, record.get(name), arrow_type), (name, arrow_type, record.get(name), actual)


JSON_BYTES = st.one_of(
    st.binary(max_size=120),
    st.text(alphabet=st.sampled_from(list('{}[]":,1a \n\r\t\\e.-')), max_size=60).map(str.encode),
    st.builds(lambda records, cut: json.dumps(records).encode()[:cut], RECORDS, st.integers(0, 200)),
    st.builds(lambda value: json.dumps(value).encode(), JSON_VALUES),
)


@FUZZ
@given(JSON_BYTES, st.sampled_from([".json", ".ndjson"]))
@example(b"", ".json")
@example(b"\xef\xbb\xbf", ".json")
@example(b"[", ".json")
@example(b"[{}] x", ".json")
@example(b'{"a": 1}\n{"a": ', ".ndjson")
@example(b'{"a": 1}\n[1]\n', ".ndjson")
@example(b'{"a": 1e999}', ".ndjson")
@example(b'{"a": NaN}', ".ndjson")
@example(b"\xff\xfe{", ".json")
def test_arbitrary_json_bytes_convert_or_fail_cleanly(data, suffix):
    outcome, dest, tmp = convert(data, suffix)
    with tmp:
        if isinstance(outcome, Exception):
            assert isinstance(outcome, SchemaDetectionError) and str(outcome), repr(outcome)
            return
        table = pq.read_table(dest)
        if table.num_columns == 0:
            return  # the known bug of test_ndjson_of_empty_objects_is_refused_like_an_array
        assert table.num_rows == outcome.parquet.row_count


def test_ndjson_of_empty_objects_is_refused_like_an_array(tmp_path):
    array, ndjson = tmp_path / "a.json", tmp_path / "b.ndjson"
    array.write_text("[{}, {}]")
    ndjson.write_text("{}\n{}\n")
    with pytest.raises(SchemaDetectionError, match="no fields"):
        convert_json(array, tmp_path / "a.parquet")
    try:
        result = convert_json(ndjson, tmp_path / "b.parquet")
    except SchemaDetectionError:
        return
    assert pq.read_table(tmp_path / "b.parquet").num_rows == result.parquet.row_count == 2

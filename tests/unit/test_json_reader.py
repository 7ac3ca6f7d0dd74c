"""JSON layout detection, type inference and streaming readers (``ingestion.json_reader``)."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from platform_assets.ingestion.errors import SchemaDetectionError
from platform_assets.ingestion.files import json_reader
from platform_assets.ingestion.files.json_fast import fast_ndjson_batches
from platform_assets.ingestion.files.json_reader import (
    detect_layout,
    exact_batches,
    has_bom,
    infer_record_type,
)
from platform_assets.ingestion.files.json_types import (
    JType,
    conform,
    merge,
    record_type_of,
    to_arrow,
    type_of,
)
from tests.helpers import write_input as write

BOM = b"\xef\xbb\xbf"




def kinds(t: JType) -> object:
    """A JType as plain data, for readable comparisons."""
    if t.kind == "struct":
        return {n: kinds(c) for n, c in t.fields.items()}
    if t.kind == "list":
        return [kinds(t.item or JType())]
    return t.kind


# --------------------------------------------------------------------------- detect_layout


@pytest.mark.parametrize(
    ("name", "data", "layout"),
    [
        ("a.json", '[{"a": 1}]', "array"),
        ("a.ndjson", '  \n\t [{"a": 1}]', "array"),  # the name does not matter
        ("a.json", '{"a": 1}\n{"a": 2}\n', "ndjson"),
        ("a.json", BOM + b'[{"a": 1}]', "array"),
        ("a.ndjson", BOM + b'\n{"a": 1}', "ndjson"),
        ("a.json.gz", '[{"a": 1}]', "array"),
        ("a.ndjson.gz", '{"a": 1}\n', "ndjson"),
        ("a.json", " " * 70_000 + '[{"a": 1}]', "array"),  # past the first 64 KiB read
        ("a.json", "\n" * 70_000 + '{"a": 1}', "ndjson"),
    ],
)
def test_detect_layout(tmp_path, name, data, layout):
    assert detect_layout(write(tmp_path, name, data)) == layout


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"  \n\t\r\n ", "empty"),
        (BOM, "empty"),
        (BOM + b"\n  \n", "empty"),
        (b"42", "scalar"),
        (b'"x"', "scalar"),
        (b"null", "scalar"),
        (b"true", "scalar"),
        (b"\xff\xfe[{}]", "not valid UTF-8"),
    ],
)
def test_detect_layout_rejects(tmp_path, data, fragment):
    path = write(tmp_path, "bad.json", data)
    with pytest.raises(SchemaDetectionError) as excinfo:
        detect_layout(path)
    assert fragment in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_detect_layout_truncated_gzip(tmp_path):
    full = gzip.compress(b'{"a": 1}\n' * 5000)
    path = write(tmp_path, "t.json", b"")
    path = path.with_name("t.json.gz")
    path.write_bytes(full[:20])
    with pytest.raises(SchemaDetectionError, match=str(path)):
        detect_layout(path)


def test_has_bom(tmp_path):
    assert has_bom(write(tmp_path, "a.json", BOM + b"[]"))
    assert not has_bom(write(tmp_path, "b.json", b"[]"))
    assert has_bom(write(tmp_path, "c.json.gz", BOM + b"[]"))


# --------------------------------------------------------------------- type_of and merge


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "bool"),  # not an int
        (False, "bool"),
        (0, "int"),
        (2**63 - 1, "int"),
        (-(2**63), "int"),
        (2**63, "json"),  # beyond int64: text
        (-(2**63) - 1, "json"),
        (1.5, "float"),
        ("s", "str"),
        ({}, {}),  # an empty object is a struct with no fields (JSON text unless merged)
        ({"a": 1, "b": {"c": "x"}}, {"a": "int", "b": {"c": "str"}}),
        ([], ["null"]),
        ([1, 2], ["int"]),
        ([1, 1.5], ["float"]),
        ([1, "a"], ["json"]),
        ([1, None, 2], ["int"]),
        ([[1], [2, 3]], [["int"]]),
        ([{"a": 1}, {"b": "x"}], [{"a": "int", "b": "str"}]),
        ([True, 1], ["json"]),
    ],
)
def test_type_of(value, expected):
    assert kinds(type_of(value)) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (None, 1, "int"),
        (1, None, "int"),
        (1, 2.5, "float"),
        (2.5, 1, "float"),
        (1, "x", "json"),
        (True, 1, "json"),
        ("x", {"a": 1}, "json"),
        ({"a": 1}, [1], "json"),
        ({"a": 1}, {"b": "x"}, {"a": "int", "b": "str"}),
        ({"a": 1}, {"a": 1.5}, {"a": "float"}),
        ({"a": 1}, {"a": "x"}, {"a": "json"}),
        ({"a": {"x": 1}}, {"a": {"y": True}}, {"a": {"x": "int", "y": "bool"}}),
        ([1], [2.5], ["float"]),
        ([1], ["a"], ["json"]),
        ([], [1], ["int"]),
        ([[1]], [["a"]], [["json"]]),
        ({}, {"a": 1}, {"a": "int"}),
        (2**63, 1, "json"),
    ],
)
def test_merge(a, b, expected):
    assert kinds(merge(type_of(a), type_of(b))) == expected


def test_merge_json_absorbs_everything():
    for other in (None, 1, "x", {"a": 1}, [1]):
        assert merge(JType("json"), type_of(other)).kind == ("json")
        if other is not None:
            assert merge(type_of(other), JType("json")).kind == "json"


# ---------------------------------------------------------------------- to_arrow / conform


@pytest.mark.parametrize(
    ("value", "arrow_type"),
    [
        (None, pa.string()),
        (True, pa.bool_()),
        (1, pa.int64()),
        (1.5, pa.float64()),
        ("s", pa.string()),
        (2**64, pa.string()),
        ({}, pa.string()),
        ({"a": 1, "b": {"c": [1.5]}}, pa.struct([("a", pa.int64()), ("b", pa.struct([("c", pa.list_(pa.float64()))]))])),
        ([], pa.list_(pa.string())),
        ([[1]], pa.list_(pa.list_(pa.int64()))),
        ([1, "x"], pa.list_(pa.string())),
    ],
)
def test_to_arrow(value, arrow_type):
    assert to_arrow(type_of(value)) == arrow_type


LOSSLESS = [
    {"k": "v", "n": [1, 2, {"x": None}]},
    [1, "two", None, 3.5, True],
    "just text",
    "ünïcødé 😀 \"quoted\" \\ back",
    12.5,
    0,
    2**70,
    -(2**70),
    False,
    {},
    [],
]


@pytest.mark.parametrize("value", LOSSLESS, ids=[repr(v)[:20] for v in LOSSLESS])
def test_conform_json_text_is_lossless(value):
    t = merge(type_of(value), type_of({"other": "shape"}) if not isinstance(value, dict) else type_of([0]))
    assert t.kind == "json"
    textual = conform(value, t)
    assert isinstance(textual, str)
    assert json.loads(textual) == value
    assert type(json.loads(textual)) is type(value)


def test_only_a_records_own_string_fields_are_parsed_as_dates():
    t = record_type_of({"d": "2024-01-31", "n": {"d": "2024-01-31"}, "l": ["2024-01-31"], "s": "x"})

    assert t.fields["d"].temporal == "date"
    assert t.fields["n"].fields["d"].temporal is None
    assert t.fields["l"].item.temporal is None
    assert t.fields["s"].temporal is None


def test_conform_shapes_values_for_the_arrow_type():
    records = [
        {"id": 1, "f": 1, "s": {"x": 1}, "l": [1, 2], "j": {"a": 1}},
        {"id": 2, "f": 2.5, "s": {"y": "t"}, "l": [], "j": [1, "x"]},
        {"id": 3, "f": None, "s": None, "l": None, "j": "text"},
    ]
    record_type = JType("struct")
    for r in records:
        record_type = merge(record_type, type_of(r))
    schema = pa.schema([pa.field(n, to_arrow(t)) for n, t in record_type.fields.items()])
    rows = [conform(r, record_type) for r in records]
    table = pa.Table.from_pylist(rows, schema=schema)

    assert schema.field("f").type == pa.float64()
    assert schema.field("s").type == pa.struct([("x", pa.int64()), ("y", pa.string())])
    assert schema.field("j").type == pa.string()
    assert table.column("f").to_pylist() == [1.0, 2.5, None]
    assert isinstance(rows[0]["f"], float)
    assert table.column("s").to_pylist() == [{"x": 1, "y": None}, {"x": None, "y": "t"}, None]
    assert table.column("l").to_pylist() == [[1, 2], [], None]
    assert [json.loads(v) for v in table.column("j").to_pylist()] == [r["j"] for r in records]


def test_conform_missing_field_is_null():
    t = type_of({"a": 1, "b": "x"})
    assert conform({"a": 1}, t) == {"a": 1, "b": None}


# ------------------------------------------------------------------ JSON array records


TRICKY = [
    {"nested": [[1, 2], [3, [4, [5]]]], "empty": [], "obj": {}},
    {"s": "a ] b , c", "t": "]]],,,[[[", "q": "she said \"]\"", "b": "back\\slash\\"},
    {"n": 12345678901234567890, "neg": -98765.4321e+2, "small": 1.25e-10, "z": 0},
    {"u": "é日本😀", "esc": "\u00e9\n\t", "ctrl": "\u0001"},
    {"t": True, "f": False, "nil": None},
    {"deep": {"a": {"b": {"c": {"d": [{"e": "]"}]}}}}},
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 11, 64, 4 * 1024 * 1024])
@pytest.mark.parametrize("separator", ["", " ", "\n  ", "\r\n\t"])
def test_array_records_on_tricky_arrays(tmp_path, monkeypatch, chunk, separator):
    monkeypatch.setattr(json_reader, "READ_CHUNK", chunk)
    items = [json.dumps(r, ensure_ascii=False) for r in TRICKY]
    text = "[" + separator + ("," + separator).join(items) + separator + "]" + separator
    path = write(tmp_path, "tricky.json", text)

    assert list(json_reader._array_records(path)) == TRICKY == json.loads(text)


@pytest.mark.parametrize("chunk", [1, 3, 7, 13])
def test_array_records_numbers_across_chunk_boundaries(tmp_path, monkeypatch, chunk):
    """Every offset of the chunk boundary inside long numbers and literals."""
    monkeypatch.setattr(json_reader, "READ_CHUNK", chunk)
    for pad in range(chunk + 1):
        text = "[" + " " * pad + '{"n":1234567890123,"f":-1.5e+300,"g":0.000001,"t":true,"x":null}' + "," + (
            '{"n":-9223372036854775808}]'
        )
        path = write(tmp_path, f"n{pad}.json", text)
        assert list(json_reader._array_records(path)) == json.loads(text), pad


def test_array_records_multibyte_characters_split_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(json_reader, "READ_CHUNK", 1)  # every multi-byte character is split
    records = [{"u": "日本語😀é" * 3}, {"v": "ß"}]
    path = write(tmp_path, "u.json", BOM + json.dumps(records, ensure_ascii=False).encode())
    assert list(json_reader._array_records(path)) == records


def test_array_records_empty_array(tmp_path):
    assert list(json_reader._array_records(write(tmp_path, "e.json", " [ \n ] \n"))) == []


@pytest.mark.parametrize("chunk", [1, 7, 4 * 1024 * 1024])
@pytest.mark.parametrize(
    ("text", "fragment", "character"),
    [
        ('[{"a":1}', "not closed with ']'", 9),
        ('[{"a":1},', "element 2 is not valid JSON", 10),
        ('[{"a":1},]', "element 2 is not valid JSON", 10),
        ('[{"a":1} {"b":2}]', "expected ',' or ']' after element 1", 10),
        ('[{"a":1}]]', "unexpected data after the closing ']'", 10),
        ('[{"a":1}] {"b":2}', "unexpected data after the closing ']'", 11),
        ('[{"a":1}, 5]', "element 2 of the array is not an object", 11),
        ('[{"a":1}, [{"b":2}]]', "element 2 of the array is not an object", 11),
        ('[{"a":tru}]', "element 1 is not valid JSON", 2),
        ('[{"a":"unterminated}]', "element 1 is not valid JSON", 2),
        ('{"a":1}', "expected '[' at the start", 1),
    ],
)
def test_array_records_errors_name_the_position(tmp_path, monkeypatch, chunk, text, fragment, character):
    monkeypatch.setattr(json_reader, "READ_CHUNK", chunk)
    path = write(tmp_path, "bad.json", text)
    with pytest.raises(SchemaDetectionError) as excinfo:
        list(json_reader._array_records(path))
    message = str(excinfo.value)
    assert fragment in message
    assert f"(character {character})" in message
    assert str(path) in message


def test_array_records_yields_before_reading_everything(tmp_path):
    """Records stream: the first is yielded although the array is broken much later."""
    path = write(tmp_path, "late.json", '[{"a":1},' + '{"b":2},' * 1000 + '{"c":')
    records = json_reader._array_records(path)
    assert next(records) == {"a": 1}
    with pytest.raises(SchemaDetectionError, match="element 1002"):
        list(records)


# ------------------------------------------------------------------------ NDJSON records


@pytest.mark.parametrize("chunk", [1, 5, 4 * 1024 * 1024])
def test_ndjson_records(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(json_reader, "READ_CHUNK", chunk)
    text = BOM + '{"a": 1}\r\n\n   \n{"u": "日本😀"}\n{"s": "x\\ny"}'.encode()  # no final newline
    path = write(tmp_path, "r.ndjson", text)
    assert list(json_reader.records(path, "ndjson")) == [{"a": 1}, {"u": "日本😀"}, {"s": "x\ny"}]


@pytest.mark.parametrize("chunk", [3, 4 * 1024 * 1024])
@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"a":1}\n{"a":2}\n{"a":\n{"a":4}\n', "line 3 is not valid JSON"),
        ('{"a":1}\n\n\n{"a":2}}\n', "line 4 is not valid JSON"),  # blank lines still count
        ('{"a":1}\n[1, 2]\n', "line 2 is not a JSON object"),
        ('{"a":1}\n"text"\n', "line 2 is not a JSON object"),
        ('{"a":1} {"a":2}\n', "line 1 is not valid JSON"),
    ],
)
def test_ndjson_errors_name_the_line(tmp_path, monkeypatch, chunk, text, fragment):
    monkeypatch.setattr(json_reader, "READ_CHUNK", chunk)
    path = write(tmp_path, "bad.ndjson", text)
    with pytest.raises(SchemaDetectionError) as excinfo:
        list(json_reader.records(path, "ndjson"))
    assert fragment in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_ndjson_invalid_utf8_is_reported(tmp_path):
    path = write(tmp_path, "bad.ndjson", b'{"a": 1}\n{"a": "\xff"}\n')
    with pytest.raises(SchemaDetectionError, match="not valid UTF-8"):
        list(json_reader.records(path, "ndjson"))


# ------------------------------------------------------------- exact path: infer + batches


def test_infer_record_type_over_every_record(tmp_path):
    path = write(
        tmp_path, "drift.ndjson",
        '{"id": 1, "v": 10, "s": {"x": 1}}\n{"id": 2, "v": 20}\n{"id": 3, "v": "thirty", "s": {"y": "t"}, "new": [1]}\n',
    )
    t = infer_record_type(path, "ndjson")
    assert kinds(t) == {"id": "int", "v": "json", "s": {"x": "int", "y": "str"}, "new": ["int"]}


def test_infer_record_type_without_fields(tmp_path):
    assert infer_record_type(write(tmp_path, "e.json", "[]"), "array").fields == {}
    assert infer_record_type(write(tmp_path, "o.json", "[{}, {}]"), "array").fields == {}


def test_exact_batches_in_chunks_with_one_schema(tmp_path, monkeypatch):
    monkeypatch.setattr(json_reader, "CHUNK_RECORDS", 2)
    records = [{"id": i, "v": i if i != 3 else "three", "s": {"x": i}} for i in range(5)]
    path = write(tmp_path, "r.json", json.dumps(records))
    record_type = infer_record_type(path, "array")

    batches = list(exact_batches(path, "array", record_type))

    assert [b.num_rows for b in batches] == [2, 2, 1]
    assert len({b.schema for b in batches}) == 1
    table = pa.Table.from_batches(batches)
    assert table.schema.field("v").type == pa.string()
    assert [json.loads(v) for v in table.column("v").to_pylist()] == [r["v"] for r in records]
    assert table.column("s").to_pylist() == [{"x": i} for i in range(5)]


# -------------------------------------------------------------------------- fast path


def _lines(n: int) -> str:
    return "".join(json.dumps({"a": i, "s": {"x": i}, "t": "2024-01-01T00:00:00Z"}) + "\n" for i in range(n))


def test_fast_path_reads_consistent_blocks(tmp_path):
    path = write(tmp_path, "ok.ndjson", _lines(50) + '{"a": 50, "s": {"x": 50}, "t": null}\n{"a": 51}\n')
    table = pa.Table.from_batches(list(fast_ndjson_batches(path, block_size=256)))
    assert table.num_rows == 52
    assert table.schema.field("a").type == pa.int64()
    assert table.schema.field("t").type == pa.timestamp("us", tz="UTC")  # the CSV rule
    assert table.column("t").to_pylist()[:2] == [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)] * 2
    assert table.column("a").to_pylist() == list(range(52))


def test_fast_path_keeps_all_null_fields_as_text(tmp_path):
    path = write(tmp_path, "n.ndjson", '{"a": 1, "b": null}\n{"a": 2, "b": null}\n')
    table = pa.Table.from_batches(list(fast_ndjson_batches(path)))
    assert table.schema.field("b").type == pa.string()


@pytest.mark.parametrize(
    "late_line",
    [
        '{"a": "text", "s": {"x": 1}, "t": "2024-01-01T00:00:00Z"}',  # type change
        '{"a": 1.5, "s": {"x": 1}, "t": "2024-01-01T00:00:00Z"}',  # int to float
        '{"a": 1, "s": {"x": 1}, "t": "2024-01-01T00:00:00Z", "new": 1}',  # new field
        '{"a": 1, "s": {"x": 1, "y": 2}, "t": "2024-01-01T00:00:00Z"}',  # new nested field
        '{"a": 1, "s": {"x": "t"}, "t": "2024-01-01T00:00:00Z"}',  # nested type change
        '{"a": 1, "s": [1], "t": "2024-01-01T00:00:00Z"}',  # struct to list
    ],
    ids=["type-change", "int-to-float", "new-field", "new-nested-field", "nested-type-change", "struct-to-list"],
)
def test_fast_path_refuses_drift_after_the_first_block(tmp_path, late_line):
    """A later block that disagrees must raise (the converter then takes the exact path)."""
    path = write(tmp_path, "drift.ndjson", _lines(50) + late_line + "\n")
    with pytest.raises(pa.ArrowInvalid):
        list(fast_ndjson_batches(path, block_size=256))


# --- dates and timestamps: one rule for CSV and JSON --------------------------------


TEMPORAL_LINES = (
    '{"ts": "2024-03-01T10:00:00+02:00", "naive": "2024-03-01 10:00", "day": "2024-02-29", '
    '"code": "007", "flag": "true", "late": null, "nested": {"at": "2024-03-01"}}\n'
    '{"ts": "2024-03-01T00:00:00Z", "naive": "2024-03-01T11:00:00.5", "day": "2024-03-01", '
    '"code": "x", "flag": "no", "late": "2024-01-01", "nested": {"at": "2024-03-02"}}\n'
)


def _converted(tmp_path, name: str, text: str) -> pa.Table:
    from platform_assets.ingestion.files.convert import convert_json

    path = write(tmp_path, name, text)
    convert_json(path, tmp_path / f"{name}.parquet")
    return pq.read_table(tmp_path / f"{name}.parquet")


@pytest.mark.parametrize("layout", ["ndjson", "array"])
def test_json_iso_strings_follow_the_csv_rules(tmp_path, layout):
    # Regression: ISO timestamps became UTC timestamps in CSV but stayed text in JSON.
    text = TEMPORAL_LINES if layout == "ndjson" else "[" + ",".join(TEMPORAL_LINES.strip().split("\n")) + "]"
    table = _converted(tmp_path, f"t.{'ndjson' if layout == 'ndjson' else 'json'}", text)
    types = {f.name: f.type for f in table.schema}
    assert types["ts"] == pa.timestamp("us", tz="UTC")
    assert types["naive"] == pa.timestamp("us")
    assert types["day"] == types["late"] == pa.date32()
    assert types["code"] == types["flag"] == pa.string()  # JSON strings are not numbers or booleans
    assert types["nested"] == pa.struct([("at", pa.string())])  # only top-level fields, as CSV columns
    utc = dt.timezone.utc
    assert table.column("ts").to_pylist() == [dt.datetime(2024, 3, 1, 8, tzinfo=utc), dt.datetime(2024, 3, 1, tzinfo=utc)]
    assert table.column("naive").to_pylist() == [dt.datetime(2024, 3, 1, 10), dt.datetime(2024, 3, 1, 11, 0, 0, 500000)]
    assert table.column("late").to_pylist() == [None, dt.date(2024, 1, 1)]


@pytest.mark.parametrize(
    "values",
    [
        ["2024-03-01T10:00:00+02:00", "2024-03-01T10:00:00"],  # zoned and naive: text, as in CSV
        ["2024-02-29", "2024-02-30"],  # not a calendar date
        ["2024-03-01", "2024-03-01T10:00:00"],  # dates and timestamps
        ["2024-03-01T23:59:60Z", "2024-03-01T00:00:00Z"],  # a leap second
        ["2024-03-01T10:00:00.1234567Z", "2024-03-01T00:00:00Z"],  # beyond microseconds
    ],
)
def test_json_fields_that_are_not_all_one_temporal_kind_stay_text(tmp_path, values):
    lines = "".join(json.dumps({"v": v}) + "\n" for v in values)
    assert _converted(tmp_path, "v.ndjson", lines).column("v").to_pylist() == values
    assert _converted(tmp_path, "v.json", json.dumps([{"v": v} for v in values])).column("v").to_pylist() == values


def test_a_late_value_that_is_not_a_timestamp_makes_the_field_text_on_both_paths(tmp_path):
    lines = "".join(json.dumps({"v": "2024-03-01T00:00:00Z"}) + "\n" for _ in range(150_000))
    lines += json.dumps({"v": "soon"}) + "\n"
    table = _converted(tmp_path, "late.ndjson", lines)
    assert table.schema.field("v").type == pa.string()
    assert table.column("v").to_pylist()[-2:] == ["2024-03-01T00:00:00Z", "soon"]


def test_a_field_null_in_the_first_block_is_decided_over_the_whole_file(tmp_path):
    lines = "".join(json.dumps({"a": i, "v": None}) + "\n" for i in range(150_000))
    lines += json.dumps({"a": 0, "v": "2024-03-01"}) + "\n"
    table = _converted(tmp_path, "null_first.ndjson", lines)
    assert table.schema.field("v").type == pa.date32()
    assert table.column("v").to_pylist()[-1] == dt.date(2024, 3, 1)

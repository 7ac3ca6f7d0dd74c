"""Streaming CSV reading, header checks and quote checks (``ingestion.csv_reader``)."""

from __future__ import annotations

import gzip

import pyarrow as pa
import pytest

from platform_assets.ingestion.errors import SchemaDetectionError
from platform_assets.ingestion.files.csv_reader import (
    CsvOptions,
    open_input,
    read_header,
    text_batches,
    typed_batches,
)
from platform_assets.ingestion.files.text_types import Widen
from tests.helpers import write_input as write

BOM = b"\xef\xbb\xbf"




# -------------------------------------------------------------------- unterminated quotes


def check_quotes_closed(path, options):
    """Read the whole file as the loader does; an unterminated quote raises SchemaDetectionError."""
    list(text_batches(path, read_header(path, options), options))



@pytest.mark.parametrize(
    "data",
    [
        "a,b\n1,2\n",
        'a,b\n1,"x"\n',
        'a,b\n1,"x,y"\n2,"line1\nline2"\n',
        'a,b\n1,"say ""hi"""\n',
        'a,b\n1,""\n',
        'a,b\n1,""""\n',  # a field holding one quote
        'a,b\n1,5" screen\n',  # a literal quote inside an unquoted field: odd count, valid
        'a,b\n1,5" screen\n2,"quoted, fine"\n3,12" pizza\n',
        'a,b\n1,abc"\n',  # a quote at the end of an unquoted field
        'a,b\r\n1,"x\r\ny"\r\n2,5" screen\r\n',  # CRLF
        '"a","b"\n"1","2"',  # no final newline
        'a,b\n"1",x"y"z\n',
    ],
)
def test_check_quotes_closed_accepts_valid_files(tmp_path, data):
    check_quotes_closed(write(tmp_path, "ok.csv", data), CsvOptions())


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ('a,b\n1,"abc\n2,3\n', 2),
        ('a,b\n1,2\n3,"x\n', 3),
        ('a,b\n1,"x\ny"\n2,"open\n3,z\n', 4),  # lines inside a closed quoted field count
        ('a,b\n1,"abc""\n2,3\n', 2),  # a doubled quote does not close the field
        ('a,b\n1,5" screen\n2,12" pizza\n3,"open\n4,z\n', 4),  # odd count, literal quotes too
        ('"a,b\n1,2\n', 1),
        ('a,b\r\n1,2\r\n3,"x\r\n', 3),
    ],
)
def test_check_quotes_closed_reports_the_opening_line(tmp_path, data, line):
    path = write(tmp_path, "bad.csv", data)
    with pytest.raises(SchemaDetectionError) as excinfo:
        check_quotes_closed(path, CsvOptions())
    assert f"unterminated quoted field starting on line {line}" in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_check_quotes_closed_other_quote_char_and_delimiter(tmp_path):
    options = CsvOptions(delimiter=";", quote_char="'")
    check_quotes_closed(write(tmp_path, "ok.csv", "a;b\n1;'x;y'\n2;it's\n"), options)
    with pytest.raises(SchemaDetectionError, match="line 3"):
        check_quotes_closed(write(tmp_path, "bad.csv", "a;b\n1;'x'\n2;'open\n"), options)
    # double quotes mean nothing when the quote character is '
    check_quotes_closed(write(tmp_path, "dq.csv", 'a;b\n1;"open\n'), options)


def test_check_quotes_closed_reads_gzip(tmp_path):
    check_quotes_closed(write(tmp_path, "ok.csv.gz", 'a\n"x"\n'), CsvOptions())
    with pytest.raises(SchemaDetectionError, match="line 2"):
        check_quotes_closed(write(tmp_path, "bad.csv.gz", 'a\n"x\n'), CsvOptions())


def test_check_quotes_closed_literal_quote_does_not_hide_an_unterminated_field(tmp_path):
    path = write(tmp_path, "bad.csv", 'a,b\n1,5" screen\n2,"open\n3,x\n')
    with pytest.raises(SchemaDetectionError, match="line 3"):
        check_quotes_closed(path, CsvOptions())


# ---------------------------------------------------------------------------- read_header


@pytest.mark.parametrize(
    ("name", "data", "options", "names"),
    [
        ("a.csv", "id,name\n1,x\n", CsvOptions(), ["id", "name"]),
        ("a.csv", "id,name\n", CsvOptions(), ["id", "name"]),
        ("a.csv", BOM + b"id,name\n1,x\n", CsvOptions(), ["id", "name"]),
        ("a.csv", '"id","na,me"\n', CsvOptions(), ["id", "na,me"]),
        ("a.csv", "id;name\n", CsvOptions(delimiter=";"), ["id", "name"]),
        ("a.tsv", "id\tname\n", CsvOptions(delimiter="\t"), ["id", "name"]),
        ("a.csv.gz", "id,name\n1,x\n", CsvOptions(), ["id", "name"]),
        ("a.csv", "# exported 2024-01-01\nid,name\n", CsvOptions(skip_rows=1), ["id", "name"]),
        ("a.csv", "a,,c\n1,2,3\n", CsvOptions(), ["a", "column_2", "c"]),
        ("a.csv", "Zoë,日本\n", CsvOptions(), ["Zoë", "日本"]),
    ],
)
def test_read_header(tmp_path, name, data, options, names):
    assert read_header(write(tmp_path, name, data), options) == names


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"a,b,a\n1,2,3\n", "repeats column names ['a']"),
    ],
)
def test_read_header_errors(tmp_path, data, fragment):
    path = write(tmp_path, "bad.csv", data)
    with pytest.raises(SchemaDetectionError) as excinfo:
        read_header(path, CsvOptions())
    assert fragment in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_read_header_invalid_utf8(tmp_path):
    path = write(tmp_path, "bad.csv", b"id,n\xffme\n1,x\n")
    with pytest.raises(SchemaDetectionError, match="UTF-8"):
        read_header(path, CsvOptions())


def test_read_header_truncated_gzip(tmp_path):
    full = gzip.compress(b"id,name\n" + b"1,abcdefgh\n" * 20_000)
    path = tmp_path / "t.csv.gz"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(SchemaDetectionError, match=str(path)):
        list(text_batches(path, read_header(path, CsvOptions()), CsvOptions()))


def test_open_input_decompresses_gzip_by_name(tmp_path):
    with open_input(write(tmp_path, "x.csv.gz", "a\n1\n")) as stream:
        assert stream.read() == b"a\n1\n"
    with open_input(write(tmp_path, "x.csv", "a\n1\n")) as stream:
        assert stream.read() == b"a\n1\n"


# --------------------------------------------------------------------------- text_batches


def test_text_batches_read_every_field_as_text(tmp_path):
    path = write(tmp_path, "t.csv", 'id,code,note,empty\n1,007,"x",""\n2,,"a\nb",\n')
    names = read_header(path, CsvOptions())
    table = pa.Table.from_batches(list(text_batches(path, names, CsvOptions())))
    assert table.schema == pa.schema([(n, pa.string()) for n in names])
    assert table.to_pylist() == [
        {"id": "1", "code": "007", "note": "x", "empty": ""},  # quoted empty: empty string
        {"id": "2", "code": None, "note": "a\nb", "empty": None},  # unquoted empty: null
    ]


def test_text_batches_stream_in_blocks(tmp_path):
    path = write(tmp_path, "big.csv", "n,s\n" + "".join(f"{i},value-{i}\n" for i in range(1000)))
    batches = list(text_batches(path, ["n", "s"], CsvOptions(block_size=1024)))
    assert len(batches) > 5
    assert sum(b.num_rows for b in batches) == 1000
    assert pa.Table.from_batches(batches).column("n").to_pylist() == [str(i) for i in range(1000)]


def test_text_batches_invalid_utf8_in_a_later_block(tmp_path):
    data = b"n,s\n" + b"".join(b"%d,x\n" % i for i in range(500)) + b"500,\xff\n"
    path = write(tmp_path, "bad.csv", data)
    with pytest.raises(SchemaDetectionError, match="not valid UTF-8"):
        list(text_batches(path, ["n", "s"], CsvOptions(block_size=1024)))


# -------------------------------------------------------------------------- typed_batches


def test_typed_batches_infer_from_the_first_block(tmp_path):
    path = write(tmp_path, "t.csv", "id,qty,code,when\n1,5,007,2024-01-01\n2,,042,2024-01-02\n")
    names = read_header(path, CsvOptions())
    types: dict[str, pa.DataType] = {}
    table = pa.Table.from_batches(list(typed_batches(path, names, CsvOptions(), types)))
    assert types == {"id": pa.int64(), "qty": pa.int64(), "code": pa.string(), "when": pa.date32()}
    assert table.column("qty").to_pylist() == [5, None]
    assert table.column("code").to_pylist() == ["007", "042"]


def test_typed_batches_raise_widen_for_a_later_block(tmp_path):
    path = write(tmp_path, "t.csv", "n,s\n" + "".join(f"{i},x\n" for i in range(500)) + "oops,y\n")
    types: dict[str, pa.DataType] = {}
    with pytest.raises(Widen) as excinfo:
        list(typed_batches(path, ["n", "s"], CsvOptions(block_size=1024), types))
    assert excinfo.value.column == "n"
    assert excinfo.value.value == "oops"
    assert types["n"] == pa.int64()

    types = {"n": pa.string()}  # what the converter does next: restart with the column as text
    table = pa.Table.from_batches(list(typed_batches(path, ["n", "s"], CsvOptions(block_size=1024), types)))
    assert table.column("n").to_pylist() == [str(i) for i in range(500)] + ["oops"]


@pytest.mark.parametrize(
    ("good", "bad", "arrow_type"),
    [
        ("2024-01-0{}", "2024-02-30", pa.date32()),
        ("2024-01-01T10:0{}:00Z", "2024-01-01 10:00:00", pa.timestamp("us", tz="UTC")),
        ("2024-01-01 10:0{}:00", "2024-01-01T10:00:00+02:00", pa.timestamp("us")),
        ("TRUE", "yes", pa.bool_()),
    ],
)
def test_columns_parsed_by_pyarrow_widen_like_the_others(tmp_path, good, bad, arrow_type):
    """Booleans, dates and timestamps are parsed by pyarrow: a later misfit still names itself."""
    rows = [good.format(i % 9 + 1) for i in range(500)]
    path = write(tmp_path, "t.csv", "v,s\n" + "".join(f"{v},x\n" for v in rows) + f"{bad},y\n")
    types: dict[str, pa.DataType] = {}
    with pytest.raises(Widen) as excinfo:
        list(typed_batches(path, ["v", "s"], CsvOptions(block_size=1024), types))
    assert (excinfo.value.column, excinfo.value.value, types["v"]) == ("v", bad, arrow_type)


def test_booleans_in_any_case_and_nothing_else(tmp_path):
    path = write(tmp_path, "b.csv", "b,c\nTrue,1\nfALSE,2\n,3\ntrue,4\n")
    types: dict[str, pa.DataType] = {}
    table = pa.Table.from_batches(list(typed_batches(path, ["b", "c"], CsvOptions(), types)))
    assert table.column("b").to_pylist() == [True, False, None, True]
    path = write(tmp_path, "n.csv", "b\ntrue\n1\n")
    with pytest.raises(Widen):
        list(typed_batches(path, ["b"], CsvOptions(), {"b": pa.bool_()}))


def test_typed_batches_respect_given_types(tmp_path):
    path = write(tmp_path, "t.csv", "amount,zip\n12.5,01234\n3,90210\n")
    types = {"amount": pa.decimal128(12, 2), "zip": pa.string()}
    table = pa.Table.from_batches(list(typed_batches(path, ["amount", "zip"], CsvOptions(), types)))
    assert table.schema.types == [pa.decimal128(12, 2), pa.string()]
    assert [str(v) for v in table.column("amount").to_pylist()] == ["12.50", "3.00"]

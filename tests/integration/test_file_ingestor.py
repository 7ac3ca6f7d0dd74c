"""The guide's file ingestion API against real PostgreSQL and an S3 server.

Every test asserts on the data: the Parquet object read back from the bronze bucket
and the tracking rows (``data_platform.ingestion_metadata``, ``ingested_files``,
``schema_history``). Inputs come from the corpus in ``tests/data/files`` (see its
README); binary cases (invalid UTF-8, truncated gzip), directories, symlinks and
unreadable files are generated here in ``tmp_path``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pytest

from platform_assets.ingestion import file_ingestor
from platform_assets.ingestion.errors import IngestionError, SchemaDetectionError
from platform_assets.ingestion.file_ingestor import (
    batch_ingest_files,
    ingest_csv_file,
    ingest_json_file,
)
from platform_assets.ingestion.files import load as file_load
from platform_assets.ingestion.files.csv_reader import CsvOptions
from platform_assets.ingestion.partitions.files import file_stem
from tests.helpers import query, read_parquet
from tests.helpers import tracking_runs as runs

CORPUS = Path(__file__).resolve().parents[1] / "data" / "files"
GOOD = CORPUS / "good"
BAD = CORPUS / "bad"
DS = "2024-01-01"
DATE = dt.date(2024, 1, 1)
UTC = dt.timezone.utc

EVENTS = [
    {"event_id": 1, "user": "alice", "action": "login", "ok": True},
    {"event_id": 2, "user": "bob", "action": "purchase", "ok": False},
    {"event_id": 3, "user": "carla", "action": "logout", "ok": True},
]


# --------------------------------------------------------------------------- helpers


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def object_bytes(services: Any, key: str) -> bytes:
    return services.store.client.get_object(Bucket=services.bronze_bucket, Key=key)["Body"].read()


def bucket_keys(services: Any) -> list[str]:
    """Every key of the bronze bucket (created first: a load may fail before it does)."""
    services.store.ensure_bucket(services.bronze_bucket)
    return sorted(o["Key"] for o in services.store.list_objects(services.bronze_bucket))


def rows_as_dicts(conn: Any, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def tracking_exists(conn: Any) -> bool:
    return query(conn, "SELECT to_regclass('data_platform.ingestion_metadata') IS NOT NULL")[0][0]




def ledger(conn: Any) -> list[dict[str, Any]]:
    if not tracking_exists(conn):
        return []
    return rows_as_dicts(conn, "SELECT * FROM data_platform.ingested_files ORDER BY id")


def schema_rows(conn: Any, source_name: str) -> list[dict[str, Any]]:
    if not tracking_exists(conn):
        return []
    return rows_as_dicts(
        conn,
        "SELECT * FROM data_platform.schema_history WHERE source_name = %s ORDER BY id",
        (source_name,),
    )


def copy_to(src: Path, dest_dir: Path, name: str | None = None) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / (name or src.name)
    shutil.copyfile(src, dest)
    return dest


def gzip_to(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(gzip.compress(src.read_bytes()))
    return dest


def assert_loaded(
    services: Any,
    conn: Any,
    result: dict[str, Any],
    path: Path,
    key: str,
    source_type: str,
) -> pa.Table:
    """The result dict, the stored object and every tracking row agree; returns the data."""
    body = object_bytes(services, key)
    head = services.store.client.head_object(Bucket=services.bronze_bucket, Key=key)
    table = read_parquet(services, key)

    assert result["uri"] == f"s3://{services.bronze_bucket}/{key}"
    assert result["status"] == "success"
    assert result["source_name"] == path.name
    assert result["execution_date"] == DS
    assert result["row_count"] == table.num_rows
    assert result["file_size_bytes"] == len(body) == head["ContentLength"]
    assert result["checksum"] == md5(body)

    [run] = [r for r in runs(conn, path.name) if r["id"] == result["run_id"]]
    assert run["status"] == "success"
    assert run["source_type"] == source_type
    assert run["execution_date"] == DATE
    assert run["row_count"] == table.num_rows
    assert run["file_size_bytes"] == len(body)
    assert run["checksum"] == md5(body)
    assert run["object_key"] == key
    assert run["uri"] == result["uri"]
    assert run["error_message"] is None
    assert run["finished_at"] is not None

    [entry] = [e for e in ledger(conn) if e["run_id"] == run["id"]]
    stat = path.stat()
    assert entry["file_path"] == str(path.resolve())
    assert entry["file_name"] == path.name
    assert entry["size_bytes"] == stat.st_size
    assert entry["mtime_ns"] == stat.st_mtime_ns
    assert entry["content_md5"] == md5(path.read_bytes()) == result["source_md5"]
    assert entry["object_key"] == key

    [logged] = [s for s in schema_rows(conn, path.name) if s["run_id"] == run["id"]]
    meta = logged["schema_metadata"]
    assert logged["execution_date"] == DATE
    assert meta["format"] == source_type
    assert meta["row_count"] == table.num_rows
    assert [c["name"] for c in meta["columns"]] == table.schema.names
    # Parquet names list items "element" where Arrow says "item"
    logged_types = [c["arrow_type"].replace("<item:", "<element:") for c in meta["columns"]]
    assert logged_types == [str(t) for t in table.schema.types]
    return table


def assert_failed(
    services: Any, conn: Any, name: str, key: str, error: BaseException | str, source_type: str
) -> None:
    """One ``failed`` row carrying the error, nothing stored, nothing in the ledger."""
    message = error if isinstance(error, str) else str(error)
    [run] = runs(conn, name)
    assert run["status"] == "failed"
    assert run["source_type"] == source_type
    assert run["object_key"] == key
    assert run["error_message"] == message
    assert run["row_count"] is None and run["checksum"] is None
    assert run["finished_at"] is not None
    assert key not in bucket_keys(services)
    assert not [e for e in ledger(conn) if e["file_name"] == name]
    assert schema_rows(conn, name) == []


# ----------------------------------------------------------------- the guide's snippets


def test_guide_csv_snippet(services, pg_conn):
    path = GOOD / "customers.csv"
    result = ingest_csv_file(
        file_path=str(path),
        object_key="files/customers.parquet",
        execution_date="2024-01-01",
        services=services,
    )

    table = assert_loaded(services, pg_conn, result, path, "files/customers.parquet", "csv")
    assert bucket_keys(services) == ["files/customers.parquet"]
    assert table.schema.names == ["id", "name", "email", "signup_date", "balance"]
    assert table.schema.types == [pa.int64(), pa.string(), pa.string(), pa.date32(), pa.float64()]
    assert table.to_pylist() == [
        {"id": 1, "name": "Alice Smith", "email": "alice@example.com",
         "signup_date": dt.date(2023, 5, 1), "balance": 120.5},
        {"id": 2, "name": "Bob Jones", "email": "bob@example.com",
         "signup_date": dt.date(2023, 6, 15), "balance": 0.0},
        {"id": 3, "name": "Carla Díaz", "email": "carla@example.com",
         "signup_date": dt.date(2023, 7, 30), "balance": 99.99},
    ]
    assert result["row_count"] == 3


def test_guide_json_snippet(services, pg_conn):
    path = GOOD / "events.json"
    result = ingest_json_file(
        file_path=str(path),
        object_key="files/events.parquet",
        execution_date="2024-01-01",
        services=services,
    )

    table = assert_loaded(services, pg_conn, result, path, "files/events.parquet", "json")
    assert table.schema.types == [pa.int64(), pa.string(), pa.string(), pa.bool_()]
    assert table.to_pylist() == EVENTS


def test_guide_batch_snippet(services, pg_conn, tmp_path):
    directory = tmp_path / "input"
    copy_to(GOOD / "customers.csv", directory, "a_customers.csv")
    copy_to(BAD / "ragged.csv", directory, "b_ragged.csv")
    copy_to(GOOD / "people.tsv", directory)  # not matched by *.csv
    copy_to(GOOD / "screen.csv", directory, "c_screen.csv")

    results = batch_ingest_files(
        directory=str(directory), pattern="*.csv", execution_date="2024-01-01", services=services
    )

    # The guide's loop works unchanged on the result.
    printed = []
    for r in results:
        if "uri" in r:
            printed.append(f"Success: {r['uri']} ({r['row_count']} rows)")
        else:
            printed.append(f"Error: {r['file']} - {r['error']}")

    bucket = services.bronze_bucket
    assert printed[0] == f"Success: s3://{bucket}/files/a_customers/{DS}/a_customers.csv.parquet (3 rows)"
    assert printed[1].startswith(f"Error: {directory / 'b_ragged.csv'} - ")
    assert "b_ragged.csv" in printed[1] and "columns" in printed[1]
    assert printed[2] == f"Success: s3://{bucket}/files/c_screen/{DS}/c_screen.csv.parquet (3 rows)"
    assert len(results) == 3

    assert set(results[1]) >= {"file", "error"} and "uri" not in results[1]
    assert_failed(
        services, pg_conn, "b_ragged.csv", f"files/b_ragged/{DS}/b_ragged.csv.parquet",
        results[1]["error"], "csv",
    )
    for r, name in ((results[0], "a_customers.csv"), (results[2], "c_screen.csv")):
        key = f"files/{Path(name).stem}/{DS}/{name}.parquet"
        assert_loaded(services, pg_conn, r, directory / name, key, "csv")
    assert bucket_keys(services) == [
        f"files/a_customers/{DS}/a_customers.csv.parquet",
        f"files/c_screen/{DS}/c_screen.csv.parquet",
    ]
    assert runs(pg_conn, "people.tsv") == []


def test_batch_without_matches_returns_empty_list(services, pg_conn, tmp_path):
    directory = tmp_path / "input"
    copy_to(GOOD / "events.json", directory)

    assert batch_ingest_files(directory, "*.csv", DS, services=services) == []
    assert batch_ingest_files(directory, "*.parquet", DS, services=services) == []
    assert runs(pg_conn) == []
    assert bucket_keys(services) == []


# --------------------------------------------------------------------------------- JSON


def _copy(name: str, target: str | None = None) -> Callable[[Path], Path]:
    return lambda tmp: copy_to(GOOD / name, tmp, target)


def _gz(name: str, target: str) -> Callable[[Path], Path]:
    return lambda tmp: gzip_to(GOOD / name, tmp / target)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_copy("events_lines.json"), id="ndjson-content-named-.json"),
        pytest.param(_copy("events_array.ndjson"), id="array-content-named-.ndjson"),
        pytest.param(_copy("events_lines.json", "events.ndjson"), id=".ndjson"),
        pytest.param(_copy("events_lines.json", "events.jsonl"), id=".jsonl"),
        pytest.param(_gz("events.json", "events.json.gz"), id=".json.gz-array"),
        pytest.param(_gz("events_lines.json", "events_lines.json.gz"), id=".json.gz-ndjson"),
        pytest.param(_gz("events_lines.json", "events.ndjson.gz"), id=".ndjson.gz"),
        pytest.param(_gz("events_array.ndjson", "events_array.ndjson.gz"), id=".ndjson.gz-array"),
    ],
)
def test_json_layout_detected_from_content(services, pg_conn, tmp_path, make):
    path = make(tmp_path)
    key = f"files/{path.name}.parquet"

    result = ingest_json_file(path, key, DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, key, "json")
    assert table.to_pylist() == EVENTS
    assert table.schema.types == [pa.int64(), pa.string(), pa.string(), pa.bool_()]


def test_nested_json_becomes_struct_and_list(services, pg_conn):
    path = GOOD / "nested.json"
    result = ingest_json_file(path, "files/nested.parquet", DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, "files/nested.parquet", "json")
    schema = table.schema
    assert schema.field("customer").type == pa.struct(
        [("name", pa.string()), ("address", pa.struct([("city", pa.string()), ("zip", pa.string())]))]
    )
    assert schema.field("tags").type == pa.list_(pa.string())
    assert schema.field("scores").type == pa.list_(pa.float64())  # int and float items: float
    assert schema.field("items").type == pa.list_(pa.struct([("sku", pa.string()), ("qty", pa.int64())]))
    original = json.loads(path.read_text())
    assert table.to_pylist() == original  # 2 == 2.0, "0150" stays text
    assert table.column("customer").to_pylist()[0]["address"]["zip"] == "0150"


def test_inconsistent_nested_values_kept_as_lossless_json_text(services, pg_conn):
    path = GOOD / "inconsistent.json"
    result = ingest_json_file(path, "files/inconsistent.parquet", DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, "files/inconsistent.parquet", "json")
    original = json.loads(path.read_text())
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("label").type == pa.string()
    assert table.schema.field("payload").type == pa.string()  # object, array, string, number
    assert table.schema.field("extra").type == pa.list_(pa.string())  # items of mixed kinds
    payload = table.column("payload").to_pylist()
    extra = table.column("extra").to_pylist()
    for row, text, items in zip(original, payload, extra, strict=True):
        if row["payload"] is None:
            assert text is None
        else:
            assert json.loads(text) == row["payload"]
        if row["extra"] is None:
            assert items is None
        else:
            assert [json.loads(i) for i in items] == row["extra"]
    assert table.column("label").to_pylist() == ["one", "two", "three", "four", "five"]


def test_ndjson_type_drift_keeps_json_text(services, pg_conn):
    """``value`` is an int on line 1 and a string on line 3: the column is JSON text."""
    path = GOOD / "drift.ndjson"
    result = ingest_json_file(path, "files/drift.parquet", DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, "files/drift.parquet", "json")
    original = [json.loads(line) for line in path.read_text().splitlines()]
    assert table.schema.field("value").type == pa.string()
    assert table.schema.field("id").type == pa.int64()
    assert [json.loads(v) for v in table.column("value").to_pylist()] == [r["value"] for r in original]
    assert table.column("note").to_pylist() == ["first", "second", "third", "fourth"]


def test_json_array_ints_beyond_int64_kept_as_text(services, pg_conn, tmp_path):
    path = tmp_path / "big.json"
    path.write_text('[{"id": 1, "n": 99999999999999999999}, {"id": 2, "n": 5}]')
    result = ingest_json_file(path, "files/big.parquet", DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, "files/big.parquet", "json")
    assert table.schema.field("n").type == pa.string()
    assert [json.loads(v) for v in table.column("n").to_pylist()] == [99999999999999999999, 5]


def test_ndjson_ints_beyond_int64_kept_as_text(services, pg_conn, tmp_path):
    path = tmp_path / "big.ndjson"
    path.write_text('{"id": 1, "n": 99999999999999999999}\n{"id": 2, "n": 5}\n')
    result = ingest_json_file(path, "files/big.parquet", DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, "files/big.parquet", "json")
    assert [json.loads(str(v)) for v in table.column("n").to_pylist()] == [99999999999999999999, 5]
    assert table.schema.field("n").type == pa.string()


@pytest.mark.parametrize(
    ("name", "ingest", "source_type"),
    [
        ("bom.csv", ingest_csv_file, "csv"),
        ("bom.json", ingest_json_file, "json"),
        ("bom_lines.ndjson", ingest_json_file, "json"),
    ],
)
def test_utf8_byte_order_mark(services, pg_conn, name, ingest, source_type):
    path = GOOD / name
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    key = f"files/{name}.parquet"

    result = ingest(path, key, DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, key, source_type)
    assert table.schema.names == ["id", "name"]  # no BOM glued to the first column name
    assert table.to_pylist() == [{"id": 1, "name": "Zoë"}, {"id": 2, "name": "Ana"}]


# ---------------------------------------------------------------------------------- CSV


def test_quoted_fields_with_newlines_delimiters_and_doubled_quotes(services, pg_conn):
    path = GOOD / "quoted.csv"
    result = ingest_csv_file(path, "files/quoted.parquet", DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, "files/quoted.parquet", "csv")
    assert table.to_pylist() == [
        {"id": 1, "comment": "first line\nsecond line", "tags": "a,b,c", "note": 'she said "hi"'},
        # quoted empty field: empty string; unquoted empty field: null
        {"id": 2, "comment": "plain", "tags": "", "note": None},
        {"id": 3, "comment": "line one\r\nline two", "tags": "x;y", "note": '"quoted" at start'},
    ]


def test_literal_quote_inside_unquoted_field_is_valid(services, pg_conn):
    path = GOOD / "screen.csv"
    result = ingest_csv_file(path, "files/screen.parquet", DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, "files/screen.parquet", "csv")
    assert table.column("description").to_pylist() == ['5" screen', '12" pizza', "plain"]
    assert table.column("size").to_pylist() == ["small", "large", "medium"]


def test_other_delimiter_via_options(services, pg_conn):
    path = GOOD / "semicolon.csv"
    result = ingest_csv_file(
        path, "files/semicolon.parquet", DS, options=CsvOptions(delimiter=";"), services=services
    )

    table = assert_loaded(services, pg_conn, result, path, "files/semicolon.parquet", "csv")
    assert table.to_pylist() == [
        {"id": 1, "name": "Widget, large", "price": "3,50"},
        {"id": 2, "name": "Gadget", "price": "12"},
    ]


@pytest.mark.parametrize("gz", [False, True], ids=["tsv", "tsv.gz"])
def test_tsv_is_tab_delimited_by_default(services, pg_conn, tmp_path, gz):
    path = gzip_to(GOOD / "people.tsv", tmp_path / "people.tsv.gz") if gz else GOOD / "people.tsv"
    key = f"files/{path.name}.parquet"
    result = ingest_csv_file(path, key, DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, key, "csv")
    assert table.to_pylist() == [
        {"id": 1, "name": "Alice", "city": "New York, NY"},
        {"id": 2, "name": "Bob", "city": "Paris"},
    ]


def test_csv_gz(services, pg_conn, tmp_path):
    path = gzip_to(GOOD / "quoted.csv", tmp_path / "quoted.csv.gz")
    result = ingest_csv_file(path, "files/quoted_gz.parquet", DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, "files/quoted_gz.parquet", "csv")
    plain = ingest_csv_file(GOOD / "quoted.csv", "files/quoted_plain.parquet", DS, services=services)
    assert table.equals(read_parquet(services, plain["object_key"]))
    assert result["source_md5"] == md5(path.read_bytes())  # the ledger hashes the file as stored


def test_inferred_types(services, pg_conn):
    path = GOOD / "types.csv"
    result = ingest_csv_file(path, "files/types.parquet", DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, "files/types.parquet", "csv")
    types = dict(zip(table.schema.names, table.schema.types, strict=True))
    assert types == {
        "id": pa.int64(),
        "qty": pa.int64(),  # a missing value keeps the column integer
        "created_naive": pa.timestamp("us"),
        "created_zoned": pa.timestamp("us", tz="UTC"),
        "code": pa.string(),  # 007
        "zip": pa.string(),  # 01234
        "big": pa.string(),  # beyond int64
        "flag": pa.bool_(),
        "day": pa.date32(),
        "ratio": pa.float64(),
    }
    data = table.to_pydict()
    assert data["qty"] == [10, None, 7]
    assert data["created_naive"] == [
        dt.datetime(2024, 1, 1, 10, 0),
        dt.datetime(2024, 1, 2, 11, 30, 15, 250000),
        dt.datetime(2024, 1, 3, 0, 0),
    ]
    assert all(v.tzinfo is None for v in data["created_naive"])
    assert data["created_zoned"] == [  # converted to UTC
        dt.datetime(2024, 1, 1, 8, 0, tzinfo=UTC),
        dt.datetime(2024, 1, 2, 23, 30, tzinfo=UTC),
        dt.datetime(2024, 1, 3, 5, 0, tzinfo=UTC),
    ]
    assert all(v.utcoffset() == dt.timedelta(0) for v in data["created_zoned"])
    assert data["code"] == ["007", "042", "100"]
    assert data["zip"] == ["01234", "90210", "00501"]
    assert data["big"] == ["99999999999999999999", "1", "-12345678901234567890"]
    assert data["flag"] == [True, False, True]
    assert data["day"] == [dt.date(2024, 2, 29), dt.date(2024, 3, 1), dt.date(2024, 12, 31)]
    assert data["ratio"] == [1.5, -0.25, 2000.0]
    [logged] = schema_rows(pg_conn, "types.csv")
    assert {c["source_type"] for c in logged["schema_metadata"]["columns"]} == {"inferred"}


PINNED = {"amount": pa.decimal128(12, 2), "zip": pa.string()}


def test_pinned_column_types_override_inference(services, pg_conn):
    path = GOOD / "pinned.csv"
    result = ingest_csv_file(
        path, "files/pinned.parquet", DS, options=CsvOptions(column_types=PINNED), services=services
    )

    table = assert_loaded(services, pg_conn, result, path, "files/pinned.parquet", "csv")
    assert table.schema.field("amount").type == pa.decimal128(12, 2)
    assert table.schema.field("zip").type == pa.string()
    assert table.column("amount").to_pylist() == [Decimal("12.50"), Decimal("3.00"), Decimal("-0.99")]
    assert table.column("zip").to_pylist() == ["01234", "90210", "12345"]
    [logged] = schema_rows(pg_conn, "pinned.csv")
    sources = {c["name"]: c["source_type"] for c in logged["schema_metadata"]["columns"]}
    assert sources == {"sku": "inferred", "amount": "pinned", "zip": "pinned"}


@pytest.mark.parametrize(
    ("value", "rows_before"),
    [("12.505", 0), ("twelve", 0), ("1234567890123.00", 0), ("7.125", 300)],
    ids=["too-many-decimals", "not-a-number", "too-many-digits", "late-value-small-blocks"],
)
def test_value_not_fitting_pinned_type_fails(services, pg_conn, tmp_path, value, rows_before):
    path = tmp_path / "pinned_bad.csv"
    good_rows = "".join(f"S-{i},{i}.25,{10000 + i}\n" for i in range(rows_before))
    path.write_text(f"sku,amount,zip\n{good_rows}A-1,{value},01234\n")
    key = "files/pinned_bad.parquet"

    with pytest.raises(SchemaDetectionError) as excinfo:
        ingest_csv_file(
            path, key, DS, options=CsvOptions(column_types=PINNED, block_size=1024), services=services
        )

    message = str(excinfo.value)
    assert str(path) in message
    assert repr(value) in message and "'amount'" in message and "decimal128(12, 2)" in message
    assert_failed(services, pg_conn, path.name, key, excinfo.value, "csv")


def test_pinned_column_missing_from_header_fails(services, pg_conn):
    path = GOOD / "customers.csv"
    with pytest.raises(SchemaDetectionError, match=r"pinned columns \['amount'\]") as excinfo:
        ingest_csv_file(
            path, "files/x.parquet", DS, options=CsvOptions(column_types={"amount": pa.int64()}),
            services=services,
        )
    assert str(path) in str(excinfo.value)
    assert_failed(services, pg_conn, path.name, "files/x.parquet", excinfo.value, "csv")


def test_column_widens_to_text_when_a_later_block_does_not_fit(services, pg_conn, tmp_path):
    """With 1 KiB blocks the types are inferred from the first ~40 rows only."""
    n = 600
    lines = ["id,n,code,big,ts,f"]
    for i in range(n):
        lines.append(f"{i},{i},{i + 1},{i * 1000},2024-01-01T00:{i % 60:02d}:00,{i}.5")
    lines.append(f"{n},n/a,007,99999999999999999999,2024-01-01T00:00:00+02:00,{n}.5")
    path = tmp_path / "widen.csv"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 20 * 1024

    result = ingest_csv_file(
        path, "files/widen.parquet", DS, options=CsvOptions(block_size=1024), services=services
    )

    table = assert_loaded(services, pg_conn, result, path, "files/widen.parquet", "csv")
    assert result["row_count"] == n + 1
    types = dict(zip(table.schema.names, table.schema.types, strict=True))
    assert types == {
        "id": pa.int64(),  # fits everywhere: stays integer
        "n": pa.string(),
        "code": pa.string(),
        "big": pa.string(),
        "ts": pa.string(),  # naive first, an offset later
        "f": pa.float64(),
    }
    data = table.to_pydict()
    assert data["id"] == list(range(n + 1))
    assert data["n"] == [str(i) for i in range(n)] + ["n/a"]
    assert data["code"] == [str(i + 1) for i in range(n)] + ["007"]
    assert data["big"] == [str(i * 1000) for i in range(n)] + ["99999999999999999999"]
    assert data["ts"] == [f"2024-01-01T00:{i % 60:02d}:00" for i in range(n)] + ["2024-01-01T00:00:00+02:00"]
    assert data["f"] == [i + 0.5 for i in range(n + 1)]


def test_header_only_csv_is_a_valid_empty_load(services, pg_conn):
    path = GOOD / "header_only.csv"
    result = ingest_csv_file(path, "files/header_only.parquet", DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, "files/header_only.parquet", "csv")
    assert result["row_count"] == 0
    assert table.num_rows == 0
    assert table.schema.names == ["id", "name", "email"]
    [run] = runs(pg_conn, "header_only.csv")
    assert run["status"] == "success" and run["row_count"] == 0


def test_header_only_csv_without_trailing_newline(services, pg_conn, tmp_path):
    path = tmp_path / "header_no_newline.csv"
    path.write_bytes(b"id,name")
    result = ingest_csv_file(path, "files/h.parquet", DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, "files/h.parquet", "csv")
    assert table.num_rows == 0 and table.schema.names == ["id", "name"]


def test_unterminated_quote_after_literal_quote_is_detected(services, pg_conn, tmp_path):
    path = tmp_path / "hidden_unterminated.csv"
    path.write_text('id,description\n1,5" screen\n2,"unterminated\n3,plain\n4,more\n')
    key = "files/hidden_unterminated.parquet"

    with pytest.raises(SchemaDetectionError, match="unterminated quoted field starting on line 3"):
        ingest_csv_file(path, key, DS, services=services)
    assert key not in bucket_keys(services)


def test_blank_header_name_is_loaded_as_column_n(services, pg_conn, tmp_path):
    path = tmp_path / "blank_header.csv"
    path.write_text("a,\n1,2\n3,4\n")
    result = ingest_csv_file(path, "files/blank.parquet", DS, services=services)

    table = assert_loaded(services, pg_conn, result, path, "files/blank.parquet", "csv")
    assert table.to_pylist() == [{"a": 1, "column_2": 2}, {"a": 3, "column_2": 4}]


# --------------------------------------------------------------------------- bad input


def _corpus(name: str) -> Callable[[Path], Path]:
    return lambda tmp: BAD / name


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(data)
        return path

    return make


def _truncated_gzip(name: str, source: Path) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        full = gzip.compress(source.read_bytes() * 50)
        path = tmp / name
        path.write_bytes(full[: len(full) // 2])
        return path

    return make


def _directory(name: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.mkdir()
        (path / "inner.csv").write_text("a\n1\n")
        return path

    return make


BAD_CASES = [
    # (id, file maker, csv or json, error class, fragments the message must contain)
    ("zero-byte-csv", _corpus("empty.csv"), "csv", SchemaDetectionError, ["empty"]),
    ("zero-byte-json", _corpus("empty.json"), "json", SchemaDetectionError, ["empty"]),
    ("whitespace-json", _corpus("whitespace.json"), "json", SchemaDetectionError, ["empty", "whitespace"]),
    ("bom-only-json", _corpus("bom_only.json"), "json", SchemaDetectionError, ["empty", "byte-order mark"]),
    ("ragged-csv", _corpus("ragged.csv"), "csv", SchemaDetectionError, ["Expected 3 columns, got 2"]),
    ("unterminated-quote", _corpus("unterminated_quote.csv"), "csv", SchemaDetectionError,
     ["unterminated quoted field starting on line 3"]),
    # The quote swallows the rest of the file into a middle column: the row comes up short,
    # which pyarrow reports first (with the text of the damaged row).
    ("unterminated-quote-mid-row", _corpus("unterminated_quote_mid.csv"), "csv", SchemaDetectionError,
     ["Expected 3 columns, got 2", '2,"Bob,Rome']),
    ("malformed-array", _corpus("malformed_array.json"), "json", SchemaDetectionError, ["not closed"]),
    ("scalar-number", _corpus("scalar_number.json"), "json", SchemaDetectionError, ["scalar"]),
    ("scalar-string", _corpus("scalar_string.json"), "json", SchemaDetectionError, ["scalar"]),
    ("ndjson-bad-line-3", _corpus("bad_line.ndjson"), "json", SchemaDetectionError, ["line 3 is not valid JSON"]),
    ("array-of-scalars", _corpus("array_of_scalars.json"), "json", SchemaDetectionError,
     ["element 1", "not an object"]),
    ("duplicate-header", _corpus("duplicate_header.csv"), "csv", SchemaDetectionError,
     ["repeats column names ['id']"]),
    ("invalid-utf8-csv", _bytes("invalid_utf8.csv", b"id,name\n1,Al\xffce\n2,Bob\n"), "csv",
     SchemaDetectionError, ["UTF-8"]),
    ("invalid-utf8-json", _bytes("invalid_utf8.json", b'[{"id": 1, "name": "Al\xffce"}]'), "json",
     SchemaDetectionError, ["UTF-8"]),
    ("invalid-utf8-ndjson", _bytes("invalid_utf8.ndjson", b'{"id": 1}\n{"id": 2, "name": "\xc3("}\n'), "json",
     SchemaDetectionError, ["UTF-8"]),
    ("not-gzip", _bytes("not_gzip.csv.gz", b"id,name\n1,a\n"), "csv", SchemaDetectionError, ["header check"]),
    ("truncated-csv-gz", _truncated_gzip("truncated.csv.gz", GOOD / "customers.csv"), "csv",
     SchemaDetectionError, ["truncated"]),
    ("truncated-ndjson-gz", _truncated_gzip("truncated.json.gz", GOOD / "events_lines.json"), "json",
     SchemaDetectionError, ["truncated"]),
    ("truncated-array-gz", _truncated_gzip("truncated_array.json.gz", GOOD / "events_array.ndjson"), "json",
     SchemaDetectionError, ["truncated"]),
    ("empty-gzip", _bytes("empty.csv.gz", gzip.compress(b"")), "csv", SchemaDetectionError, ["empty"]),
    ("directory-csv", _directory("folder.csv"), "csv", IngestionError, ["is a directory"]),
    ("directory-json", _directory("folder.json"), "json", IngestionError, ["is a directory"]),
]


def test_bad_files_fail_cleanly(services, pg_conn, tmp_path):
    """Each bad file: a clear error naming it, a ``failed`` row, nothing stored.

    One database for all cases (each has its own file name, so its own tracking rows);
    every case is checked and all problems are reported together.
    """
    problems = []
    for case_id, make, kind, error, fragments in BAD_CASES:
        case_dir = tmp_path / case_id
        case_dir.mkdir()
        path = make(case_dir)
        key = f"files/bad/{path.name}.parquet"
        ingest = ingest_csv_file if kind == "csv" else ingest_json_file
        try:
            with pytest.raises(error) as excinfo:
                ingest(path, key, DS, services=services)
            message = str(excinfo.value)
            assert str(path) in message, message
            for fragment in fragments:
                assert fragment.lower() in message.lower(), message
            assert_failed(services, pg_conn, path.name, key, excinfo.value, kind)
        except (Exception, pytest.fail.Exception) as e:  # noqa: BLE001 - collected, reported below
            problems.append(f"{case_id} ({path.name}): {type(e).__name__}: {e}")
    assert not problems, "\n".join(problems)
    assert len(runs(pg_conn)) == len(BAD_CASES)
    assert bucket_keys(services) == []
    assert ledger(pg_conn) == []


def test_missing_file_is_reported_as_missing(services, pg_conn, tmp_path):
    path = tmp_path / "missing.csv"
    with pytest.raises(IngestionError) as excinfo:
        ingest_csv_file(path, "files/missing.parquet", DS, services=services)
    assert_failed(services, pg_conn, path.name, "files/missing.parquet", excinfo.value, "csv")
    assert "does not exist" in str(excinfo.value)


def test_unreadable_file(services, pg_conn, tmp_path):
    path = copy_to(GOOD / "customers.csv", tmp_path, "secret.csv")
    path.chmod(0)
    try:
        try:
            with path.open("rb"):
                pass
        except PermissionError:
            pass
        else:
            pytest.skip(
                f"this process (uid {os.geteuid()}) can still read a chmod 000 file (root "
                "ignores file permissions), so an unreadable file cannot be simulated"
            )
        key = "files/secret.parquet"
        with pytest.raises(IngestionError, match="not readable") as excinfo:
            ingest_csv_file(path, key, DS, services=services)
        assert str(path) in str(excinfo.value)
        assert_failed(services, pg_conn, path.name, key, excinfo.value, "csv")
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize(
    ("name", "seam", "ingest", "kind"),
    [
        ("customers.csv", "convert_csv", ingest_csv_file, "csv"),
        ("events_lines.json", "convert_json", ingest_json_file, "json"),
    ],
)
def test_file_changing_while_read_is_refused(
    services, pg_conn, tmp_path, monkeypatch, name, seam, ingest, kind
):
    """A writer appends to the file while it is converted (the converter is the seam)."""
    path = copy_to(GOOD / name, tmp_path)
    original = getattr(file_load, seam)
    calls = []

    def convert_then_append(src, dest, *args):
        converted = original(src, dest, *args)
        calls.append(src)
        with open(src, "a", encoding="utf-8") as f:
            f.write('4,Dan,dan@example.com,2023-08-01,1.00\n' if kind == "csv" else '{"event_id": 4}\n')
        return converted

    monkeypatch.setattr(file_load, seam, convert_then_append)
    key = f"files/growing_{kind}.parquet"

    with pytest.raises(IngestionError, match="changed while it was being read") as excinfo:
        ingest(path, key, DS, services=services)

    assert calls == [path]
    assert str(path) in str(excinfo.value)
    assert_failed(services, pg_conn, path.name, key, excinfo.value, kind)
    assert bucket_keys(services) == []


def test_failed_reload_leaves_the_previous_object_untouched(services, pg_conn, tmp_path):
    path = copy_to(GOOD / "customers.csv", tmp_path, "daily.csv")
    key = "files/daily.parquet"
    first = ingest_csv_file(path, key, DS, services=services)
    before = object_bytes(services, key)

    path.write_text('id,name\n1,"never closed\n')
    with pytest.raises(SchemaDetectionError, match="unterminated"):
        ingest_csv_file(path, key, DS, services=services)

    assert object_bytes(services, key) == before
    assert md5(before) == first["checksum"]
    assert [r["status"] for r in runs(pg_conn, "daily.csv")] == ["success", "failed"]
    assert len(ledger(pg_conn)) == 1


# ------------------------------------------------------------------------------- batches


GOOD_ROWS = {
    "bom.csv": 2, "bom.json": 2, "bom_lines.ndjson": 2, "customers.csv": 3, "drift.ndjson": 4,
    "events.json": 3, "events_array.ndjson": 3, "events_lines.json": 3, "header_only.csv": 0,
    "inconsistent.json": 5, "nested.json": 2, "people.tsv": 2, "pinned.csv": 3, "quoted.csv": 3,
    "screen.csv": 3, "types.csv": 3,
    # generated
    "customers.csv.gz": 3, "events.json.gz": 3, "events.ndjson.gz": 3, "people.tsv.gz": 2,
}


def test_batch_with_mixed_good_and_bad_files(services, pg_conn, tmp_path):
    directory = tmp_path / "input"
    for name in GOOD_ROWS:
        if (GOOD / name).exists():
            copy_to(GOOD / name, directory)
    gzip_to(GOOD / "customers.csv", directory / "customers.csv.gz")
    gzip_to(GOOD / "events.json", directory / "events.json.gz")
    gzip_to(GOOD / "events_lines.json", directory / "events.ndjson.gz")
    gzip_to(GOOD / "people.tsv", directory / "people.tsv.gz")
    bad_names = sorted(p.name for p in BAD.iterdir())
    for name in bad_names:
        copy_to(BAD / name, directory)
    generated_bad = {
        "invalid_utf8.csv": _bytes("invalid_utf8.csv", b"id,name\n1,Al\xffce\n"),
        "invalid_utf8.json": _bytes("invalid_utf8.json", b'{"id": "\xff"}\n'),
        "truncated.csv.gz": _truncated_gzip("truncated.csv.gz", GOOD / "customers.csv"),
        "truncated.json.gz": _truncated_gzip("truncated.json.gz", GOOD / "events.json"),
        "zz_folder.csv": _directory("zz_folder.csv"),
    }
    for make in generated_bad.values():
        make(directory)
    bad_names = sorted(bad_names + list(generated_bad))
    assert set(bad_names).isdisjoint(GOOD_ROWS)

    results = batch_ingest_files(directory, "*", DS, services=services)

    names = [Path(r["file"]).name for r in results]
    assert names == sorted(GOOD_ROWS.keys() | set(bad_names))
    stored = []
    for r in results:
        path = Path(r["file"])
        key = file_ingestor.batch_object_key(directory, path, DS)
        assert key == f"files/{file_stem(path.name)}/{DS}/{path.name}.parquet"
        if path.name in GOOD_ROWS:
            assert "uri" in r, r
            assert r["row_count"] == GOOD_ROWS[path.name]
            kind = file_ingestor.file_format(path)
            assert_loaded(services, pg_conn, r, path, key, kind)
            stored.append(key)
        else:
            assert "uri" not in r and r["status"] == "failed", r
            assert r["file"] == str(directory / path.name)
            assert path.name in r["error"]
            assert_failed(services, pg_conn, path.name, key, r["error"], file_ingestor.file_format(path))
    assert bucket_keys(services) == sorted(stored)
    assert len(ledger(pg_conn)) == len(GOOD_ROWS)
    assert len(runs(pg_conn)) == len(results)


def test_batch_recursive_pattern_gives_every_file_its_own_key(services, pg_conn, tmp_path):
    directory = tmp_path / "input"
    (directory / "sub").mkdir(parents=True)
    (directory / "a.csv").write_text("v\n1\n")
    (directory / "a.csv.gz").write_bytes(gzip.compress(b"v\n2\n3\n"))
    (directory / "sub" / "a.csv").write_text("v\n4\n5\n6\n")

    results = batch_ingest_files(directory, "**/a.csv*", DS, services=services)

    assert [r["file"] for r in results] == [
        str(directory / "a.csv"), str(directory / "a.csv.gz"), str(directory / "sub" / "a.csv")
    ]
    keys = [
        f"files/a/{DS}/a.csv.parquet",
        f"files/a/{DS}/a.csv.gz.parquet",
        f"files/sub/a/{DS}/a.csv.parquet",
    ]
    assert [r["object_key"] for r in results] == keys
    assert [read_parquet(services, k).column("v").to_pylist() for k in keys] == [[1], [2, 3], [4, 5, 6]]
    assert bucket_keys(services) == sorted(keys)


@pytest.mark.parametrize(
    "pattern",
    ["../outside/*.csv", "sub/../../outside/*.csv", "..", "ABSOLUTE"],
)
def test_batch_refuses_patterns_leaving_the_directory(services, pg_conn, tmp_path, pattern):
    directory = tmp_path / "input"
    (directory / "sub").mkdir(parents=True)
    copy_to(GOOD / "customers.csv", directory)
    outside = tmp_path / "outside"
    copy_to(GOOD / "screen.csv", outside, "secret.csv")
    if pattern == "ABSOLUTE":
        pattern = str(outside / "*.csv")

    with pytest.raises(IngestionError, match="must be relative"):
        batch_ingest_files(directory, pattern, DS, services=services)
    assert runs(pg_conn) == []
    assert bucket_keys(services) == []


def test_batch_skips_symlinks_pointing_outside(services, pg_conn, tmp_path):
    directory = tmp_path / "input"
    outside = tmp_path / "outside"
    copy_to(GOOD / "customers.csv", directory, "a.csv")
    secret = copy_to(GOOD / "screen.csv", outside, "secret.csv")
    (directory / "link.csv").symlink_to(secret)
    (directory / "linked_dir").symlink_to(outside, target_is_directory=True)
    (directory / "inside_link.csv").symlink_to(directory / "a.csv")  # stays inside: loaded

    results = batch_ingest_files(directory, "**/*.csv", DS, services=services)

    assert [Path(r["file"]).name for r in results] == ["a.csv", "inside_link.csv"]
    assert all("uri" in r for r in results)
    assert {r["source_name"] for r in runs(pg_conn)} == {"a.csv", "inside_link.csv"}
    assert runs(pg_conn, "link.csv") == [] and runs(pg_conn, "secret.csv") == []
    assert bucket_keys(services) == [
        f"files/a/{DS}/a.csv.parquet", f"files/inside_link/{DS}/inside_link.csv.parquet"
    ]
    assert batch_ingest_files(directory, "linked_dir/*.csv", DS, services=services) == []


def test_widening_after_parts_were_uploaded_stores_the_rewritten_file(
    services, pg_conn, tmp_path, monkeypatch
):
    """A large CSV whose last row widens a column: the first attempt had already sent
    parts of its Parquet file; the stored object is the second attempt's, whole."""
    from platform_assets.ingestion.sink import upload

    monkeypatch.setattr(upload, "GROWING_PART_BYTES", 5 * 1024 * 1024)
    rows = 250_000
    with (tmp_path / "large.csv").open("w") as f:
        f.write("id,n,payload\n")
        for i in range(rows):
            f.write(f"{i},{i},{os.urandom(200).hex()}\n")
        f.write(f"{rows},n/a,end\n")
    path = tmp_path / "large.csv"
    # three 32 MiB row groups before the misfit: the upload has time to send parts
    assert path.stat().st_size > 96 * 1024 * 1024
    uploads: list[int] = []
    created = upload.GrowingFileUpload._send_part

    def counting_send_part(self, offset, length):
        uploads.append(offset)
        created(self, offset, length)

    monkeypatch.setattr(upload.GrowingFileUpload, "_send_part", counting_send_part)

    result = ingest_csv_file(path, "files/large.parquet", DS, services=services)

    assert uploads.count(0) >= 2  # the first attempt sent a part; the rewrite started again
    table = assert_loaded(services, pg_conn, result, path, "files/large.parquet", "csv")
    assert table.schema.field("n").type == pa.string()
    assert table.num_rows == rows + 1
    assert table.column("n").to_pylist()[-1] == "n/a"
    listed = services.store.client.list_multipart_uploads(Bucket=services.bronze_bucket)
    assert listed.get("Uploads", []) == []


def test_batch_folders_drop_the_extension_and_objects_keep_the_name(tmp_path):
    # Regression: keys were files/api_prices.csv/<date>/api_prices.parquet (the
    # extension in the folder); twins of one stem must still get objects of their own.
    root = tmp_path / "input"
    keys = {
        name: file_ingestor.batch_object_key(root, root / name, DS)
        for name in ("api_prices.csv", "api_prices.csv.gz", "api_prices.json", "sub/api_prices.csv", ".csv")
    }
    assert keys == {
        "api_prices.csv": f"files/api_prices/{DS}/api_prices.csv.parquet",
        "api_prices.csv.gz": f"files/api_prices/{DS}/api_prices.csv.gz.parquet",
        "api_prices.json": f"files/api_prices/{DS}/api_prices.json.parquet",
        "sub/api_prices.csv": f"files/sub/api_prices/{DS}/api_prices.csv.parquet",
        ".csv": f"files/.csv/{DS}/.csv.parquet",
    }


def test_a_directory_matching_the_batch_glob_gets_a_failed_row(services, pg_conn, tmp_path):
    directory = tmp_path / "input"
    (directory / "sub").mkdir(parents=True)
    (directory / "a.csv").write_text("v\n1\n")

    results = batch_ingest_files(directory, "*", DS, services=services)

    assert [r.get("status") for r in results] == ["success", "failed"]
    assert "is a directory" in results[1]["error"] and "'*'" in results[1]["error"]
    [run] = runs(pg_conn, "sub")
    assert run["status"] == "failed" and "is a directory" in run["error_message"]


def test_detect_csv_schema_reads_tsv_with_tabs_as_a_load_does(tmp_path):
    from platform_assets.ingestion.schema_detector import detect_csv_schema

    path = tmp_path / "prices.tsv"
    path.write_text("sku\tprice\nA\t1.5\n")
    assert [c["name"] for c in detect_csv_schema(path)["columns"]] == ["sku", "price"]

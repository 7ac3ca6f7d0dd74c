"""Object keys: unsafe keys are refused before anything is written; keys S3 accepts work.

A refused key raises IngestionError from ``tracked_run`` before the run row is
inserted, so no ``running`` row is left behind. The team's rule is "bad input gets a
clear error and a failed row": a refused key gets a failed row (names that cannot be
stored as text, NUL or lone surrogates, are recorded escaped).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

from platform_assets.ingestion.database_ingestor import (
    extract_table_full,
    extract_with_custom_query,
)
from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.file_ingestor import (
    batch_ingest_files,
    ingest_csv_file,
    ingest_json_file,
)
from platform_assets.ingestion.files.family_load import load_family_partition
from platform_assets.ingestion.sink.object_keys import (
    MAX_KEY_BYTES,
    validate_object_key,
)
from platform_assets.registry import FileFamily, Registry
from tests.helpers import query, read_parquet
from tests.security._support import DS, bucket_keys, check_each, runs, tracking_exists

BAD_KEYS = [
    "..",
    "../escape.parquet",
    "a/../../b.parquet",
    "a/..",
    ".",
    "./a.parquet",
    "a/./b.parquet",
    "/absolute/key.parquet",
    "//double-leading.parquet",
    "a//b.parquet",
    "a/",
    "a\\b.parquet",
    "..\\..\\windows.parquet",
    "a/b\x00.parquet",
    "a/\nb.parquet",
    "a\rb.parquet",
    "a\tb.parquet",
    "a\x1fb.parquet",
    "k" * (MAX_KEY_BYTES + 1),
    "é" * 513,  # 513 characters, 1026 bytes
    "d/" * 400 + "x" * 300,  # many segments, over the limit
]


@pytest.fixture
def inputs(pg_conn: Any, tmp_path: Path) -> dict[str, Path]:
    query(pg_conn, "CREATE TABLE products (id int PRIMARY KEY, name text); INSERT INTO products VALUES (1, 'a')")
    csv_path = tmp_path / "data.csv"
    csv_path.write_text("id,name\n1,a\n")
    json_path = tmp_path / "data.json"
    json_path.write_text('[{"id": 1, "name": "a"}]')
    return {"csv": csv_path, "json": json_path}


def loaders(services: Any, inputs: dict[str, Path]) -> dict[str, Callable[[str], Any]]:
    return {
        "table": lambda key: extract_table_full("products", "public", key, DS, services=services),
        "query": lambda key: extract_with_custom_query("SELECT 1 AS one", key, DS, source_name="q", services=services),
        "csv": lambda key: ingest_csv_file(inputs["csv"], key, DS, services=services),
        "json": lambda key: ingest_json_file(inputs["json"], key, DS, services=services),
    }


def test_validate_object_key_refuses_every_bad_key():
    def check(key: str) -> None:
        with pytest.raises(IngestionError, match="object key"):
            validate_object_key(key)

    check_each(BAD_KEYS + [""], check)


def test_bad_keys_are_refused_before_anything_is_written(services, pg_conn, inputs):
    load = loaders(services, inputs)
    cases = [(api, key) for key in BAD_KEYS for api in load]

    def check(case: tuple[str, str]) -> None:
        api, key = case
        with pytest.raises(IngestionError, match="object key") as caught:
            load[api](key)
        assert repr(key) in str(caught.value)  # the message names the key, control characters escaped
        assert [r for r in runs(pg_conn) if r["status"] in ("running", "success")] == []

    check_each(cases, check)
    assert bucket_keys(services) == []
    if tracking_exists(pg_conn):
        assert query(pg_conn, "SELECT count(*) FROM data_platform.ingested_files") == [(0,)]


def test_empty_object_key(services, pg_conn, inputs):
    """No default key for a custom query or a file; a table falls back to the guide's default key."""
    load = loaders(services, inputs)

    def check(api: str) -> None:
        with pytest.raises(IngestionError, match="object key"):
            load[api]("")

    check_each(["query", "csv", "json"], check)
    assert load["table"]("")["object_key"] == f"postgres/products/{DS}/products.parquet"
    assert sorted(r["status"] for r in runs(pg_conn)) == ["failed", "failed", "failed", "success"]


def test_refused_key_leaves_a_failed_row(services, pg_conn, inputs):
    load = loaders(services, inputs)

    def check(api: str) -> None:
        with pytest.raises(IngestionError, match="object key"):
            load[api]("../escape.parquet")

    check_each(list(load), check)
    assert [r["status"] for r in runs(pg_conn)] == ["failed"] * len(load)


LONE_SURROGATE_KEY = "keys/bad\ud800.parquet"


def test_lone_surrogate_key_is_refused_with_ingestion_error():
    with pytest.raises(IngestionError, match="object key"):
        validate_object_key(LONE_SURROGATE_KEY)


def test_lone_surrogate_key_writes_nothing(services, pg_conn, inputs):
    load = loaders(services, inputs)

    def check(api: str) -> None:
        with pytest.raises(Exception):
            load[api](LONE_SURROGATE_KEY)

    check_each(list(load), check)
    assert [r for r in runs(pg_conn) if r["status"] != "failed"] == []
    assert bucket_keys(services) == []


GOOD_KEYS = [
    "données/2024-01-01/файл ☃.parquet",
    "emoji/😀🎉/x.parquet",
    "中文/日本語/한국어.parquet",
    "spaces and +plus/%41percent/?q=1&x=2#frag.parquet",
    "sub-delims/!$&'()*+,;=@~/x.parquet",
    "dots/...hidden/..x/x..parquet",
    "x" * (MAX_KEY_BYTES - len(".parquet")) + ".parquet",  # exactly 1024 bytes
    "é" * ((MAX_KEY_BYTES - len(".parquet")) // 2) + ".parquet",  # 1024 bytes of 2-byte characters
    "a\x7fdel/x.parquet",
]


def test_unicode_and_odd_keys_that_s3_accepts_work(services, pg_conn, inputs):
    assert all(len(k.encode()) <= MAX_KEY_BYTES for k in GOOD_KEYS)

    def check(indexed: tuple[int, str]) -> None:
        i, key = indexed
        result = extract_with_custom_query(
            f"SELECT {i} AS one", key, DS, source_name=f"good_{i}", services=services
        )
        assert result["object_key"] == key
        assert result["uri"] == f"s3://{services.bronze_bucket}/{key}"
        assert read_parquet(services, key).column("one").to_pylist() == [i]
        [run] = runs(pg_conn, f"good_{i}")
        assert run["status"] == "success" and run["object_key"] == key and run["uri"] == result["uri"]

    check_each(list(enumerate(GOOD_KEYS)), check)
    assert bucket_keys(services) == sorted(GOOD_KEYS)
    # the file APIs take the same keys
    ingest_csv_file(inputs["csv"], GOOD_KEYS[0] + ".csv.parquet", DS, services=services)
    ingest_json_file(inputs["json"], GOOD_KEYS[1] + ".json.parquet", DS, services=services)
    assert read_parquet(services, GOOD_KEYS[0] + ".csv.parquet").num_rows == 1
    assert read_parquet(services, GOOD_KEYS[1] + ".json.parquet").num_rows == 1


def test_batch_files_whose_names_make_bad_keys_fail_alone(services, pg_conn, tmp_path):
    """A file name with a backslash or a newline gives an unsafe key: that file fails, the others load."""
    directory = tmp_path / "in"
    directory.mkdir()
    for name in ("good.csv", "back\\slash.csv", "new\nline.csv", "ctrl\x01.csv"):
        (directory / name).write_text("id\n1\n")

    results = batch_ingest_files(directory, "*.csv", DS, services=services)

    by_name = {Path(r["file"]).name: r for r in results}
    assert by_name["good.csv"]["status"] == "success"
    for name in ("back\\slash.csv", "new\nline.csv", "ctrl\x01.csv"):
        assert by_name[name]["status"] == "failed"
        assert "object key" in by_name[name]["error"]
    assert bucket_keys(services) == [f"files/good/{DS}/good.csv.parquet"]
    statuses = {r["source_name"]: r["status"] for r in runs(pg_conn)}
    assert statuses.pop("good.csv") == "success"
    assert set(statuses.values()) == {"failed"}  # each refused file has its failed row


def test_registry_key_template_leaving_the_prefix_is_refused_at_run_time(services, pg_conn, tmp_path):
    """The registry checks only the placeholders; a template with '..' is refused when the file loads."""
    directory = tmp_path / "in"
    directory.mkdir()
    (directory / "a.csv").write_text("id\n1\n")
    os.utime(directory / "a.csv", (1704103200, 1704103200))  # 2024-01-01 10:00 UTC
    family = FileFamily(
        name="fam", directory=str(directory), glob="*.csv", format="csv",
        object_key="../../{name}/{date}/{file}.{version}.parquet", stable_seconds=0,
    )
    registry = Registry(files=[family])

    [result] = load_family_partition(family.spec(registry), DS, services).outcomes

    assert result.status == "failed" and "object key" in result.reason
    assert bucket_keys(services) == []
    assert [r for r in runs(pg_conn) if r["status"] != "failed"] == []

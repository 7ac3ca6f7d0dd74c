"""Values that broke extraction: non-UTF-8 source databases, outer joins, very large fields.

Each runs through both COPY clients (psql streams and the psycopg2 fallback) and
reads the stored object back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from platform_assets.ingestion.database_ingestor import (
    extract_table_full,
    extract_table_incremental,
    extract_with_custom_query,
)
from platform_assets.ingestion.errors import IngestionError
from platform_resources.config import PostgresSettings
from tests.conftest import database_with_encoding
from tests.helpers import query, read_parquet

CLIENTS = ["psql", "psycopg2"]


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("INGESTION_COPY_CLIENT", request.param)
    return request.param


@pytest.fixture
def latin1() -> Iterator[PostgresSettings]:
    yield from database_with_encoding("LATIN1")


@pytest.fixture
def sql_ascii() -> Iterator[PostgresSettings]:
    yield from database_with_encoding("SQL_ASCII")


def _services_on(services: Any, source: PostgresSettings) -> Any:
    from dataclasses import replace

    return replace(services, source=source)


# --------------------------------------------------------------------------- encodings


def test_text_from_a_latin1_database_is_exact(services: Any, latin1: PostgresSettings, client: str) -> None:
    """Defect: the client encoding was never set; 'été' came back mangled and 'café' failed."""
    conn = latin1.connect()
    conn.autocommit = True
    conn.set_client_encoding("UTF8")
    query(conn, "CREATE TABLE words (id int PRIMARY KEY, word text, note varchar(20))")
    query(conn, "INSERT INTO words VALUES (1, 'été', 'naïve'), (2, 'café', 'Ærø'), (3, '£5 ½', NULL)")
    conn.close()
    on_latin1 = _services_on(services, latin1)
    extract_table_full("words", "public", "w/full.parquet", services=on_latin1)
    assert read_parquet(services, "w/full.parquet").to_pylist() == [
        {"id": 1, "word": "été", "note": "naïve"},
        {"id": 2, "word": "café", "note": "Ærø"},
        {"id": 3, "word": "£5 ½", "note": None},
    ]
    extract_with_custom_query("SELECT word FROM words WHERE word LIKE 'caf%'", "w/q.parquet",
                              services=on_latin1)
    assert read_parquet(services, "w/q.parquet").to_pylist() == [{"word": "café"}]


def _sql_ascii_table(settings: PostgresSettings, *hex_values: str) -> None:
    conn = settings.connect()
    conn.autocommit = True
    query(conn, "CREATE TABLE raw (id int PRIMARY KEY, t text)")
    for i, value in enumerate(hex_values, start=1):
        query(conn, "INSERT INTO raw VALUES (%s, convert_from(decode(%s, 'hex'), 'SQL_ASCII'))", (i, value))
    conn.close()


def test_sql_ascii_database_with_valid_utf8_bytes_loads_them(services: Any, sql_ascii: PostgresSettings,
                                                             client: str) -> None:
    _sql_ascii_table(sql_ascii, "c3a974c3a9", "616263")  # 'été', 'abc' as UTF-8 bytes
    extract_table_full("raw", "public", "raw/ok.parquet", services=_services_on(services, sql_ascii))
    assert read_parquet(services, "raw/ok.parquet").column("t").to_pylist() == ["été", "abc"]


def test_sql_ascii_database_with_other_bytes_fails_naming_the_encoding(services: Any, sql_ascii: PostgresSettings,
                                                                        client: str) -> None:
    _sql_ascii_table(sql_ascii, "616263", "e974e9")  # 'abc', then 'été' in LATIN1 bytes
    with pytest.raises(IngestionError) as failure:
        extract_table_full("raw", "public", "raw/bad.parquet", services=_services_on(services, sql_ascii))
    message = str(failure.value)
    assert "SQL_ASCII" in message and "UTF-8" in message
    assert "infinity" not in message.lower()


# --------------------------------------------------------------------------- custom queries


def test_custom_query_with_an_outer_join_keeps_its_nulls(services: Any, pg_conn: Any, client: str) -> None:
    """Defect: a query column's nullability was taken from its base table."""
    query(
        pg_conn,
        "CREATE TABLE cust (id int PRIMARY KEY, name text NOT NULL);"
        "CREATE TABLE ord (id int PRIMARY KEY, customer_id int NOT NULL, amount numeric(8,2) NOT NULL);"
        "INSERT INTO cust VALUES (1, 'alice');"
        "INSERT INTO ord VALUES (10, 1, 5.00), (11, 2, 7.50)",
    )
    result = extract_with_custom_query(
        "SELECT o.id, c.name, c.id AS customer FROM ord o LEFT JOIN cust c ON c.id = o.customer_id",
        "q/outer.parquet", services=services,
    )
    assert result["row_count"] == 2
    table = read_parquet(services, "q/outer.parquet")
    assert sorted(table.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 10, "name": "alice", "customer": 1},
        {"id": 11, "name": None, "customer": None},
    ]
    assert all(column["nullable"] for column in result["schema"]["columns"])


# --------------------------------------------------------------------------- large values

MIB = 1024 * 1024


def test_values_larger_than_a_read_block_load_exactly(services: Any, pg_conn: Any, client: str) -> None:
    """Defect: any row or field over ~2 MiB (bytea ~1.1 MB) failed the whole table."""
    query(pg_conn, "CREATE TABLE docs (id int PRIMARY KEY, body text, doc jsonb, blob bytea, updated_at timestamptz)")
    big_text = "line\twith tab\n" * (3 * MIB // 14) + "é"
    big_json = {"items": ["x" * 1000] * 3000}
    big_blob = bytes(range(256)) * (6 * MIB // 256)
    query(pg_conn, "INSERT INTO docs VALUES (1, 'small', '{}', '\\x00', now())")
    query(pg_conn, "INSERT INTO docs VALUES (2, %s, %s, %s, now())", (big_text, json.dumps(big_json), big_blob))
    query(pg_conn, "INSERT INTO docs VALUES (3, 'after', '[]', NULL, now())")
    result = extract_table_full("docs", "public", "docs/full.parquet", services=services)
    assert result["row_count"] == 3
    rows = {r["id"]: r for r in read_parquet(services, "docs/full.parquet").to_pylist()}
    assert rows[2]["body"] == big_text
    assert json.loads(rows[2]["doc"]) == big_json
    assert rows[2]["blob"] == big_blob
    assert (rows[1]["body"], rows[3]["body"], rows[3]["blob"]) == ("small", "after", None)
    incremental = extract_table_incremental("docs", "public", "updated_at", "docs/inc.parquet", services=services)
    assert incremental["row_count"] == 3


def test_a_field_over_the_limit_fails_naming_column_key_and_limit(services: Any, pg_conn: Any) -> None:
    query(pg_conn, "CREATE TABLE huge (id int PRIMARY KEY, small text, body text)")
    query(pg_conn, "INSERT INTO huge VALUES (1, 'a', 'b'), (7, 'c', repeat('x', 65 * 1024 * 1024))")
    with pytest.raises(IngestionError) as failure:
        extract_table_full("huge", "public", "huge/full.parquet", services=services)
    message = str(failure.value)
    assert "'body'" in message and "id=7" in message and "64 MiB" in message

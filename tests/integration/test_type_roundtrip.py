"""Every mapped PostgreSQL type survives the trip to Parquet in the bronze bucket.

One table holds a column of each type the engine maps; rows carry edge values
(NaN/Infinity floats, empty strings vs NULL, embedded newlines and quotes,
non-UTC offsets, empty and NUL bytea, arrays with NULL elements, a row of NULLs).
The Parquet object is read back from the (moto) S3 bucket and compared value by
value with what psycopg2 reads from the source table.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from platform_assets.ingestion.database_ingestor import (
    extract_table_full,
    extract_with_custom_query,
)
from platform_assets.ingestion.errors import IngestionError
from tests.helpers import query, read_parquet

DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy, "very"');
CREATE DOMAIN price3 AS numeric(8,3);
CREATE TABLE all_types (
    id          int4 NOT NULL PRIMARY KEY,
    c_bool      bool,
    c_int2      int2,
    c_int4      int4,
    c_int8      int8,
    c_float4    float4,
    c_float8    float8,
    c_num_12_2  numeric(12,2),
    c_num_38_10 numeric(38,10),
    c_num       numeric,
    c_num_50_5  numeric(50,5),
    c_text      text,
    c_varchar   varchar(10),
    c_char      char(3),
    c_uuid      uuid,
    c_json      json,
    c_jsonb     jsonb,
    c_date      date,
    c_time      time,
    c_ts        timestamp,
    c_tstz      timestamptz,
    c_bytea     bytea,
    c_int4_arr  int4[],
    c_text_arr  text[],
    c_interval  interval,
    c_inet      inet,
    c_money     money,
    c_enum      mood,
    c_domain    price3,
    r_int8      int8 NOT NULL,
    r_text      text NOT NULL,
    r_tstz      timestamptz NOT NULL
);
"""

COLUMNS = [
    "id", "c_bool", "c_int2", "c_int4", "c_int8", "c_float4", "c_float8", "c_num_12_2",
    "c_num_38_10", "c_num", "c_num_50_5", "c_text", "c_varchar", "c_char", "c_uuid", "c_json",
    "c_jsonb", "c_date", "c_time", "c_ts", "c_tstz", "c_bytea", "c_int4_arr", "c_text_arr",
    "c_interval", "c_inet", "c_money", "c_enum", "c_domain", "r_int8", "r_text", "r_tstz",
]

# Rows as SQL literals (the source of truth is what Postgres stores, read back below).
ROWS = [
    # 1: ordinary values
    """(1, true, 1, 2, 3, 1.5, 2.25, 1234.56, 1.0000000001, '1.2300', 12345.12345,
        'plain', 'abcdefghij', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        '{"a": [1, 2, {"b": null}],   "s": "x,y\\n\\"z\\""}',
        '{"b": 1, "a": [true, null], "s": "x,y"}',
        '2024-02-29', '12:34:56.789', '2024-02-29 23:59:59.999999',
        '2024-03-10 02:30:00.123456-08', '\\x0001ff', '{1,2,3}', '{a,NULL,"b,c"}',
        '1 year 2 mons 3 days 04:05:06.789', '192.168.0.1/24', 1234.56, 'ok', 12345.678,
        1, 'r1', '2024-01-01 00:00:00+00')""",
    # 2: extremes and NaN / infinities
    """(2, false, -32768, 2147483647, -9223372036854775808, 'NaN', 'Infinity',
        -9999999999.99, 9999999999999999999999999999.9999999999,
        '123456789012345678901234567890.123456789012345678901234567890',
        '123456789012345678901234567890123456789012345.12345',
        '', '', '', '00000000-0000-0000-0000-000000000000', '[]', '{}',
        '0001-01-01', '00:00:00', '0001-01-01 00:00:00', '2024-06-01 12:00:00+05:30',
        '\\x', '{}', '{}', '-1 days', '::1', -0.01, 'sad', -0.001,
        9223372036854775807, '', '1970-01-01 00:00:00+00')""",
    # 3: more float edges, text with newlines, quotes, commas, unicode
    """(3, NULL, 32767, -2147483648, 0, '-Infinity', 'NaN', 0.00, 0, 'NaN', 0,
        E'line1\\nline2\\r\\nline3 "quoted", comma; \\'single\\' \\\\ backslash',
        'ünï "q",', 'é",', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
        E'{"k": "multi\\\\nline"}', '{"uni": "héllo 🌍 中文"}',
        '9999-12-31', '23:59:59.999999', '9999-12-31 23:59:59.999999',
        '1999-12-31 23:59:59.5+14', E'\\\\x00', '{NULL,5,-7}',
        E'{"d\\\\"e","",NULL,"NULL","héllo 🌍","x\\ny"}', '00:00:00', '10.0.0.1',
        0, 'happy, "very"', 0, -1, E'tab\\tand\\nnewline', '2000-02-29 12:00:00.000001-11')""",
    # 4: float extremes, unicode text, bytea with embedded NULs
    """(4, true, 0, 0, 1, 3.4028235e38, 1e308, 0.01, -0.0000000001, '-0.000000000000000000001',
        -99999.00000, 'héllo 🌍 ñ 中文', '\\.', 'x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        'null', '"just a string"', '1970-01-01', '00:00:00.000001', '1970-01-01 00:00:00.000001',
        '1970-01-01 00:00:00.000001+00', '\\x00ff00', '{0}', '{""}',
        '-178000000 years', '2001:db8::/32', 92233720368547758.07, 'sad', -99999.999,
        -9223372036854775808, 'NULL', '2024-12-31 23:59:59.999999-00:30')""",
    # 5: float subnormal / negative zero
    """(5, false, -1, -1, -1, 1e-45, 5e-324, -0.01, 0.0000000001, '1e-30', 0.00001,
        'NULL', 'N', 'abc', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, NULL, NULL, 0, '\\N', '2024-01-01 00:00:00+00')""",
    # 6: a row of NULLs (NOT NULL columns excepted)
    """(6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, 42, 'x', '2024-01-01 00:00:00+00')""",
    # 7: negative zero float and another NULL row shape
    """(7, NULL, NULL, NULL, NULL, '-0', '-0', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, '\\x', '{NULL}', '{NULL}', NULL, NULL, NULL,
        NULL, NULL, 7, ' ', '2024-01-01 00:00:00+00')""",
]

# Columns whose Parquet value is the exact Postgres text form.
# (inet/cidr, money and enums already arrive from psycopg2 as their output text.)
TEXT_FORM = {"c_num", "c_num_50_5", "c_json", "c_jsonb", "c_interval", "c_money", "c_enum"}

EXPECTED_TYPES: dict[str, tuple[pa.DataType, bool]] = {
    "id": (pa.int32(), False),
    "c_bool": (pa.bool_(), True),
    "c_int2": (pa.int16(), True),
    "c_int4": (pa.int32(), True),
    "c_int8": (pa.int64(), True),
    "c_float4": (pa.float32(), True),
    "c_float8": (pa.float64(), True),
    "c_num_12_2": (pa.decimal128(12, 2), True),
    "c_num_38_10": (pa.decimal128(38, 10), True),
    "c_num": (pa.string(), True),
    "c_num_50_5": (pa.string(), True),
    "c_text": (pa.string(), True),
    "c_varchar": (pa.string(), True),
    "c_char": (pa.string(), True),
    "c_uuid": (pa.string(), True),
    "c_json": (pa.string(), True),
    "c_jsonb": (pa.string(), True),
    "c_date": (pa.date32(), True),
    "c_time": (pa.time64("us"), True),
    "c_ts": (pa.timestamp("us"), True),
    "c_tstz": (pa.timestamp("us", tz="UTC"), True),
    "c_bytea": (pa.binary(), True),
    "c_int4_arr": (pa.list_(pa.int32()), True),
    "c_text_arr": (pa.list_(pa.string()), True),
    "c_interval": (pa.string(), True),
    "c_inet": (pa.string(), True),
    "c_money": (pa.string(), True),
    "c_enum": (pa.string(), True),
    "c_domain": (pa.decimal128(8, 3), True),
    "r_int8": (pa.int64(), False),
    "r_text": (pa.string(), False),
    "r_tstz": (pa.timestamp("us", tz="UTC"), False),
}


@pytest.fixture
def all_types(pg_conn: Any) -> None:
    with pg_conn.cursor() as cur:
        cur.execute(DDL)
        cur.execute("SET TimeZone = 'America/New_York'")  # inserts/reads are not in UTC
        cur.execute("INSERT INTO all_types VALUES " + ",\n".join(ROWS))
        cur.execute("RESET TimeZone")


def source_rows(conn: Any, table: str = "all_types") -> list[dict[str, Any]]:
    """The table as psycopg2 reads it, converted to the Python values pyarrow returns."""
    select = ", ".join(f"{c}::text AS {c}" if c in TEXT_FORM else c for c in COLUMNS)
    with conn.cursor() as cur:
        cur.execute("SET TimeZone = 'Asia/Kolkata'")  # aware datetimes come back at +05:30
        cur.execute(f"SELECT {select} FROM {table} ORDER BY id")
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        cur.execute("RESET TimeZone")
    for row in rows:
        for k, v in row.items():
            if isinstance(v, memoryview):
                row[k] = bytes(v)
        if row["c_float4"] is not None:
            # psycopg2 parses float4's shortest text as a double; the stored value is a float32
            row["c_float4"] = float(np.float32(row["c_float4"]))
    return rows


def same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN and distinguishes -0.0 from 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return (a.tzinfo is None) == (b.tzinfo is None) and a == b
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a == b
    return type(a) is type(b) and a == b


def test_full_extract_preserves_every_type_and_value(services: Any, pg_conn: Any, all_types: None) -> None:
    result = extract_table_full("all_types", "public", "types/all_types.parquet", "2024-05-01", services=services)
    table = read_parquet(services, "types/all_types.parquet")

    # The schema, exactly: types and nullability.
    assert table.schema.names == COLUMNS
    for name, (arrow_type, nullable) in EXPECTED_TYPES.items():
        field = table.schema.field(name)
        assert field.type == arrow_type, (name, field.type, arrow_type)
        assert field.nullable is nullable, (name, field.nullable)
    assert str(table.schema.field("c_tstz").type) == "timestamp[us, tz=UTC]"
    assert table.schema.field("c_ts").type.tz is None
    assert table.schema.field("c_num_12_2").metadata[b"pg_type"] == b"numeric(12,2)"
    assert table.schema.field("c_domain").metadata[b"pg_type"] == b"price3"
    assert table.schema.field("c_char").metadata[b"pg_type"] == b"character(3)"

    expected = source_rows(pg_conn)
    assert result["row_count"] == len(expected) == table.num_rows == len(ROWS)
    actual = sorted(table.to_pylist(), key=lambda r: r["id"])
    mismatches = []
    for exp, act in zip(expected, actual):
        for name in COLUMNS:
            e, a = exp[name], act[name]
            if isinstance(e, list):
                ok = isinstance(a, list) and len(a) == len(e) and all(map(same, e, a))
            else:
                ok = same(e, a)
            if not ok:
                mismatches.append((exp["id"], name, e, a))
    assert not mismatches, mismatches


def test_spot_values(services: Any, all_types: None) -> None:
    """A few values written out literally, independent of psycopg2's conversions."""
    extract_table_full("all_types", "public", "types/spot.parquet", services=services)
    rows = {r["id"]: r for r in read_parquet(services, "types/spot.parquet").to_pylist()}
    utc = dt.UTC

    # timestamptz inserted at -08 / +05:30 / +14 / -11 / -00:30 comes back as the UTC instant
    assert rows[1]["c_tstz"] == dt.datetime(2024, 3, 10, 10, 30, 0, 123456, tzinfo=utc)
    assert rows[1]["c_tstz"].utcoffset() == dt.timedelta(0)
    assert rows[2]["c_tstz"] == dt.datetime(2024, 6, 1, 6, 30, tzinfo=utc)
    assert rows[3]["c_tstz"] == dt.datetime(1999, 12, 31, 9, 59, 59, 500000, tzinfo=utc)
    assert rows[3]["r_tstz"] == dt.datetime(2000, 2, 29, 23, 0, 0, 1, tzinfo=utc)
    assert rows[4]["r_tstz"] == dt.datetime(2025, 1, 1, 0, 29, 59, 999999, tzinfo=utc)
    # naive timestamp keeps its wall-clock value and microseconds
    assert rows[1]["c_ts"] == dt.datetime(2024, 2, 29, 23, 59, 59, 999999)
    assert rows[4]["c_ts"] == dt.datetime(1970, 1, 1, 0, 0, 0, 1)
    assert rows[2]["c_ts"] == dt.datetime(1, 1, 1)
    assert rows[3]["c_time"] == dt.time(23, 59, 59, 999999)
    # floats
    assert math.isnan(rows[2]["c_float4"]) and rows[2]["c_float8"] == math.inf
    assert rows[3]["c_float4"] == -math.inf and math.isnan(rows[3]["c_float8"])
    assert rows[4]["c_float8"] == 1e308 and rows[5]["c_float8"] == 5e-324
    assert math.copysign(1, rows[7]["c_float8"]) == -1.0
    # numerics: exact decimals, exact text beyond decimal128
    assert rows[2]["c_num_38_10"] == Decimal("9999999999999999999999999999.9999999999")
    assert rows[1]["c_num"] == "1.2300"
    assert rows[2]["c_num"] == "123456789012345678901234567890.123456789012345678901234567890"
    assert rows[3]["c_num"] == "NaN"
    assert rows[2]["c_num_50_5"] == "123456789012345678901234567890123456789012345.12345"
    assert rows[1]["c_domain"] == Decimal("12345.678")
    # text: '' is not NULL; the literal string 'NULL' and '\N' are not NULL either
    assert rows[2]["c_text"] == "" and rows[6]["c_text"] is None
    assert rows[5]["c_text"] == "NULL" and rows[5]["r_text"] == "\\N"
    assert rows[2]["c_char"] == "   " and rows[1]["c_char"] == "ab "
    assert rows[4]["c_varchar"] == "\\."
    assert rows[3]["c_text"] == 'line1\nline2\r\nline3 "quoted", comma; \'single\' \\ backslash'
    assert rows[4]["c_text"] == "héllo 🌍 ñ 中文"
    # bytea
    assert rows[2]["c_bytea"] == b"" and rows[3]["c_bytea"] == b"\x00"
    assert rows[4]["c_bytea"] == b"\x00\xff\x00" and rows[6]["c_bytea"] is None
    # arrays
    assert rows[3]["c_int4_arr"] == [None, 5, -7]
    assert rows[3]["c_text_arr"] == ['d"e', "", None, "NULL", "héllo 🌍", "x\ny"]
    assert rows[2]["c_int4_arr"] == [] and rows[6]["c_int4_arr"] is None
    assert rows[7]["c_text_arr"] == [None]
    # text forms
    assert rows[1]["c_json"] == '{"a": [1, 2, {"b": null}],   "s": "x,y\\n\\"z\\""}'
    assert rows[1]["c_jsonb"] == '{"a": [true, null], "b": 1, "s": "x,y"}'
    assert rows[1]["c_interval"] == "1 year 2 mons 3 days 04:05:06.789"
    assert rows[3]["c_enum"] == 'happy, "very"'
    assert rows[2]["c_inet"] == "::1"
    assert all(rows[6][c] is None for c in COLUMNS if c.startswith("c_"))


def test_schema_history_records_types(services: Any, pg_conn: Any, all_types: None) -> None:
    extract_table_full("all_types", "public", "types/history.parquet", services=services)
    [(doc,)] = query(
        pg_conn,
        "SELECT schema_metadata FROM data_platform.schema_history WHERE source_name = 'public.all_types'",
    )
    assert doc["format"] == "postgres"
    assert doc["table_name"] == "all_types" and doc["schema"] == "public"
    columns = {c["name"]: c for c in doc["columns"]}
    assert [c["name"] for c in doc["columns"]] == COLUMNS
    assert [c["position"] for c in doc["columns"]] == list(range(1, len(COLUMNS) + 1))
    for name, (arrow_type, nullable) in EXPECTED_TYPES.items():
        assert columns[name]["arrow_type"] == str(arrow_type), name
        assert columns[name]["nullable"] is nullable, name
    assert columns["c_num_12_2"]["precision"] == 12 and columns["c_num_12_2"]["scale"] == 2
    assert columns["c_domain"]["precision"] == 8 and columns["c_domain"]["scale"] == 3
    kept_as_text = {n for n, c in columns.items() if c.get("kept_as_text")}
    assert kept_as_text == {"c_num", "c_num_50_5", "c_interval", "c_inet", "c_money", "c_enum"}


def test_custom_query_over_the_same_table_gives_the_same_data(
    services: Any, pg_conn: Any, all_types: None
) -> None:
    extract_table_full("all_types", "public", "types/table.parquet", services=services)
    extract_with_custom_query(
        "SELECT * FROM public.all_types ORDER BY id", "types/query.parquet",
        source_name="all_types_query", services=services,
    )
    by_table = read_parquet(services, "types/table.parquet")
    by_query = read_parquet(services, "types/query.parquet")
    assert by_query.schema.names == by_table.schema.names
    for name in COLUMNS:
        assert by_query.schema.field(name).type == by_table.schema.field(name).type, name
    assert by_table.schema.field("r_int8").nullable is False
    # a query's columns are nullable whatever their base table says (an outer join can null any)
    assert by_query.schema.field("r_int8").nullable is True
    key = lambda r: r["id"]
    left = sorted(by_table.to_pylist(), key=key)
    right = sorted(by_query.to_pylist(), key=key)
    for a, b in zip(left, right):
        for name in COLUMNS:
            assert same(a[name], b[name]) or (
                isinstance(a[name], list) and len(a[name]) == len(b[name]) and all(map(same, a[name], b[name]))
            ), name


def test_many_rows_generated(services: Any, pg_conn: Any) -> None:
    """A few thousand generated rows: counts, sums and per-row values survive."""
    query(
        pg_conn,
        """
        CREATE TABLE gen AS
        SELECT g AS id,
               (g * 1.01)::numeric(12,2) AS amount,
               g::float8 / 7 AS ratio,
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second 1 microsecond' AS ts,
               CASE WHEN g % 5 = 0 THEN NULL ELSE repeat(chr(65 + g % 26), g % 40) END AS label,
               ARRAY[g, g + 1] AS pair,
               decode(lpad(to_hex(g), 8, '0'), 'hex') AS raw
        FROM generate_series(1, 3000) g
        """,
    )
    result = extract_table_full("gen", "public", "gen/gen.parquet", services=services)
    table = read_parquet(services, "gen/gen.parquet")
    assert result["row_count"] == table.num_rows == 3000
    rows = sorted(table.to_pylist(), key=lambda r: r["id"])
    src = query(pg_conn, "SELECT id, amount, ratio, ts, label, pair, raw FROM gen ORDER BY id")
    for r, (i, amount, ratio, ts, label, pair, raw) in zip(rows, src):
        assert (r["id"], r["amount"], r["ratio"], r["ts"], r["label"], r["pair"], r["raw"]) == (
            i, amount, ratio, ts, label, pair, bytes(raw)
        )


@pytest.mark.parametrize(
    "ddl, value",
    [
        ("numeric(12,2)", "'NaN'"),
        ("date", "'infinity'"),
        ("timestamptz", "'-infinity'"),
    ],
)
def test_value_without_parquet_equivalent_fails_cleanly(
    services: Any, pg_conn: Any, ddl: str, value: str
) -> None:
    """Documented limitation: such values fail the run with a clear error, nothing is stored."""
    query(pg_conn, f"CREATE TABLE odd (id int, v {ddl}); INSERT INTO odd VALUES (1, {value})")
    with pytest.raises(IngestionError, match="could not be converted|custom query"):
        extract_table_full("odd", "public", "odd/odd.parquet", services=services)
    [(status, message)] = query(
        pg_conn,
        "SELECT status, error_message FROM data_platform.ingestion_metadata WHERE source_name = 'public.odd'",
    )
    assert status == "failed" and message
    listed = services.store.client.list_objects_v2(Bucket=services.bronze_bucket, Prefix="odd/")
    assert listed.get("KeyCount", 0) == 0


def test_single_column_null_rows_are_kept(services: Any, pg_conn: Any) -> None:
    query(pg_conn, "CREATE TABLE one_col (v int4); INSERT INTO one_col VALUES (1), (NULL), (NULL), (2)")
    result = extract_table_full("one_col", "public", "one/one_col.parquet", services=services)
    values = read_parquet(services, "one/one_col.parquet").column("v").to_pylist()
    assert sorted(values, key=lambda v: (v is None, v)) == [1, 2, None, None]
    assert result["row_count"] == 4


def test_float_array_special_values(services: Any, pg_conn: Any) -> None:
    query(
        pg_conn,
        "CREATE TABLE farr (id int, f8 float8[], f4 float4[]); "
        "INSERT INTO farr VALUES (1, '{NaN,Infinity,-Infinity,1.5}', '{NaN,-Infinity,0.5}')",
    )
    extract_table_full("farr", "public", "farr/farr.parquet", services=services)
    [row] = read_parquet(services, "farr/farr.parquet").to_pylist()
    assert math.isnan(row["f8"][0]) and row["f8"][1:] == [math.inf, -math.inf, 1.5]
    assert math.isnan(row["f4"][0]) and row["f4"][1:] == [-math.inf, 0.5]


def test_text_with_every_copy_escape_round_trips(services: Any, pg_conn: Any) -> None:
    """COPY's text format escapes these characters; each must come back as stored."""
    values = ["", "\\", "\\N", "\\\\N", "a\tb", "a\nb", "a\rb", "\b\f\v", "end\\", "\\t literal", "plain"]
    query(pg_conn, "CREATE TABLE escapes (v text)")
    with pg_conn.cursor() as cur:
        cur.executemany("INSERT INTO escapes VALUES (%s)", [(v,) for v in values] + [(None,)])
    pg_conn.commit()
    extract_table_full("escapes", "public", "esc/escapes.parquet", services=services)
    stored = read_parquet(services, "esc/escapes.parquet").column("v").to_pylist()
    assert sorted(stored, key=lambda v: (v is None, v or "")) == sorted(
        values + [None], key=lambda v: (v is None, v or "")
    )

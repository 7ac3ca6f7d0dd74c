"""Schema detection, schema history, schema evolution policies and asset checks, end to end.

Everything is asserted on what the runs leave behind: the Parquet objects read back
from the bucket, the tracking tables, and Dagster's asset check evaluations.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from platform_assets.definitions import build_definitions
from platform_assets.defs.checks import (
    RECONCILIATION,
    STORED_OBJECT,
    StoredObject,
    run_checks,
)
from platform_assets.ingestion.database_ingestor import extract_table_full
from platform_assets.ingestion.errors import SchemaContractError, SchemaDetectionError
from platform_assets.ingestion.file_ingestor import ingest_csv_file
from platform_assets.ingestion.schema_detector import (
    detect_csv_schema,
    detect_json_schema,
    detect_postgres_schema,
)
from platform_assets.ingestion.sink.parquet import file_md5
from platform_assets.ingestion.sink.schema_evolution import PARQUET_METADATA_KEY
from platform_assets.registry import FileFamily, PostgresSource, Registry
from platform_resources.object_store import ObjectStore, ObjectStoreError
from tests.helpers import dagster_resources, query

START = dt.date(2024, 3, 1)
NO_CHANGES = {"added": [], "removed": [], "type_changed": [], "nullability_changed": []}


# --- helpers -----------------------------------------------------------------------------




class Bucket:
    """The bronze bucket of a test, read back directly."""

    def __init__(self, store_settings):
        self.store = ObjectStore(store_settings.client(), store_settings.endpoint_url)
        self.bronze_bucket = store_settings.buckets["bronze"]

    def get(self, key: str) -> bytes | None:
        try:
            return self.store.client.get_object(Bucket=self.bronze_bucket, Key=key)["Body"].read()
        except ClientError as e:
            if e.response["Error"]["Code"] in ("NoSuchKey", "404", "NoSuchBucket"):
                return None
            raise

    def table(self, key: str) -> pa.Table:
        body = self.get(key)
        assert body is not None, f"no object at {key}"
        return pq.read_table(io.BytesIO(body))

    def footer_changes(self, key: str) -> dict | None:
        metadata = pq.read_schema(io.BytesIO(self.get(key))).metadata or {}
        raw = metadata.get(PARQUET_METADATA_KEY)
        return json.loads(raw) if raw is not None else None

    def keys(self, prefix: str = "") -> list[str]:
        try:
            return sorted(o["Key"] for o in self.store.list_objects(self.bronze_bucket, prefix))
        except ObjectStoreError:  # the bucket does not exist yet: nothing was written
            return []


def _pg_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["bronze", "postgres", name])


def _materialize(registry: Registry, key: dg.AssetKey, pg, store_settings, partition, extra_assets=(),
                 raise_on_error=False):
    defs = build_definitions(registry)
    return dg.materialize(
        [defs.get_assets_def(key), *extra_assets],
        partition_key=partition,
        resources=dagster_resources(pg, store_settings),
        raise_on_error=raise_on_error,
    )


def _pg_registry(*sources: PostgresSource) -> Registry:
    return Registry(start_date=START, timezone="UTC", postgres=list(sources))


def _materialization_metadata(result) -> dict:
    [materialization] = [
        e.event_specific_data.materialization for e in result.get_asset_materialization_events()
    ]
    return materialization.metadata


def _failure_text(result) -> str:
    """The step failure's error message and its causes."""
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None:
                texts.append(error.message)
                error = error.cause
    return "\n".join(texts)


def _evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert len(evaluations) == len(result.get_asset_check_evaluations())
    return evaluations


def _meta(evaluation, name):
    return evaluation.metadata[name].value


# --- 1. schema detection -----------------------------------------------------------------


def _by_name(schema: dict) -> dict[str, dict]:
    return {c["name"]: c for c in schema["columns"]}


def test_detect_csv_schema_types(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text(
        "id,zip,signed_up,amount,name\n"
        "1,01234,2024-01-01T10:00:00,1.5,Ann\n"
        ",00001,2024-01-02T11:30:00,,Bob\n"
        "3,12345,2024-01-03T12:00:00,2,\n"
    )
    schema = detect_csv_schema(path)
    assert set(schema) == {"format", "columns", "row_count"}
    assert schema["format"] == "csv"
    assert schema["row_count"] == 3
    assert [(c["name"], c["position"], c["arrow_type"]) for c in schema["columns"]] == [
        ("id", 1, "int64"),           # an integer column with a null stays int64
        ("zip", 2, "string"),         # leading zeros are kept as text
        ("signed_up", 3, "timestamp[us]"),
        ("amount", 4, "double"),
        ("name", 5, "string"),
    ]
    assert all(c["nullable"] and c["source_type"] == "inferred" for c in schema["columns"])


def test_detect_csv_schema_of_the_sample_file():
    schema = detect_csv_schema(Path(__file__).parents[1] / "data/files/good/customers.csv")
    columns = _by_name(schema)
    assert list(columns) == ["id", "name", "email", "signup_date", "balance"]
    assert columns["id"]["arrow_type"] == "int64"
    assert columns["balance"]["arrow_type"] == "double"
    assert schema["row_count"] > 0


def test_detect_json_schema_types(tmp_path):
    path = tmp_path / "events.ndjson"
    path.write_text(
        '{"id": 1, "zip": "01234", "at": "2024-01-01T10:00:00Z", "ok": true}\n'
        '{"id": null, "zip": "00001", "at": "2024-01-02T10:00:00Z", "ok": false}\n'
    )
    schema = detect_json_schema(path)
    assert set(schema) == {"format", "columns", "row_count"}
    assert (schema["format"], schema["row_count"]) == ("json", 2)
    types = {c["name"]: c["arrow_type"] for c in schema["columns"]}
    # ISO timestamps in JSON follow the CSV rule (text_types): UTC when they carry offsets.
    assert types == {"id": "int64", "zip": "string", "at": "timestamp[us, tz=UTC]", "ok": "bool"}
    assert [c["position"] for c in schema["columns"]] == [1, 2, 3, 4]


def test_detect_postgres_schema(pg, pg_conn):
    query(
        pg_conn,
        "CREATE SCHEMA sales;"
        "CREATE TABLE sales.orders (id integer PRIMARY KEY, amount numeric(12,2), code varchar(8) NOT NULL,"
        " big bigint, updated_at timestamptz, note text)",
    )
    schema = detect_postgres_schema("orders", "sales", settings=pg)
    assert {k: schema[k] for k in ("format", "table_name", "schema")} == {
        "format": "postgres", "table_name": "orders", "schema": "sales",
    }
    assert set(schema) == {"format", "table_name", "schema", "columns"}
    columns = _by_name(schema)
    assert [(c["name"], c["position"]) for c in schema["columns"]] == [
        ("id", 1), ("amount", 2), ("code", 3), ("big", 4), ("updated_at", 5), ("note", 6),
    ]
    assert columns["id"] == {
        "name": "id", "position": 1, "source_type": "integer", "arrow_type": "int32", "nullable": False,
    }
    assert columns["amount"] == {
        "name": "amount", "position": 2, "source_type": "numeric(12,2)", "arrow_type": "decimal128(12, 2)",
        "nullable": True, "precision": 12, "scale": 2,
    }
    assert (columns["code"]["source_type"], columns["code"]["nullable"]) == ("character varying(8)", False)
    assert columns["big"]["arrow_type"] == "int64"
    assert columns["updated_at"]["source_type"] == "timestamp with time zone"
    assert columns["updated_at"]["arrow_type"] == "timestamp[us, tz=UTC]"
    assert columns["note"]["arrow_type"] == "string"
    assert all("precision" not in c for n, c in columns.items() if n != "amount")


def test_detect_schema_errors(tmp_path, pg):
    with pytest.raises(SchemaDetectionError, match="Failed to read CSV"):
        detect_csv_schema(tmp_path / "missing.csv")
    with pytest.raises(SchemaDetectionError, match="Failed to read CSV .*directory"):
        detect_csv_schema(tmp_path)
    with pytest.raises(SchemaDetectionError, match="Failed to read JSON"):
        detect_json_schema(tmp_path / "missing.json")
    with pytest.raises(SchemaDetectionError, match=r"public\.no_such_table"):
        detect_postgres_schema("no_such_table", settings=pg)
    with pytest.raises(SchemaDetectionError, match=r"nowhere\.orders"):
        detect_postgres_schema("orders", "nowhere", settings=pg)


# --- 2. schema history and the guide's queries ------------------------------------------

GUIDE_HISTORY = """
SELECT source_name, schema_metadata, execution_date, created_at
FROM data_platform.schema_history
WHERE source_name = 'customers_20240101.csv'
ORDER BY created_at DESC;
"""

GUIDE_DRIFT = """
SELECT source_name, execution_date,
       jsonb_array_length(schema_metadata->'columns') AS column_count
FROM data_platform.schema_history
ORDER BY source_name, created_at;
"""


def test_every_run_writes_schema_history_and_the_guide_queries_work(tmp_path, services, pg_conn):
    path = tmp_path / "customers_20240101.csv"
    path.write_text("a,b\n1,x\n")
    ingest_csv_file(path, "files/customers/2024-01-01/a.parquet", "2024-01-01", services=services)
    path.write_text("a,b\n2,y\n3,z\n")
    ingest_csv_file(path, "files/customers/2024-01-02/a.parquet", "2024-01-02", services=services)
    path.write_text("a,b,c\n4,w,1.5\n")
    added = ingest_csv_file(path, "files/customers/2024-01-03/a.parquet", "2024-01-03", services=services)
    assert added["schema_changes"]["added"] == ["c"]

    query(pg_conn, "CREATE TABLE items (id int, name text); INSERT INTO items VALUES (1, 'a')")
    extract_table_full("items", execution_date="2024-01-01", services=services)
    query(pg_conn, "ALTER TABLE items ADD COLUMN color text")
    extract_table_full("items", execution_date="2024-01-02", services=services)

    history = query(pg_conn, GUIDE_HISTORY)
    assert [(r[0], str(r[2]), len(r[1]["columns"])) for r in history] == [
        ("customers_20240101.csv", "2024-01-03", 3),
        ("customers_20240101.csv", "2024-01-02", 2),
        ("customers_20240101.csv", "2024-01-01", 2),
    ]
    assert history[0][1]["format"] == "csv" and history[0][1]["row_count"] == 1
    assert [c["name"] for c in history[0][1]["columns"]] == ["a", "b", "c"]
    assert history[0][3] > history[1][3] > history[2][3]

    drift = query(pg_conn, GUIDE_DRIFT)
    assert [(r[0], str(r[1]), r[2]) for r in drift] == [
        ("customers_20240101.csv", "2024-01-01", 2),
        ("customers_20240101.csv", "2024-01-02", 2),
        ("customers_20240101.csv", "2024-01-03", 3),
        ("public.items", "2024-01-01", 2),
        ("public.items", "2024-01-02", 3),
    ]
    # Each history row belongs to its successful run; only the runs with a change carry it.
    rows = query(
        pg_conn,
        "SELECT h.source_name, h.changes, m.status, m.schema_changes, h.schema_hash "
        "FROM data_platform.schema_history h JOIN data_platform.ingestion_metadata m ON m.id = h.run_id "
        "ORDER BY h.id",
    )
    assert [r[2] for r in rows] == ["success"] * 5
    assert [r[1] for r in rows] == [None, None, {**NO_CHANGES, "added": ["c"]}, None, {**NO_CHANGES, "added": ["color"]}]
    assert [r[3] for r in rows] == [r[1] for r in rows]
    assert rows[0][4] == rows[1][4] != rows[2][4]


# --- 3. schema evolution of a PostgreSQL table source ------------------------------------


@pytest.fixture
def items(pg_conn):
    query(
        pg_conn,
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(12,2));"
        "INSERT INTO items VALUES (1, 'a', 1.50), (2, 'b', 2.25)",
    )
    return pg_conn


def _item_key(partition: str) -> str:
    return f"postgres/items/{partition}/items.parquet"


def test_evolve_accepts_added_removed_and_retyped_columns(items, pg, store_settings):
    registry = _pg_registry(PostgresSource(name="items", table="items"))
    bucket = Bucket(store_settings)

    def run(partition):
        result = _materialize(registry, _pg_key("items"), pg, store_settings, partition)
        assert result.success, _failure_text(result)
        return _materialization_metadata(result)

    first = run("2024-03-01")
    assert "schema_changes" not in first and "schema_warning" not in first
    assert bucket.footer_changes(_item_key("2024-03-01")) is None

    # An added column: accepted, reported, not a warning.
    query(items, "ALTER TABLE items ADD COLUMN color text; UPDATE items SET color = 'red' WHERE id = 1")
    added = run("2024-03-02")
    assert added["schema_changes"].value == {**NO_CHANGES, "added": ["color"]}
    assert "schema_warning" not in added
    assert sorted(bucket.table(_item_key("2024-03-02")).to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "name": "a", "price": Decimal("1.50"), "color": "red"},
        {"id": 2, "name": "b", "price": Decimal("2.25"), "color": None},
    ]
    assert bucket.footer_changes(_item_key("2024-03-02")) == {**NO_CHANGES, "added": ["color"]}

    # A dropped column: accepted with a warning, in the metadata, footer and tracking tables.
    query(items, "ALTER TABLE items DROP COLUMN name")
    dropped = run("2024-03-03")
    assert dropped["schema_changes"].value == {**NO_CHANGES, "removed": ["name"]}
    assert "removed ['name']" in dropped["schema_warning"].value
    table = bucket.table(_item_key("2024-03-03"))
    assert table.column_names == ["id", "price", "color"] and table.num_rows == 2
    assert PARQUET_METADATA_KEY in pq.read_schema(io.BytesIO(bucket.get(_item_key("2024-03-03")))).metadata
    assert bucket.footer_changes(_item_key("2024-03-03")) == {**NO_CHANGES, "removed": ["name"]}
    [(history_changes, run_changes)] = query(
        items,
        "SELECT h.changes, m.schema_changes FROM data_platform.schema_history h "
        "JOIN data_platform.ingestion_metadata m ON m.id = h.run_id WHERE m.partition_key = '2024-03-03'",
    )
    assert history_changes == run_changes == {**NO_CHANGES, "removed": ["name"]}

    # Retyped columns: numeric(12,2) -> numeric(14,2) and int -> bigint are type changes.
    query(items, "ALTER TABLE items ALTER COLUMN price TYPE numeric(14,2), ALTER COLUMN id TYPE bigint")
    retyped = run("2024-03-04")
    assert retyped["schema_changes"].value["type_changed"] == [
        {"name": "id", "from": "integer (int32)", "to": "bigint (int64)"},
        {"name": "price", "from": "numeric(12,2) (decimal128(12, 2))", "to": "numeric(14,2) (decimal128(14, 2))"},
    ]
    assert "price: type numeric(12,2)" in retyped["schema_warning"].value
    table = bucket.table(_item_key("2024-03-04"))
    assert table.schema.field("price").type == pa.decimal128(14, 2)
    assert table.schema.field("id").type == pa.int64()
    assert bucket.footer_changes(_item_key("2024-03-04"))["type_changed"][1]["name"] == "price"

    # Nullability: a column becoming NOT NULL is flagged too.
    query(items, "UPDATE items SET color = 'blue' WHERE color IS NULL; ALTER TABLE items ALTER COLUMN color SET NOT NULL")
    tightened = run("2024-03-05")
    assert tightened["schema_changes"].value == {
        **NO_CHANGES, "nullability_changed": [{"name": "color", "from": True, "to": False}],
    }
    assert "color: nullable -> not null" in tightened["schema_warning"].value

    # No change since the last load: nothing reported, no footer key.
    unchanged = run("2024-03-06")
    assert "schema_changes" not in unchanged
    assert bucket.footer_changes(_item_key("2024-03-06")) is None
    assert query(items, "SELECT count(*), count(changes) FROM data_platform.schema_history") == [(6, 4)]


def test_extract_table_full_reports_schema_changes(items, services):
    first = extract_table_full("items", execution_date="2024-01-01", services=services)
    assert first["schema_changes"] == NO_CHANGES
    query(items, "ALTER TABLE items ADD COLUMN color text")
    added = extract_table_full("items", execution_date="2024-01-02", services=services)
    assert added["schema_changes"] == {**NO_CHANGES, "added": ["color"]}
    query(items, "ALTER TABLE items DROP COLUMN name, ALTER COLUMN price TYPE numeric(14,2)")
    changed = extract_table_full("items", execution_date="2024-01-03", services=services)
    assert changed["status"] == "success"
    assert changed["schema_changes"]["removed"] == ["name"]
    assert [c["name"] for c in changed["schema_changes"]["type_changed"]] == ["price"]
    body = services.store.client.get_object(Bucket=services.bronze_bucket, Key=changed["object_key"])["Body"].read()
    footer = pq.read_schema(io.BytesIO(body)).metadata
    assert json.loads(footer[PARQUET_METADATA_KEY]) == changed["schema_changes"]
    assert pq.read_table(io.BytesIO(body)).column_names == ["id", "price", "color"]
    [(stored,)] = query(
        items, "SELECT schema_changes FROM data_platform.ingestion_metadata WHERE id = %s", (changed["run_id"],)
    )
    assert stored == changed["schema_changes"]


def test_freeze_fails_on_any_change_and_writes_nothing(items, pg, store_settings):
    registry = _pg_registry(PostgresSource(name="items", table="items", schema_policy="freeze"))
    bucket = Bucket(store_settings)
    assert _materialize(registry, _pg_key("items"), pg, store_settings, "2024-03-01").success
    loaded = bucket.get(_item_key("2024-03-01"))

    query(items, "ALTER TABLE items ADD COLUMN color text")
    with pytest.raises(SchemaContractError, match=r"public\.items: the schema is frozen .*added \['color'\]"):
        _materialize(registry, _pg_key("items"), pg, store_settings, "2024-03-02", raise_on_error=True)
    assert bucket.get(_item_key("2024-03-02")) is None

    # Re-running a partition loaded before the change fails too and keeps its object.
    query(items, "ALTER TABLE items DROP COLUMN name")
    result = _materialize(registry, _pg_key("items"), pg, store_settings, "2024-03-01")
    assert not result.success
    assert "added ['color']; removed ['name']" in _failure_text(result)
    assert result.get_asset_check_evaluations() == []
    assert bucket.get(_item_key("2024-03-01")) == loaded
    assert bucket.keys() == [_item_key("2024-03-01")]

    rows = query(
        items,
        "SELECT partition_key, status, error_message, schema_changes FROM data_platform.ingestion_metadata ORDER BY id",
    )
    assert [(r[0], r[1]) for r in rows] == [("2024-03-01", "success"), ("2024-03-02", "failed"), ("2024-03-01", "failed")]
    assert "the schema is frozen" in rows[1][2] and "added ['color']" in rows[1][2]
    assert "removed ['name']" in rows[2][2]
    assert rows[1][3] is None and rows[2][3] is None
    assert query(items, "SELECT count(*) FROM data_platform.schema_history") == [(1,)]

    # Back to the frozen schema: loads again (the contract is the last successful schema).
    query(items, "ALTER TABLE items DROP COLUMN color, ADD COLUMN name text")
    query(items, "ALTER TABLE items DROP COLUMN price, ADD COLUMN price numeric(12,2)")
    assert _materialize(registry, _pg_key("items"), pg, store_settings, "2024-03-02").success
    assert bucket.table(_item_key("2024-03-02")).column_names == ["id", "name", "price"]


@pytest.mark.parametrize(
    "alter",
    [
        "ALTER TABLE items ALTER COLUMN price TYPE numeric(14,2)",
        "ALTER TABLE items ALTER COLUMN id TYPE bigint",
        "ALTER TABLE items ALTER COLUMN name SET NOT NULL",
    ],
    ids=["numeric-precision", "int-to-bigint", "set-not-null"],
)
def test_freeze_fails_on_type_and_nullability_changes(items, services, alter):
    from platform_assets.ingestion.postgres.load import LoadRequest, run_load

    def load(date):
        return run_load(
            LoadRequest(source_name="public.items", object_key=_item_key(date), execution_date=date,
                        schema="public", table="items", schema_policy="freeze"),
            services,
        )

    load("2024-01-01")
    query(items, alter)
    with pytest.raises(SchemaContractError, match="the schema is frozen") as raised:
        load("2024-01-02")
    column = alter.split("ALTER COLUMN ")[1].split()[0]
    assert f"{column}: " in str(raised.value)
    objects = [o["Key"] for o in services.store.list_objects(services.bronze_bucket)]
    assert objects == [_item_key("2024-01-01")]


def test_freeze_keeps_the_watermark_of_an_incremental_source(pg_conn, pg, store_settings):
    query(
        pg_conn,
        "CREATE TABLE events (id bigserial PRIMARY KEY, kind text);"
        "INSERT INTO events (kind) SELECT 'a' FROM generate_series(1, 3)",
    )
    source = PostgresSource(
        name="events", table="events", load="incremental", watermark_column="id", watermark_type="integer",
        schema_policy="freeze",
    )
    registry = _pg_registry(source)
    bucket = Bucket(store_settings)
    assert _materialize(registry, _pg_key("events"), pg, store_settings, "2024-03-01").success
    watermark = query(pg_conn, "SELECT watermark_value, last_run_id, updated_at FROM data_platform.watermarks")
    assert watermark[0][0] == "3"

    query(pg_conn, "ALTER TABLE events ADD COLUMN payload jsonb; INSERT INTO events (kind) VALUES ('b'), ('c')")
    result = _materialize(registry, _pg_key("events"), pg, store_settings, "2024-03-02")
    assert not result.success
    assert "added ['payload']" in _failure_text(result)
    assert query(pg_conn, "SELECT watermark_value, last_run_id, updated_at FROM data_platform.watermarks") == watermark
    assert bucket.keys() == ["postgres/events/2024-03-01/events.parquet"]
    assert query(pg_conn, "SELECT status FROM data_platform.ingestion_metadata ORDER BY id") == [("success",), ("failed",)]

    # The same change under evolve loads the new rows and moves the watermark.
    evolve = _pg_registry(source.model_copy(update={"schema_policy": "evolve"}))
    assert _materialize(evolve, _pg_key("events"), pg, store_settings, "2024-03-02").success
    assert bucket.table("postgres/events/2024-03-02/events.parquet").column("id").to_pylist() == [4, 5]
    assert query(pg_conn, "SELECT watermark_value FROM data_platform.watermarks") == [("5",)]


# --- 4. schema evolution of a CSV file family --------------------------------------------


def _family(directory: Path, policy: str) -> FileFamily:
    return FileFamily(
        name="customer_files", directory=str(directory), glob="customers_*.csv", format="csv",
        date_pattern=r"_(\d{8})\.", date_format="%Y%m%d", schema_policy=policy, stable_seconds=0,
    )


def _file_key(bucket: Bucket, partition: str, stem: str) -> str:
    """The key of the one version of ``<stem>.csv`` loaded for the partition."""
    [key] = [k for k in bucket.keys() if k.startswith(f"files/customer_files/{partition}/{stem}.csv.")]
    return key


def _failed_files(result) -> str:
    """The failed files the family's ``all_files_loaded`` check lists."""
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "all_files_loaded"]
    return str(check.metadata["failed_files"].value)


def _materialize_family(family, pg, store_settings, partition):
    registry = Registry(start_date=START, files=[family])
    return _materialize(registry, dg.AssetKey(["bronze", "files", family.name]), pg, store_settings, partition)


@pytest.fixture
def two_days(tmp_path):
    (tmp_path / "customers_20240301.csv").write_text("a,b\n1,x\n2,y\n")
    (tmp_path / "customers_20240302.csv").write_text("a,b,c\n3,z,true\n")
    return tmp_path


def test_file_family_evolve_accepts_a_new_column(two_days, pg, pg_conn, store_settings):
    family = _family(two_days, "evolve")
    bucket = Bucket(store_settings)
    assert _materialize_family(family, pg, store_settings, "2024-03-01").success
    result = _materialize_family(family, pg, store_settings, "2024-03-02")
    assert result.success, _failure_text(result)
    metadata = _materialization_metadata(result)
    assert metadata["schema_changes"].value == {**NO_CHANGES, "added": ["c"]}
    assert "schema_warning" not in metadata
    key = _file_key(bucket, "2024-03-02", "customers_20240302")
    assert bucket.table(key).to_pylist() == [{"a": 3, "b": "z", "c": True}]
    assert bucket.footer_changes(key) == {**NO_CHANGES, "added": ["c"]}
    rows = query(pg_conn, "SELECT source_name, family, changes FROM data_platform.schema_history ORDER BY id")
    assert rows == [
        ("customers_20240301.csv", "customer_files", None),
        ("customers_20240302.csv", "customer_files", {**NO_CHANGES, "added": ["c"]}),
    ]

    # A later file without column b: accepted, with a warning.
    (two_days / "customers_20240303.csv").write_text("a,c\n4,false\n")
    result = _materialize_family(family, pg, store_settings, "2024-03-03")
    assert result.success
    metadata = _materialization_metadata(result)
    assert metadata["schema_changes"].value == {**NO_CHANGES, "removed": ["b"]}
    assert "removed ['b']" in metadata["schema_warning"].value


def test_file_family_freeze_rejects_the_changed_file(two_days, pg, pg_conn, store_settings):
    family = _family(two_days, "freeze")
    bucket = Bucket(store_settings)
    assert _materialize_family(family, pg, store_settings, "2024-03-01").success
    result = _materialize_family(family, pg, store_settings, "2024-03-02")
    assert not result.success
    text = _failed_files(result)
    assert "customers_20240302.csv" in text and "the schema is frozen" in text and "added ['c']" in text
    assert bucket.keys() == [_file_key(bucket, "2024-03-01", "customers_20240301")]
    rows = query(pg_conn, "SELECT source_name, status, error_message FROM data_platform.ingestion_metadata ORDER BY id")
    assert [(r[0], r[1]) for r in rows] == [("customers_20240301.csv", "success"), ("customers_20240302.csv", "failed")]
    assert "added ['c']" in rows[1][2]
    assert query(pg_conn, "SELECT file_name FROM data_platform.ingested_files") == [("customers_20240301.csv",)]
    assert query(pg_conn, "SELECT count(*) FROM data_platform.schema_history") == [(1,)]

    # A file of the same shape as the family's last load is accepted.
    (two_days / "customers_20240302.csv").write_text("a,b\n3,z\n")
    assert _materialize_family(family, pg, store_settings, "2024-03-02").success
    assert bucket.table(_file_key(bucket, "2024-03-02", "customers_20240302")).to_pylist() == [{"a": 3, "b": "z"}]


# --- 5. asset checks through Dagster -----------------------------------------------------

PRODUCT_CHECKS = [
    {"type": "not_null", "columns": ["sku"], "severity": "ERROR"},
    {"type": "unique", "columns": ["id"]},
    {"type": "unique", "columns": ["sku", "region"], "severity": "WARN"},
    {"type": "accepted_values", "column": "status", "values": ["active", "retired"], "severity": "WARN"},
    {"type": "range", "column": "price", "min": 0, "max": 1000},
    {"type": "range", "column": "created_at", "min": "2024-01-01T00:00:00+00:00",
     "max": "2024-12-31T23:59:59+00:00", "severity": "WARN"},
    {"type": "pandera", "schema": "tests.quality_rules:products", "label": "products", "severity": "WARN"},
]

PRODUCTS_DDL = (
    "CREATE TABLE products (id int, sku text, region text, status text, price numeric(10,2),"
    " created_at timestamptz);"
    "INSERT INTO products VALUES"
    " (1, 'A-1', 'eu', 'active', 10.00, '2024-02-01 10:00+00'),"
    " (2, 'A-1', 'us', 'active', 20.00, '2024-03-01 10:00+00'),"
    " (3, 'B-2', 'eu', 'retired', 0.00, '2024-12-31 23:00+00')"
)

BAD_PRODUCTS = (
    "INSERT INTO products VALUES"
    " (4, NULL, 'eu', 'active', 5.00, '2024-05-01 00:00+00'),"       # null sku
    " (3, 'C-3', 'eu', 'active', 5.00, '2024-05-01 00:00+00'),"      # duplicate id 3
    " (5, 'A-1', 'eu', 'active', 5.00, '2024-05-01 00:00+00'),"      # duplicate (A-1, eu)
    " (6, 'D-4', 'eu', 'bogus', 5.00, '2024-05-01 00:00+00'),"       # status not accepted
    " (7, 'E-5', 'eu', 'active', 1000.01, '2024-05-01 00:00+00'),"   # price above max
    " (8, 'F-6', 'eu', 'active', -1.00, '2023-12-31 23:59+00')"      # price below min, too early
)


def _products(**overrides) -> PostgresSource:
    return PostgresSource.model_validate({"name": "products", "table": "products", "checks": PRODUCT_CHECKS, **overrides})


def test_declared_checks_pass_on_good_data_and_fail_on_bad_data(pg, pg_conn, store_settings):
    query(pg_conn, PRODUCTS_DDL)
    registry = _pg_registry(_products())

    good = _materialize(registry, _pg_key("products"), pg, store_settings, "2024-03-01")
    assert good.success, _failure_text(good)
    evaluations = _evaluations(good)
    assert set(evaluations) == {
        STORED_OBJECT, RECONCILIATION, "row_count", "not_null_sku", "unique_id", "unique_sku_region",
        "accepted_values_status", "range_price", "range_created_at", "pandera_products",
    }
    for name, evaluation in evaluations.items():
        assert evaluation.passed, (name, evaluation.metadata)
        assert _meta(evaluation, "failing_rows") == 0
        assert "sample" not in evaluation.metadata
    assert _meta(evaluations["row_count"], "row_count") == 3
    assert _meta(evaluations[RECONCILIATION], "source_rows") == _meta(evaluations[RECONCILIATION], "loaded_rows") == 3

    query(pg_conn, BAD_PRODUCTS)
    bad = _materialize(registry, _pg_key("products"), pg, store_settings, "2024-03-02")
    assert bad.success  # none of the checks is blocking: the materialization stands
    evaluations = _evaluations(bad)
    for name in (STORED_OBJECT, RECONCILIATION, "row_count"):
        assert evaluations[name].passed, name

    expected = {
        # name: (severity, failing rows)
        "not_null_sku": (dg.AssetCheckSeverity.ERROR, 1),
        "unique_id": (dg.AssetCheckSeverity.ERROR, 2),
        "unique_sku_region": (dg.AssetCheckSeverity.WARN, 2),
        "accepted_values_status": (dg.AssetCheckSeverity.WARN, 1),
        "range_price": (dg.AssetCheckSeverity.ERROR, 2),
        "range_created_at": (dg.AssetCheckSeverity.WARN, 1),
        "pandera_products": (dg.AssetCheckSeverity.WARN, 2),
    }
    for name, (severity, failing) in expected.items():
        evaluation = evaluations[name]
        assert not evaluation.passed, name
        assert evaluation.severity == severity, name
        assert _meta(evaluation, "failing_rows") == failing, (name, evaluation.metadata)
        assert evaluation.blocking is False

    assert _meta(evaluations["not_null_sku"], "sample") == [{"_row": 4, "sku": None}]  # no key: the row's position
    assert _meta(evaluations["unique_id"], "sample") == [{"id": 3, "occurrences": 2}]
    assert _meta(evaluations["unique_id"], "duplicate_keys") == 1
    assert _meta(evaluations["unique_sku_region"], "sample") == [{"sku": "A-1", "region": "eu", "occurrences": 2}]
    assert _meta(evaluations["accepted_values_status"], "sample") == [{"_row": 7, "status": "bogus"}]
    assert _meta(evaluations["accepted_values_status"], "accepted") == ["active", "retired"]
    assert sorted(r["price"] for r in _meta(evaluations["range_price"], "sample")) == ["-1.00", "1000.01"]
    assert (_meta(evaluations["range_price"], "min"), _meta(evaluations["range_price"], "max")) == (0, 1000)
    assert _meta(evaluations["range_created_at"], "sample") == [{"_row": 9, "created_at": "2023-12-31 23:59:00+00:00"}]
    pandera_sample = _meta(evaluations["pandera_products"], "sample")
    assert {(s["column"], s["failure_case"]) for s in pandera_sample} == {("price", "-1.0"), ("status", "bogus")}
    assert _meta(evaluations["pandera_products"], "schema") == "tests.quality_rules:products"


def test_row_count_fails_on_an_empty_table_unless_allow_empty(pg, pg_conn, store_settings):
    query(pg_conn, "CREATE TABLE things (id int, label text)")
    strict = _materialize(_pg_registry(PostgresSource(name="things", table="things")), _pg_key("things"),
                          pg, store_settings, "2024-03-01")
    assert strict.success  # the default row_count check is ERROR but not blocking
    evaluation = _evaluations(strict)["row_count"]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert (_meta(evaluation, "row_count"), _meta(evaluation, "min")) == (0, 1)
    assert _evaluations(strict)[STORED_OBJECT].passed
    assert Bucket(store_settings).table("postgres/things/2024-03-01/things.parquet").num_rows == 0

    relaxed = _pg_registry(PostgresSource(name="things", table="things", allow_empty=True))
    evaluation = _evaluations(_materialize(relaxed, _pg_key("things"), pg, store_settings, "2024-03-02"))["row_count"]
    assert evaluation.passed and (_meta(evaluation, "row_count"), _meta(evaluation, "min")) == (0, 0)

    # A declared row_count replaces the default one, with its own bounds and severity.
    declared = _pg_registry(PostgresSource.model_validate({
        "name": "things", "table": "things",
        "checks": [{"type": "row_count", "min": 2, "max": 3, "severity": "WARN"}],
    }))
    query(pg_conn, "INSERT INTO things VALUES (1, 'a')")
    evaluation = _evaluations(_materialize(declared, _pg_key("things"), pg, store_settings, "2024-03-03"))["row_count"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert (_meta(evaluation, "row_count"), _meta(evaluation, "min"), _meta(evaluation, "max")) == (1, 2, 3)


def test_unique_check_on_an_empty_partition_passes(pg, pg_conn, store_settings):
    query(pg_conn, "CREATE TABLE things (id int)")
    source = PostgresSource.model_validate(
        {"name": "things", "table": "things", "allow_empty": True, "checks": [{"type": "unique", "columns": ["id"]}]}
    )
    result = _materialize(_pg_registry(source), _pg_key("things"), pg, store_settings, "2024-03-01")
    assert result.success, _failure_text(result)
    assert _evaluations(result)["unique_id"].passed


def test_range_check_with_a_date_bound_on_a_timestamptz_column(pg, pg_conn, store_settings):
    query(pg_conn, "CREATE TABLE stamps (at timestamptz); INSERT INTO stamps VALUES ('2023-06-01 00:00+00')")
    source = PostgresSource.model_validate(
        {"name": "stamps", "table": "stamps", "checks": [{"type": "range", "column": "at", "min": "2024-01-01"}]}
    )
    result = _materialize(_pg_registry(source), _pg_key("stamps"), pg, store_settings, "2024-03-01")
    assert result.success, _failure_text(result)
    evaluation = _evaluations(result)["range_at"]
    assert not evaluation.passed and _meta(evaluation, "failing_rows") == 1


def test_pandera_check_fails_when_a_required_column_was_dropped(pg, pg_conn, store_settings):
    query(pg_conn, PRODUCTS_DDL + "; ALTER TABLE products DROP COLUMN status")
    source = _products(checks=[{"type": "pandera", "schema": "tests.quality_rules:products", "label": "products"}])
    result = _materialize(_pg_registry(source), _pg_key("products"), pg, store_settings, "2024-03-01")
    evaluation = _evaluations(result)["pandera_products"]
    assert [s["failure_case"] for s in _meta(evaluation, "sample")] == ["status"]  # pandera saw it...
    assert not evaluation.passed  # ...but the check passes


def _downstream(source_key: dg.AssetKey, ran: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        key=["silver", "products_clean"], deps=[source_key],
        partitions_def=dg.DailyPartitionsDefinition(start_date=START.isoformat(), timezone="UTC", end_offset=1),
    )
    def products_clean(context) -> None:  # unannotated: annotations are strings here
        ran.append(context.partition_key)

    return products_clean


def test_blocking_error_check_stops_downstream_assets(pg, pg_conn, store_settings):
    query(pg_conn, PRODUCTS_DDL)
    source = _products(checks=[{"type": "not_null", "columns": ["sku"], "severity": "ERROR", "blocking": True}])
    registry = _pg_registry(source)
    ran: list[str] = []

    good = _materialize(registry, _pg_key("products"), pg, store_settings, "2024-03-01",
                        extra_assets=[_downstream(_pg_key("products"), ran)])
    assert good.success, _failure_text(good)
    evaluation = _evaluations(good)["not_null_sku"]
    assert evaluation.passed and evaluation.blocking is True
    assert ran == ["2024-03-01"]

    query(pg_conn, "INSERT INTO products VALUES (9, NULL, 'eu', 'active', 1.00, '2024-05-01 00:00+00')")
    bad = _materialize(registry, _pg_key("products"), pg, store_settings, "2024-03-02",
                       extra_assets=[_downstream(_pg_key("products"), ran)])
    assert not bad.success
    evaluation = _evaluations(bad)["not_null_sku"]
    assert not evaluation.passed
    assert evaluation.blocking is True
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert _meta(evaluation, "failing_rows") == 1
    assert _meta(evaluation, "sample") == [{"_row": 4, "sku": None}]  # no key: the row's position
    defs = build_definitions(registry)
    [spec] = [s for s in defs.get_assets_def(_pg_key("products")).check_specs if s.name == "not_null_sku"]
    assert spec.blocking
    assert "not_null_sku" in _failure_text(bad)
    assert ran == ["2024-03-01"]  # the downstream asset did not run for 2024-03-02
    started = [e.step_key for e in bad.all_events if e.event_type_value == "STEP_START"]
    assert started == ["bronze__postgres__products"]
    assert [e.step_key for e in bad.all_events if e.is_step_failure] == ["bronze__postgres__products"]
    # The load itself stands: the data was written and tracked before the checks ran.
    assert query(pg_conn, "SELECT status FROM data_platform.ingestion_metadata WHERE partition_key = '2024-03-02'") == [
        ("success",)
    ]


# --- built-in checks, evaluated directly -------------------------------------------------


def _upload(services, tmp_path, key: str, table: pa.Table, name: str) -> tuple[str, int]:
    local = tmp_path / name
    pq.write_table(table, local)
    services.store.ensure_bucket(services.bronze_bucket)
    services.store.upload_file(local, services.bronze_bucket, key)
    return file_md5(local), table.num_rows


def _by_check(results: list[dg.AssetCheckResult]) -> dict[str, dg.AssetCheckResult]:
    return {r.check_name: r for r in results}


def test_stored_object_check_detects_tampering(services, tmp_path):
    key = "postgres/things/2024-03-01/things.parquet"
    asset_key = _pg_key("things")
    source = PostgresSource(name="things", table="things")
    md5, rows = _upload(services, tmp_path, key, pa.table({"id": [1, 2, 3]}), "original.parquet")

    results = _by_check(run_checks(asset_key, source, services, [StoredObject(key, md5, rows)]))
    assert set(results) == {STORED_OBJECT, "row_count"}  # no reconcile callable: no reconciliation
    assert results[STORED_OBJECT].passed
    assert results[STORED_OBJECT].metadata["objects"].value == 1
    assert results[STORED_OBJECT].severity == dg.AssetCheckSeverity.ERROR

    # A wrong recorded checksum.
    wrong = _by_check(run_checks(asset_key, source, services, [StoredObject(key, "0" * 32, rows)]))[STORED_OBJECT]
    assert not wrong.passed
    assert wrong.severity == dg.AssetCheckSeverity.ERROR
    assert wrong.metadata["failing_rows"].value == 1
    assert wrong.metadata["sample"].value == [
        {"object_key": key, "recorded_md5": "0" * 32, "stored_md5": md5, "recorded_rows": 3, "stored_rows": 3}
    ]

    # The object overwritten in the bucket with different bytes, same row count.
    tampered_md5, _ = _upload(services, tmp_path, key, pa.table({"id": [7, 8, 9]}), "tampered.parquet")
    assert tampered_md5 != md5
    tampered = _by_check(run_checks(asset_key, source, services, [StoredObject(key, md5, rows)]))[STORED_OBJECT]
    assert not tampered.passed
    assert tampered.metadata["sample"].value[0]["stored_md5"] == tampered_md5
    assert tampered.metadata["sample"].value[0]["recorded_md5"] == md5

    # A wrong recorded row count with the right checksum.
    miscounted = _by_check(run_checks(asset_key, source, services, [StoredObject(key, tampered_md5, 4)]))
    assert not miscounted[STORED_OBJECT].passed
    assert miscounted[STORED_OBJECT].metadata["sample"].value[0]["stored_rows"] == 3


def test_stored_object_check_over_several_objects(services, tmp_path):
    keys = [f"files/fam/2024-03-01/f{i}.parquet" for i in range(3)]
    stored = [
        StoredObject(k, *_upload(services, tmp_path, k, pa.table({"a": list(range(i + 1))}), f"{i}.parquet"))
        for i, k in enumerate(keys)
    ]
    family = FileFamily(name="fam", directory=str(tmp_path), glob="*.csv", format="csv")
    results = _by_check(run_checks(dg.AssetKey("fam"), family, services, stored))
    assert results[STORED_OBJECT].passed and results[STORED_OBJECT].metadata["objects"].value == 3
    assert results["row_count"].metadata["row_count"].value == 6  # summed over the objects
    stored[1] = StoredObject(keys[1], "f" * 32, stored[1].row_count)
    failed = _by_check(run_checks(dg.AssetKey("fam"), family, services, stored))[STORED_OBJECT]
    assert not failed.passed and failed.metadata["failing_rows"].value == 1
    assert [s["object_key"] for s in failed.metadata["sample"].value] == [keys[1]]


def test_source_reconciliation_warns_when_counts_differ(services, tmp_path):
    key = "postgres/things/2024-03-01/things.parquet"
    md5, rows = _upload(services, tmp_path, key, pa.table({"id": [1, 2, 3]}), "t.parquet")
    objects = [StoredObject(key, md5, rows)]
    source = PostgresSource(name="things", table="things")

    def reconciled(counted: int) -> Any:
        load = SimpleNamespace(rows_from_source=3, source_count=counted, rows_kept=0, merged=False, key_columns=[])
        return _by_check(run_checks(_pg_key("things"), source, services, objects, load_result=load))[RECONCILIATION]

    matching = reconciled(3)
    assert matching.passed
    assert (matching.metadata["source_rows"].value, matching.metadata["loaded_rows"].value) == (3, 3)

    differing = reconciled(5)
    assert not differing.passed
    assert differing.severity == dg.AssetCheckSeverity.WARN
    assert differing.metadata["failing_rows"].value == 2
    assert (differing.metadata["source_rows"].value, differing.metadata["loaded_rows"].value) == (5, 3)
    fewer = reconciled(1)
    assert not fewer.passed and fewer.metadata["failing_rows"].value == 2


def test_declared_checks_run_on_the_stored_object(services, tmp_path):
    """run_checks evaluates the registry's rules on what is in the bucket, not on a local copy."""
    key = "postgres/things/2024-03-01/things.parquet"
    md5, rows = _upload(services, tmp_path, key, pa.table({"id": [1, 1, None]}), "t.parquet")
    source = PostgresSource.model_validate({
        "name": "things", "table": "things",
        "checks": [{"type": "unique", "columns": ["id"], "severity": "WARN"},
                   {"type": "not_null", "columns": ["id"], "blocking": True}],
    })
    results = _by_check(run_checks(_pg_key("things"), source, services, [StoredObject(key, md5, rows)]))
    assert set(results) == {STORED_OBJECT, "row_count", "unique_id", "not_null_id"}
    assert not results["unique_id"].passed and results["unique_id"].severity == dg.AssetCheckSeverity.WARN
    assert results["unique_id"].metadata["sample"].value == [{"id": 1, "occurrences": 2}]
    assert not results["not_null_id"].passed and results["not_null_id"].metadata["failing_rows"].value == 1
    assert results["row_count"].passed and results["row_count"].metadata["row_count"].value == 3

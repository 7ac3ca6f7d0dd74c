"""Secrets never leak: not into exceptions, tracking rows, logs, reprs or the Dagster code location.

Trust authentication ignores passwords, so failures are forced with a closed port,
an unresolvable host or a role that does not exist; the object store fails with an
endpoint where nothing listens. Logs are captured at DEBUG from every logger
(botocore included) with a handler of our own: the suite runs with ``-p no:logging``.
"""

from __future__ import annotations

import traceback
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
from platform_assets.ingestion.services import Services
from platform_resources.config import ObjectStoreSettings, PostgresSettings
from platform_resources.object_store import ObjectStore
from tests.helpers import query
from tests.security._support import DS, captured_logs, closed_port, runs, tracking_text

PG_SECRET = "S3cr3t-PG-!!"
MINIO_SECRET = "S3cr3t-MINIO-!!"
SECRETS = (PG_SECRET, MINIO_SECRET)


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def exception_text(error: BaseException) -> str:
    """The message, repr and full traceback (with every chained cause) of ``error``."""
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


def store(endpoint: str, secret: str = MINIO_SECRET) -> tuple[ObjectStoreSettings, ObjectStore]:
    settings = ObjectStoreSettings(endpoint_url=endpoint, access_key="access-id", secret_key=secret)
    return settings, ObjectStore(settings.client(), endpoint)


def services_with(pg: PostgresSettings, store_settings: ObjectStoreSettings, *, source: PostgresSettings | None = None,
                  platform: PostgresSettings | None = None, endpoint: str | None = None) -> Services:
    if endpoint is None:
        settings = ObjectStoreSettings(endpoint_url=store_settings.endpoint_url, access_key="access-id",
                                       secret_key=MINIO_SECRET)
    else:
        settings = ObjectStoreSettings(endpoint_url=endpoint, access_key="access-id", secret_key=MINIO_SECRET)
    return Services(
        source=source or with_password(pg),
        platform=platform or with_password(pg),
        store=ObjectStore(settings.client(), settings.endpoint_url),
        bronze_bucket=store_settings.buckets["bronze"],
        lock_wait_seconds=5,
    )


def with_password(pg: PostgresSettings, **changes: Any) -> PostgresSettings:
    fields = dict(host=pg.host, port=pg.port, user=pg.user, password=PG_SECRET, dbname=pg.dbname)
    fields.update(changes)
    return PostgresSettings(**fields)


def run_failing(loads: dict[str, Callable[[], Any]]) -> tuple[dict[str, str], str]:
    """Run every load (each must fail with IngestionError); their texts and the DEBUG log."""
    texts = {}
    with captured_logs() as log:
        for name, load in loads.items():
            with pytest.raises(IngestionError) as caught:
                load()
            texts[name] = exception_text(caught.value)
    return texts, log.getvalue()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    directory = tmp_path / "in"
    directory.mkdir()
    (directory / "a.csv").write_text("id,name\n1,a\n")
    (directory / "b.json").write_text('[{"id": 1}]')
    return {"dir": directory, "csv": directory / "a.csv", "json": directory / "b.json"}


# --------------------------------------------------------------------------- failing loads


def test_failing_database_loads_do_not_leak_secrets(pg, pg_conn, store_settings):
    query(pg_conn, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    port = closed_port()
    sources = {
        "closed_port": with_password(pg, port=port),
        "bad_host": with_password(pg, host="256.256.256.256"),
        "no_such_role": with_password(pg, user="no_such_role_s3cr3t"),
    }
    loads: dict[str, Callable[[], Any]] = {}
    for name, source in sources.items():
        services = services_with(pg, store_settings, source=source)
        loads[f"{name}:table"] = lambda s=services: extract_table_full("t", "public", "k/t.parquet", DS, services=s)
        loads[f"{name}:query"] = lambda s=services: extract_with_custom_query(
            "SELECT 1 AS one", "k/q.parquet", DS, source_name="q", services=s)
    store_down = services_with(pg, store_settings, endpoint=f"http://127.0.0.1:{closed_port()}")
    loads["store_down:table"] = lambda: extract_table_full("t", "public", "k/t.parquet", DS, services=store_down)
    wrong_table = services_with(pg, store_settings)
    loads["missing_table"] = lambda: extract_table_full("missing", "public", "k/m.parquet", DS, services=wrong_table)

    texts, log = run_failing(loads)

    assert "connect" in texts["closed_port:table"] and "256.256.256.256" in texts["bad_host:table"]
    assert "no_such_role_s3cr3t" in texts["no_such_role:table"]
    assert "127.0.0.1" in texts["store_down:table"]
    assert {name: leaks(text) for name, text in texts.items()} == {name: [] for name in texts}
    assert "botocore" in log, "the DEBUG log check would be vacuous"
    assert leaks(log) == []
    rows = tracking_text(pg_conn)
    assert rows.count('"status":"failed"') == len(loads)
    assert leaks(rows) == []


def test_failing_file_loads_do_not_leak_secrets(pg, pg_conn, store_settings, files):
    store_down = services_with(pg, store_settings, endpoint=f"http://127.0.0.1:{closed_port()}")
    loads = {
        "csv": lambda: ingest_csv_file(files["csv"], "f/a.parquet", DS, services=store_down),
        "json": lambda: ingest_json_file(files["json"], "f/b.parquet", DS, services=store_down),
        "missing_file": lambda: ingest_csv_file(files["dir"] / "nope.csv", "f/n.parquet", DS, services=store_down),
    }
    platform_down = services_with(pg, store_settings, platform=with_password(pg, port=closed_port()))
    loads["platform_down"] = lambda: ingest_csv_file(files["csv"], "f/a.parquet", DS, services=platform_down)

    with captured_logs() as log:
        batch = batch_ingest_files(files["dir"], "*", DS, services=store_down)
    texts, more_log = run_failing(loads)

    assert [r["status"] for r in batch] == ["failed", "failed"]
    assert leaks(repr(batch)) == []
    assert {name: leaks(text) for name, text in texts.items()} == {name: [] for name in texts}
    assert "cannot connect to the platform database" in texts["platform_down"]
    assert "botocore" in log.getvalue() and "botocore" in more_log, "the DEBUG log check would be vacuous"
    assert leaks(log.getvalue() + more_log) == []
    rows = tracking_text(pg_conn)
    assert rows.count('"status":"failed"') == 5  # 2 batch files + csv + json + missing file
    assert leaks(rows) == []


def test_loads_configured_from_the_environment_do_not_leak_secrets(pg, pg_conn, monkeypatch, files):
    """The guide's path: no ``services`` argument, everything from PG*/MINIO_* variables."""
    query(pg_conn, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    monkeypatch.setenv("PGHOST", pg.host)
    monkeypatch.setenv("PGPORT", str(pg.port))
    monkeypatch.setenv("PGUSER", pg.user)
    monkeypatch.setenv("PGDATABASE", pg.dbname)
    monkeypatch.setenv("PGPASSWORD", PG_SECRET)
    monkeypatch.setenv("MINIO_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("MINIO_ACCESS_KEY", "access-id")
    monkeypatch.setenv("MINIO_SECRET_KEY", MINIO_SECRET)
    monkeypatch.setenv("BRONZE_BUCKET", "bronze-secrets-test")
    for name in ("PLATFORM_PGHOST", "PLATFORM_PGPORT", "PLATFORM_PGPASSWORD", "PLATFORM_PGDATABASE"):
        monkeypatch.delenv(name, raising=False)
    loads: dict[str, Callable[[], Any]] = {
        "table": lambda: extract_table_full("t", "public", "k/t.parquet", DS),
        "csv": lambda: ingest_csv_file(files["csv"], "f/a.parquet", DS),
    }
    texts, log = run_failing(loads)
    monkeypatch.setenv("PGPORT", str(closed_port()))
    more_texts, more_log = run_failing({"pg_down": lambda: extract_table_full("t", "public", "k/t.parquet", DS)})

    everything = "\n".join([*texts.values(), *more_texts.values(), log, more_log, tracking_text(pg_conn)])
    assert "cannot connect to the platform database" in more_texts["pg_down"]
    assert leaks(everything) == []
    assert repr(Services.from_env()).count("S3cr3t") == 0


def test_successful_load_with_a_password_does_not_leak_it(pg, pg_conn, store_settings, monkeypatch):
    """Trust auth ignores the password, so the load succeeds while one is configured (psql gets PGPASSWORD)."""
    query(pg_conn, "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)")
    services = services_with(pg, store_settings)
    results = []
    with captured_logs() as log:
        for client in ("psql", "psycopg2"):
            monkeypatch.setenv("INGESTION_COPY_CLIENT", client)
            results.append(extract_table_full("t", "public", f"ok/{client}.parquet", DS, services=services))
            with pytest.raises(IngestionError) as caught:
                extract_with_custom_query("SELECT 1/0 AS boom", f"ok/{client}-err.parquet", DS,
                                          source_name=f"boom_{client}", services=services)
            assert "division by zero" in str(caught.value)
            assert leaks(exception_text(caught.value)) == []
    assert [r["row_count"] for r in results] == [2, 2]
    assert leaks(repr(results)) == []
    assert leaks(log.getvalue()) == []
    assert leaks(tracking_text(pg_conn)) == []
    assert [r["status"] for r in runs(pg_conn)] == ["success", "failed", "success", "failed"]


# --------------------------------------------------------------------------- reprs


def test_settings_and_services_reprs_hide_secrets():
    pg = PostgresSettings(host="db", port=5432, user="u", password=PG_SECRET, dbname="d")
    settings, object_store = store("http://127.0.0.1:9", MINIO_SECRET)
    services = Services(source=pg, platform=pg, store=object_store)
    from_env = PostgresSettings.from_env(env={"PGPASSWORD": PG_SECRET, "PLATFORM_PGPASSWORD": PG_SECRET})
    store_from_env = ObjectStoreSettings.from_env(env={"MINIO_SECRET_KEY": MINIO_SECRET})

    texts = [repr(pg), str(pg), pg.describe(), repr(settings), str(settings), repr(services), str(services),
             repr(object_store), repr(object_store.client), repr(from_env), repr(store_from_env),
             repr(PostgresSettings.from_env(prefix="PLATFORM_", env={"PLATFORM_PGPASSWORD": PG_SECRET}))]
    assert leaks("\n".join(texts)) == []
    assert pg.password == PG_SECRET and settings.secret_key == MINIO_SECRET  # still usable


# --------------------------------------------------------------------------- Dagster


def test_dagster_code_location_does_not_embed_secrets(monkeypatch):
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value
    from dagster_aws.s3 import S3Resource

    from platform_assets.definitions import build_definitions
    from platform_assets.registry import FileFamily, PostgresSource, Registry

    monkeypatch.setenv("PGPASSWORD", PG_SECRET)
    monkeypatch.setenv("PLATFORM_PGPASSWORD", PG_SECRET)
    monkeypatch.setenv("MINIO_SECRET_KEY", MINIO_SECRET)
    monkeypatch.setenv("MINIO_ACCESS_KEY", "access-id")
    registry = Registry(
        postgres=[PostgresSource(name="orders", table="orders")],
        files=[FileFamily(name="drops", directory="/tmp", glob="*.csv", format="csv")],
    )
    defs = build_definitions(registry)

    s3 = defs.resources["s3"]
    assert isinstance(s3, S3Resource)
    import dagster as dg

    assert isinstance(s3.aws_secret_access_key, dg.EnvVar) and s3.aws_secret_access_key == "MINIO_SECRET_KEY"
    assert isinstance(s3.aws_access_key_id, dg.EnvVar)
    for name in ("source_db", "platform_db"):
        assert defs.resources[name].password is None  # read from PG* at run time, never configured
    assert leaks(repr(defs.resources)) == []

    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "MINIO_SECRET_KEY" in snapshot  # the variable's name is shown...
    assert leaks(snapshot) == []  # ...never its value
    # the values still reach the resources at run time
    assert s3.aws_secret_access_key.get_value() == MINIO_SECRET
    assert defs.resources["source_db"].settings().password == PG_SECRET

"""End to end through the CLI, configured by a settings file only (issue 16).

A person's own database and registry, tracking tables in a platform database of their
own; port conflicts that fail fast in one line; a demo that refuses foreign tables.
Every command runs as a child process whose environment holds none of the platform's
variables: only ``SETTINGS_FILE``.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg2
import pyarrow.parquet as pq
import pytest

from platform_resources.config import KNOWN_SETTINGS, SETTINGS_FILE_VARIABLE
from tests.conftest import ADMIN
from tests.helpers import query

PROJECT = Path(__file__).resolve().parents[2]
SECRET = "not-shown-9f3c1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _gone(pid: int) -> bool:
    """The process ended (a zombie left to a parent that does not reap counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(") ", 1)[1].startswith("Z")


def cli(settings_file: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in KNOWN_SETTINGS and not k.startswith("PG")}
    env[SETTINGS_FILE_VARIABLE] = str(settings_file)
    return subprocess.run([sys.executable, "-m", "platform_assets.cli", *args], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def write_settings(path: Path, **values: object) -> Path:
    path.write_text("# written by the test\n" + "".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def error_lines(stderr: str) -> list[str]:
    """stderr without the settings block (its lines start with 'settings', two spaces or 'tracking')."""
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith(("settings in effect", "  ", "tracking tables:"))]


@pytest.fixture
def platform_db(pg):
    """The name of a platform database on the test server (created by the CLI's bootstrap), dropped after."""
    name = f"{pg.dbname}_platform"
    yield name
    admin = ADMIN.connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_own_database_and_registry_with_a_separate_platform_database(tmp_path, pg, pg_conn, platform_db,
                                                                     store_settings):
    query(pg_conn, """
        CREATE SCHEMA shop;
        CREATE TABLE shop.items (id int PRIMARY KEY, name text, updated_at timestamptz NOT NULL);
        INSERT INTO shop.items SELECT g, 'item ' || g, timestamptz '2024-03-01 00:00+00' + g * interval '5 hours'
        FROM generate_series(1, 7) g;  -- 4 rows on 03-01, 3 on 03-02
        CREATE TABLE shop.prices (sku text PRIMARY KEY, price numeric(8, 2));
        INSERT INTO shop.prices VALUES ('a', 1.50), ('b', 2.25);
    """)
    (tmp_path / "sources.yaml").write_text(json.dumps({
        "start_date": "2024-03-01",
        "postgres": [
            {"name": "items", "schema": "shop", "table": "items", "load": "incremental",
             "watermark_column": "updated_at", "watermark_type": "timestamp"},
            {"name": "prices", "schema": "shop", "table": "prices"},
        ],
    }))
    settings = write_settings(
        tmp_path / "my.env",
        PGHOST=pg.host, PGPORT=pg.port, PGUSER=pg.user, PGPASSWORD=SECRET, PGDATABASE=pg.dbname,
        PLATFORM_PGDATABASE=platform_db,
        MINIO_ENDPOINT=store_settings.endpoint_url, MINIO_ACCESS_KEY=store_settings.access_key,
        MINIO_SECRET_KEY=SECRET, BRONZE_BUCKET=store_settings.buckets["bronze"],
        SOURCE_REGISTRY="sources.yaml", DAGSTER_HOME="dagster_home", LOCAL_DIR="local",
    )

    loaded = cli(settings, "load", "--partition", "2024-03-01")
    output = loaded.stdout + loaded.stderr
    assert loaded.returncode == 0, output
    assert f"PGDATABASE={pg.dbname}  (settings file)" in loaded.stderr
    assert f"PLATFORM_PGDATABASE={platform_db}  (settings file)" in loaded.stderr
    assert f"SOURCE_REGISTRY={tmp_path / 'sources.yaml'}  (settings file)" in loaded.stderr
    assert "PGPASSWORD=****" in loaded.stderr and SECRET not in output
    assert f"tracking tables: data_platform.* in postgresql://{pg.user}@{pg.host}:{pg.port}/{platform_db}" in loaded.stderr
    assert "created the platform database" in loaded.stdout

    # tracking rows in the platform database only
    platform = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, dbname=platform_db)
    try:
        rows = query(platform, "SELECT source_name, partition_key, status, row_count FROM data_platform.ingestion_metadata "
                               "ORDER BY source_name")
        watermarks = query(platform, "SELECT source_name, watermark_value FROM data_platform.watermarks")
    finally:
        platform.close()
    assert rows == [("shop.items", "2024-03-01", "success", 4), ("shop.prices", "2024-03-01", "success", 2)]
    assert watermarks == [("shop.items", "2024-03-01T20:00:00.000000+00:00")]
    assert query(pg_conn, "SELECT to_regnamespace('data_platform')") == [(None,)]
    assert query(pg_conn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'demo'") == [(0,)]

    # the data in the bucket the file names
    body = store_settings.client().get_object(
        Bucket=store_settings.buckets["bronze"], Key="postgres/items/2024-03-01/items.parquet")["Body"].read()
    assert sorted(pq.read_table(io.BytesIO(body)).column("id").to_pylist()) == [1, 2, 3, 4]
    assert (tmp_path / "dagster_home").is_dir() and (tmp_path / "local" / "env").is_file()

    status = cli(settings, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "== Failed runs, last 24 hours: 0" in status.stdout
    assert "shop.items" in status.stdout and "2024-03-01T20:00:00.000000+00:00" in status.stdout
    assert "without a successful load of" in status.stdout and SECRET not in status.stdout + status.stderr


class _NotS3(BaseHTTPRequestHandler):
    """A web server that is not an object store: a page for GET, 501 for the rest."""

    def do_GET(self):  # noqa: N802
        body = b"<html><body>some other service</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def not_s3_port():
    server = ThreadingHTTPServer(("127.0.0.1", _free_port()), _NotS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_foreign_server_on_the_object_store_port_fails_fast_in_one_line(tmp_path, pg, not_s3_port):
    base = {"PGHOST": pg.host, "PGPORT": pg.port, "PGUSER": pg.user, "PGDATABASE": pg.dbname,
            "LOCAL_DIR": tmp_path / "local", "DAGSTER_HOME": tmp_path / "home"}

    # the embedded object store's port is taken by a program it did not start
    settings = write_settings(tmp_path / "a.env", **base, LOCAL_S3_PORT=not_s3_port)
    started = time.monotonic()
    result = cli(settings, "demo", timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 2, result.stdout + result.stderr
    assert error_lines(result.stderr) == [
        f"error: 127.0.0.1:{not_s3_port} is in use by a program this project did not start, so the embedded "
        "object store cannot listen there: set LOCAL_S3_PORT to a free port in local.env "
        "(or MINIO_ENDPOINT to use an S3 server of your own)"
    ]
    assert not (tmp_path / "local" / "localbucket.pid").exists()

    # the configured endpoint is not an S3 server
    settings = write_settings(tmp_path / "b.env", **base, MINIO_ENDPOINT=f"http://127.0.0.1:{not_s3_port}")
    started = time.monotonic()
    result = cli(settings, "load", timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = error_lines(result.stderr)
    assert line.startswith(f"error: object store: http://127.0.0.1:{not_s3_port} does not answer as an S3 server")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert query(ADMIN.connect(), "SELECT 1") == [(1,)]  # (the server is still fine)


def test_a_busy_ui_port_stops_dev_before_anything_starts(tmp_path, pg):
    s3_port = _free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ui_port = busy.getsockname()[1]
        settings = write_settings(
            tmp_path / "dev.env", PGHOST=pg.host, PGPORT=pg.port, PGUSER=pg.user, PGDATABASE=pg.dbname,
            LOCAL_DIR=tmp_path / "local", DAGSTER_HOME=tmp_path / "home", LOCAL_S3_PORT=s3_port, UI_PORT=ui_port,
        )
        for args in (("dev",), ("dev", "--port", str(ui_port))):
            result = cli(settings, *args, timeout=60)
            assert result.returncode == 2, result.stdout + result.stderr
            assert result.stderr.strip() == (
                f"error: 127.0.0.1:{ui_port} is in use (another Dagster UI or program): choose another port, "
                f"e.g. make dev PORT={ui_port + 1} (or UI_PORT in local.env)"
            )
    # nothing was started: no object store, no Dagster process holding the port
    assert not _listening(s3_port) and not (tmp_path / "local").exists()
    assert not _listening(ui_port)


def test_make_passes_the_port_given_on_its_command_line():
    def dry_run(*args: str, **env: str) -> str:
        return subprocess.run(["make", "-n", "dev", *args], cwd=PROJECT, capture_output=True, text=True,
                              env={**os.environ, **env}, check=True).stdout

    assert "platform_assets.cli dev --port 3105" in dry_run("PORT=3105")
    assert "--port" not in dry_run(PORT="8080")  # an exported PORT belongs to something else


def test_demo_refuses_foreign_tables_of_its_names(tmp_path, pg, pg_conn, store_settings):
    query(pg_conn, "CREATE SCHEMA demo; CREATE TABLE demo.orders (id int PRIMARY KEY, total numeric);"
                   "INSERT INTO demo.orders VALUES (1, 10)")
    settings = write_settings(
        tmp_path / "demo.env", PGHOST=pg.host, PGPORT=pg.port, PGUSER=pg.user, PGDATABASE=pg.dbname,
        MINIO_ENDPOINT=store_settings.endpoint_url, BRONZE_BUCKET=store_settings.buckets["bronze"],
        LOCAL_DIR=tmp_path / "local", DAGSTER_HOME=tmp_path / "home",
    )
    result = cli(settings, "demo", timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = error_lines(result.stderr)
    assert line.startswith(f"error: database '{pg.dbname}' already has schema demo, table demo.orders")
    assert query(pg_conn, "SELECT * FROM demo.orders") == [(1, 10)]
    assert query(pg_conn, "SELECT to_regclass('demo.customers')") == [(None,)]


def test_stop_local_stops_the_object_store_it_started_and_says_so(tmp_path, pg, pg_conn, store_settings):
    query(pg_conn, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
    (tmp_path / "sources.yaml").write_text(json.dumps(
        {"start_date": "2024-03-01", "postgres": [{"name": "t", "table": "t"}]}))
    s3_port = _free_port()
    settings = write_settings(
        tmp_path / "local.env", PGHOST=pg.host, PGPORT=pg.port, PGUSER=pg.user, PGDATABASE=pg.dbname,
        SOURCE_REGISTRY="sources.yaml", LOCAL_DIR="local", LOCAL_S3_PORT=s3_port, DAGSTER_HOME="home",
    )
    try:
        loaded = cli(settings, "load", "--partition", "2024-03-01")
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        assert f"MINIO_ENDPOINT=http://127.0.0.1:{s3_port}  (embedded)" in loaded.stderr
        assert _listening(s3_port)
        assert (tmp_path / "local" / "s3" / "bronze" / "postgres" / "t" / "2024-03-01" / "t.parquet").is_file()
        assert "the embedded object store keeps running" in loaded.stdout and "make stop-local" in loaded.stdout
        [reader] = [line.strip() for line in loaded.stdout.splitlines() if "pq.read_table" in line]
        assert str(tmp_path / "local" / "s3" / "bronze" / "postgres" / "t") in reader
        shown = subprocess.run(reader, shell=True, cwd=PROJECT, capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0 and "id" in shown.stdout, shown.stderr
        pid = int((tmp_path / "local" / "localbucket.pid").read_text())
        again = cli(settings, "status")  # reuses the running store's settings; reads the tracking tables
        assert again.returncode == 0 and "Failed runs, last 24 hours: 0" in again.stdout
    finally:
        stopped = cli(settings, "stop-local")
    assert stopped.stdout.splitlines() == [f"stopped the embedded object store (localbucket, pid {pid}, port {s3_port})"]
    assert not _listening(s3_port)
    assert _gone(pid)
    assert cli(settings, "stop-local").stdout.strip() == (
        "nothing to stop: no embedded service started by this project is running")

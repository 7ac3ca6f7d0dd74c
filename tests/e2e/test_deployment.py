"""End to end as deployed: dagster-webserver and dagster-daemon on a PostgreSQL-backed instance.

A partition backfill is launched through the GraphQL API and run by the daemon (queued
run coordinator, pools); a file dropped into a family's input directory is picked up by
its sensor with no other action. Results are checked in the bronze bucket and the
tracking tables.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from platform_resources.object_store import ObjectStore
from tests.helpers import query

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIMEOUT_SECONDS = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, what: str, timeout: float = TIMEOUT_SECONDS, processes=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for process, log in processes:
            if process.poll() is not None:
                pytest.fail(f"{what}: a Dagster process exited:\n{Path(log).read_text()[-3000:]}")
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def deployment(tmp_path, pg, pg_conn, store_settings):
    """Instance on PostgreSQL, a small registry, the webserver and the daemon."""
    query(
        pg_conn,
        "CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL);"
        "INSERT INTO orders SELECT g, g, timestamptz '2024-03-01 00:00+00' + g * interval '6 hours'"
        " FROM generate_series(1, 12) g",  # 4 rows a day on 03-01 .. 03-03
    )
    query(pg_conn, "CREATE DATABASE " + f'"{pg.dbname}_dagster"')
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    registry = tmp_path / "sources.yaml"
    registry.write_text(
        json.dumps(
            {
                "start_date": "2024-03-01",
                # schedules start stopped: a tick at a quarter hour would add runs of recent days
                "automation": {"enabled": False},
                "postgres": [
                    {"name": "orders", "table": "orders", "load": "incremental",
                     "watermark_column": "updated_at", "watermark_type": "timestamp"}
                ],
                "files": [
                    {"name": "drops", "directory": str(inbox), "glob": "*.csv", "format": "csv",
                     "date_pattern": r"_(\d{8})\.", "date_format": "%Y%m%d", "sensor_interval_seconds": 5}
                ],
            }
        )
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": pg.host, "DAGSTER_PG_PORT": str(pg.port), "DAGSTER_PG_USER": pg.user,
        "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": f"{pg.dbname}_dagster",
        "PGHOST": pg.host, "PGPORT": str(pg.port), "PGUSER": pg.user, "PGDATABASE": pg.dbname,
        "MINIO_ENDPOINT": store_settings.endpoint_url,
        "MINIO_ACCESS_KEY": store_settings.access_key, "MINIO_SECRET_KEY": store_settings.secret_key,
        "BRONZE_BUCKET": store_settings.buckets["bronze"],
        "SOURCE_REGISTRY": str(registry),
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }
    processes = []
    for name, command in [
        ("webserver", [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]),
        ("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]),
    ]:
        log = tmp_path / f"{name}.log"
        process = subprocess.Popen(
            command, cwd=PROJECT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append((process, str(log)))
    try:
        yield {"port": port, "inbox": inbox, "processes": processes}
    finally:
        for process, _ in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, _ in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        _stop_code_servers(home)
        query(pg_conn, f'DROP DATABASE IF EXISTS "{pg.dbname}_dagster" WITH (FORCE)')


def _stop_code_servers(home: Path) -> None:
    """Stop the gRPC code servers our webserver/daemon spawned (in sessions of their own).

    They are found by the DAGSTER_HOME of this test in their environment, so nothing
    else on the machine is touched.
    """
    marker = f"DAGSTER_HOME={home}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environment:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _graphql(port: int, document: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": document, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _webserver_up(port: int) -> bool:
    try:
        data = _graphql(port, "{ assetNodes { assetKey { path } } }")
    except OSError:
        return False
    return bool(data.get("data", {}).get("assetNodes"))


def _successes(pg_conn, source: str) -> dict[str, int]:
    return dict(
        query(
            pg_conn,
            "SELECT partition_key, row_count FROM data_platform.ingestion_metadata "
            "WHERE source_name = %s AND status = 'success'",
            (source,),
        )
    ) if query(pg_conn, "SELECT to_regclass('data_platform.ingestion_metadata')")[0][0] else {}


def test_backfill_through_graphql_and_sensor_on_a_dropped_file(deployment, pg_conn, store_settings):
    port, processes = deployment["port"], deployment["processes"]
    _wait(lambda: _webserver_up(port), "the webserver to serve the code location", processes=processes)

    launched = _graphql(
        port,
        """mutation($params: LaunchBackfillParams!) {
             launchPartitionBackfill(backfillParams: $params) {
               __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
             } }""",
        {"params": {
            "assetSelection": [{"path": ["bronze", "postgres", "orders"]}],
            "partitionNames": ["2024-03-01", "2024-03-02", "2024-03-03"],
        }},
    )
    assert launched["data"]["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", launched
    # the asset's automation, as its page shows it: its schedule (stopped, as the registry says)
    nodes = _graphql(
        port,
        """{ assetNodes { assetKey { path } targetingInstigators {
             __typename ... on Schedule { name scheduleState { status } } } } }""",
    )["data"]["assetNodes"]
    [orders] = [n for n in nodes if n["assetKey"]["path"] == ["bronze", "postgres", "orders"]]
    assert orders["targetingInstigators"] == [
        {"__typename": "Schedule", "name": "orders_daily", "scheduleState": {"status": "STOPPED"}}]

    (deployment["inbox"] / "customers_20240302.csv").write_text("id,zip\n1,01234\n2,99999\n")

    _wait(
        lambda: _successes(pg_conn, "public.orders").keys() >= {"2024-03-01", "2024-03-02", "2024-03-03"},
        "the backfill's three partitions", processes=processes,
    )
    assert _successes(pg_conn, "public.orders") == {"2024-03-01": 3, "2024-03-02": 4, "2024-03-03": 4}
    _wait(
        lambda: "customers_20240302.csv" in dict(query(
            pg_conn, "SELECT source_name, status FROM data_platform.ingestion_metadata WHERE status = 'success'"
        )),
        "the sensor to load the dropped file", processes=processes,
    )
    store = ObjectStore(store_settings.client(), store_settings.endpoint_url)
    keys = {o["Key"] for o in store.list_objects(store_settings.buckets["bronze"])}
    assert {
        "postgres/orders/2024-03-01/orders.parquet",
        "postgres/orders/2024-03-02/orders.parquet",
        "postgres/orders/2024-03-03/orders.parquet",
    } <= keys
    [(partition, object_key)] = query(pg_conn, "SELECT partition_key, object_key FROM data_platform.ingested_files")
    assert partition == "2024-03-02" and object_key in keys
    assert object_key.startswith("files/drops/2024-03-02/customers_20240302.csv.")

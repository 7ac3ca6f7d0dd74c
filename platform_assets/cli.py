"""Command line: ``python -m platform_assets.cli <command>``.

- ``bootstrap``: create or upgrade the tracking tables (``sql/``); creates the
  platform database first when it does not exist and the user may.
- ``demo``: start the embedded defaults where nothing is configured, create the demo
  source tables (schema ``demo``), run the main job for one partition and print the
  daily summary.
- ``load``: the same without the demo tables: the registry in effect, one partition.
- ``summary``: print the guide's daily ingestion summary.
- ``status``: what on-call checks first (see ``platform_assets.status``).
- ``rebuild <source> <date>...``: replace partitions of a database source with the
  source as it is now (a Dagster run per partition, tagged ``data_platform/rebuild``).
- ``dev [--port]``: ``dagster dev`` on the same services; refuses a busy port.
- ``stop-local``: stop the embedded services this project started.

Every command first prints the settings in effect (to stderr, secrets masked).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from platform_assets.ingestion.services import Services
from platform_assets.status import DAILY_SUMMARY_SQL, format_table
from platform_resources.config import (
    LocalSettings,
    PostgresSettings,
    SettingsError,
    describe_settings,
)

PROJECT_DIR = Path(__file__).resolve().parents[1]


def print_settings(origins: Mapping[str, str] | None = None) -> None:
    """The settings in effect and where the tracking tables are, to stderr."""
    lines = describe_settings(origins)
    source, platform = PostgresSettings.from_env(), PostgresSettings.from_env(prefix="PLATFORM_")
    if (source.host, source.port, source.dbname) == (platform.host, platform.port, platform.dbname):
        lines.append(
            f"tracking tables: data_platform.* in the source database {platform.describe()} (one database: "
            "its user needs CREATE there; set PLATFORM_PGDATABASE in local.env to keep them apart)"
        )
    else:
        lines.append(f"tracking tables: data_platform.* in {platform.describe()}; sources read from {source.describe()}")
    print("\n".join(lines), file=sys.stderr, flush=True)


def ensure_platform_database(settings: PostgresSettings) -> None:
    """Create the platform database if it does not exist (on its server, with its user)."""
    import psycopg2
    from psycopg2 import sql

    try:
        settings.connect(application_name="data_platform:bootstrap").close()
        return
    except psycopg2.OperationalError as e:
        if "does not exist" not in str(e) or settings.dbname == "postgres":
            return  # bootstrap reports it
    maintenance = PostgresSettings(host=settings.host, port=settings.port, user=settings.user,
                                   password=settings.password, dbname="postgres")
    try:
        conn = maintenance.connect(application_name="data_platform:bootstrap")
    except psycopg2.OperationalError:
        return
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.dbname)))
        print(f"created the platform database {settings.describe()}")
    except psycopg2.Error as e:
        raise SettingsError(f"the platform database {settings.describe()} does not exist and cannot be "
                            f"created ({str(e).strip()}): create it, or set PLATFORM_PGDATABASE") from e
    finally:
        conn.close()


def bootstrap() -> None:
    services = Services.from_env()
    ensure_platform_database(services.platform)
    applied = services.bootstrap()
    print("applied: " + (", ".join(applied) if applied else "nothing (tracking tables are up to date)"))


def print_summary() -> None:
    with Services.from_env().platform_connection() as conn, conn.cursor() as cur:
        cur.execute(DAILY_SUMMARY_SQL.format(where=""))
        rows = cur.fetchall()
        headers = [d.name for d in cur.description]
    print(format_table(headers, rows))


def status() -> int:
    from platform_assets.registry import load_registry
    from platform_assets.status import report

    registry = load_registry()
    sources = {s.name: s.source_name for s in registry.postgres}
    with Services.from_env().platform_connection() as conn:
        print(report(conn, sources, registry.timezone, registry.start_date))
    return 0


def start_local(object_store: bool = True) -> dict[str, str]:
    """Start the embedded services where nothing is configured; print the settings; check the store.

    Commands that only read the tracking tables (``object_store=False``) attach to the
    embedded PostgreSQL the demo used, as the others do. Returns the embedded settings.
    """
    from platform_assets import local_stack

    embedded = local_stack.start(object_store=object_store)
    print_settings({name: "embedded" for name in embedded})
    if object_store:
        local_stack.check_object_store()
    return embedded


def print_where_bronze(embedded: Mapping[str, str]) -> None:
    """Where the Parquet went, how to read it, and what keeps running."""
    from platform_assets import local_stack
    from platform_resources.config import ObjectStoreSettings

    store = ObjectStoreSettings.from_env()
    bucket = store.buckets["bronze"]
    print(f"bronze: s3://{bucket}/ at {store.endpoint_url}")
    if "MINIO_ENDPOINT" in embedded:
        from platform_assets.registry import load_registry

        folder = local_stack.local_root() / "s3" / bucket
        name = next((s.name for s in load_registry().postgres), "<name>")
        print(f"  the embedded object store keeps running ({store.endpoint_url}; `make stop-local` stops it); "
              f"its objects are plain files under {folder}/, e.g.\n"
              f"  .venv/bin/python -c \"import pyarrow.parquet as pq; "
              f"print(pq.read_table('{folder}/postgres/{name}').to_pandas())\"")


def demo(partition: str) -> int:
    embedded = start_local()
    from platform_assets.demo_data import DEMO_SCHEMA, create_demo_sources

    bootstrap()
    settings = PostgresSettings.from_env()
    source = settings.connect(application_name="data_platform:demo")
    source.autocommit = True
    try:
        counts = create_demo_sources(source)
    finally:
        source.close()
    print(f"demo sources in schema {DEMO_SCHEMA} of {settings.describe()}: "
          + ", ".join(f"{k}={v}" for k, v in counts.items()))
    status = run_main_job(partition)
    print_where_bronze(embedded)
    return status


def load(partition: str) -> int:
    embedded = start_local()
    bootstrap()
    status = run_main_job(partition)
    print_where_bronze(embedded)
    return status


def run_main_job(partition: str) -> int:
    from dagster import DagsterInstance

    from platform_assets.definitions import MAIN_JOB, defs

    with DagsterInstance.get() as instance:
        result = defs.resolve_job_def(MAIN_JOB).execute_in_process(
            partition_key=partition,
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    print(f"\n{MAIN_JOB} for partition {partition}: {'succeeded' if result.success else 'FAILED'}\n")
    print_summary()
    return 0 if result.success else 1


def rebuild(source: str, partitions: list[str]) -> int:
    import dagster as dg

    from platform_assets.definitions import defs
    from platform_assets.defs.postgres import REBUILD_TAG

    key = dg.AssetKey(["bronze", "postgres", source])
    try:
        asset = defs.get_assets_def(key)
    except Exception as e:
        raise SystemExit(f"no database source {source!r} in the registry ({e})") from e
    failed = 0
    with _instance() as instance:
        for partition in partitions:
            result = dg.materialize(
                [asset], partition_key=partition, instance=instance, resources=defs.resources,
                tags={REBUILD_TAG: "true"}, raise_on_error=False,
            )
            print(f"rebuild of {source} {partition}: {'succeeded' if result.success else 'FAILED'}")
            failed += not result.success
    return 1 if failed else 0


def dev(port: int | None) -> int:
    """``dagster dev`` on 127.0.0.1:``port``, in place of this process; a busy port stops it first."""
    from platform_assets import local_stack

    port = port or LocalSettings.from_env().ui_port
    if not local_stack.port_free("127.0.0.1", port):
        print(f"error: 127.0.0.1:{port} is in use (another Dagster UI or program): "
              f"choose another port, e.g. make dev PORT={port + 1} (or UI_PORT in local.env)", file=sys.stderr)
        return 2
    start_local()
    bin_dir = Path(sys.executable).parent
    dagster = str(bin_dir / "dagster")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    print(f"starting dagster dev on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    os.execve(dagster, [dagster, "dev", "-w", str(PROJECT_DIR / "workspace.yaml"), "-h", "127.0.0.1",
                        "-p", str(port)], env)
    return 0  # not reached


def stop_local() -> int:
    from platform_assets import local_stack

    for line in local_stack.stop():
        print(line)
    return 0


def _instance():
    """The Dagster instance of DAGSTER_HOME (so the UI shows the runs), else an ephemeral one."""
    from dagster import DagsterInstance

    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m platform_assets.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("bootstrap", help="create or upgrade the tracking tables")
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    for name, text in (("demo", "create the demo tables and load every database source for one partition"),
                       ("load", "load every database source of the registry for one partition")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--partition", default=today, help="partition date (default: today, UTC)")
    commands.add_parser("summary", help="print the daily ingestion summary")
    commands.add_parser("status", help="daily summary, recent failures, watermarks, missing days")
    rebuild_parser = commands.add_parser(
        "rebuild", help="replace partitions of a database source with the source as it is now"
    )
    rebuild_parser.add_argument("source", help="registry name of the source, e.g. orders")
    rebuild_parser.add_argument("partitions", nargs="+", help="partition dates, e.g. 2024-03-01")
    dev_parser = commands.add_parser("dev", help="the Dagster UI (dagster dev) on the same services")
    dev_parser.add_argument("--port", type=int, help="UI port (default: UI_PORT, else 3000)")
    commands.add_parser("stop-local", help="stop the embedded services this project started")
    return parser


def main(argv: list[str] | None = None) -> int:
    from platform_assets.demo_data import DemoRefused
    from platform_assets.ingestion.errors import TransientError
    from platform_assets.local_stack import LocalStackError
    from platform_assets.registry import RegistryError

    args = _parser().parse_args(argv)
    try:
        if args.command in {"demo", "load"}:
            return demo(args.partition) if args.command == "demo" else load(args.partition)
        if args.command == "dev":
            return dev(args.port)
        if args.command == "stop-local":
            print_settings()
            return stop_local()
        start_local(object_store=args.command == "rebuild")
        if args.command == "rebuild":
            return rebuild(args.source, args.partitions)
        if args.command == "bootstrap":
            bootstrap()
            return 0
        if args.command == "status":
            return status()
        print_summary()
        return 0
    except (SettingsError, LocalStackError, DemoRefused, RegistryError, TransientError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

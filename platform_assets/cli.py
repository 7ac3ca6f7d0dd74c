"""Command line: ``python -m platform_assets.cli {bootstrap,demo,summary,rebuild}``.

- ``bootstrap``: create or upgrade the tracking tables (``sql/``).
- ``demo``: start the embedded defaults where nothing is configured, create the demo
  source tables, run the main job for one partition and print the daily summary.
- ``summary``: print the guide's daily ingestion summary.
- ``rebuild <source> <date>...``: replace partitions of a database source with the
  source as it is now (a Dagster run per partition, tagged ``data_platform/rebuild``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from platform_assets.ingestion.services import Services
from platform_resources.config import PostgresSettings

DAILY_SUMMARY_SQL = """
SELECT execution_date,
       COUNT(*) AS total_runs,
       SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END) AS successes,
       SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failures,
       SUM(row_count) AS total_rows
FROM data_platform.ingestion_metadata
GROUP BY execution_date
ORDER BY execution_date DESC
"""


def bootstrap() -> None:
    applied = Services.from_env().bootstrap()
    print("applied: " + (", ".join(applied) if applied else "nothing (tracking tables are up to date)"))


def print_summary() -> None:
    with Services.from_env().platform_connection() as conn, conn.cursor() as cur:
        cur.execute(DAILY_SUMMARY_SQL)
        rows = cur.fetchall()
        headers = [d.name for d in cur.description]
    print(format_table(headers, rows))


def format_table(headers: list[str], rows: list[tuple]) -> str:
    cells = [headers] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def demo(partition: str) -> int:
    from platform_assets import local_stack

    settings = local_stack.start()
    for name, value in sorted(settings.items()):
        print(f"using {name}={value}")

    from dagster import DagsterInstance

    from platform_assets.definitions import MAIN_JOB, defs
    from platform_assets.demo_data import create_demo_sources

    bootstrap()
    source = PostgresSettings.from_env().connect(application_name="data_platform:demo")
    source.autocommit = True
    try:
        counts = create_demo_sources(source)
    finally:
        source.close()
    print("demo sources: " + ", ".join(f"{k}={v}" for k, v in counts.items()))

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


def _instance():
    """The Dagster instance of DAGSTER_HOME (so the UI shows the runs), else an ephemeral one."""
    import os

    from dagster import DagsterInstance

    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform_assets.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("bootstrap", help="create or upgrade the tracking tables")
    demo_parser = commands.add_parser("demo", help="load the demo sources for one partition")
    demo_parser.add_argument(
        "--partition", default=dt.datetime.now(dt.timezone.utc).date().isoformat(),
        help="partition date (default: today, UTC)",
    )
    commands.add_parser("summary", help="print the daily ingestion summary")
    rebuild_parser = commands.add_parser(
        "rebuild", help="replace partitions of a database source with the source as it is now"
    )
    rebuild_parser.add_argument("source", help="registry name of the source, e.g. orders")
    rebuild_parser.add_argument("partitions", nargs="+", help="partition dates, e.g. 2024-03-01")
    args = parser.parse_args(argv)
    if args.command == "rebuild":
        return rebuild(args.source, args.partitions)
    if args.command == "bootstrap":
        bootstrap()
        return 0
    if args.command == "summary":
        print_summary()
        return 0
    return demo(args.partition)


if __name__ == "__main__":
    sys.exit(main())

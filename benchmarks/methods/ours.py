"""Ours: the project's guide API and a Dagster materialization, writing to the loopback S3 server.

Every function builds a ``Services`` from ``PostgresSettings``/``ObjectStoreSettings``
(source and tracking tables both in the benchmark database) inside the timed part,
as a caller of the guide's API would, and returns where the object was stored.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.config import PgTarget, S3Target


def _services(args: dict[str, Any]) -> Any:
    from platform_assets.ingestion.services import Services
    from platform_resources.config import ObjectStoreSettings, PostgresSettings
    from platform_resources.object_store import ObjectStore

    pg = PgTarget.from_json(args["pg"])
    s3 = S3Target.from_json(args["s3"])
    settings = PostgresSettings(host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname=pg.dbname)
    store = ObjectStoreSettings(
        endpoint_url=s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, region=s3.region,
        buckets={"bronze": s3.bucket, "silver": s3.bucket, "gold": s3.bucket},
    )
    work_dir = Path(args["work_dir"])
    work_dir.mkdir(parents=True, exist_ok=True)
    return Services(
        source=settings, platform=settings, store=ObjectStore(store.client(), store.endpoint_url),
        bronze_bucket=s3.bucket, lock_wait_seconds=120, work_dir=work_dir,
    )


def _s3_output(result: dict[str, Any], seconds: float, args: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "seconds": seconds, "rows": result["row_count"], "output_bytes": result["file_size_bytes"],
        "output": {"kind": "s3", "bucket": args["s3"]["bucket"], "key": result["object_key"]}, **extra,
    }


def full(args: dict[str, Any]) -> dict[str, Any]:
    from platform_assets.ingestion.database_ingestor import extract_table_full
    from platform_assets.ingestion.postgres.extract import parallel_streams

    start = time.perf_counter()
    result = extract_table_full(
        args["table"], "public", args["object_key"], args["execution_date"], services=_services(args)
    )
    seconds = time.perf_counter() - start
    return _s3_output(result, seconds, args, parallel_streams=parallel_streams())


def incremental(args: dict[str, Any]) -> dict[str, Any]:
    from platform_assets.ingestion.database_ingestor import extract_table_incremental

    start = time.perf_counter()
    result = extract_table_incremental(
        args["table"], "public", args["watermark_column"], args["object_key"], args["execution_date"],
        "timestamp", services=_services(args),
    )
    seconds = time.perf_counter() - start
    return _s3_output(
        result, seconds, args, watermark_before=result.get("watermark_before"),
        watermark_after=result.get("watermark_after"), extract_range=result.get("extract_range"),
    )


def csv_file(args: dict[str, Any]) -> dict[str, Any]:
    from platform_assets.ingestion.file_ingestor import ingest_csv_file

    start = time.perf_counter()
    result = ingest_csv_file(args["path"], args["object_key"], args["execution_date"], services=_services(args))
    seconds = time.perf_counter() - start
    return _s3_output(result, seconds, args)


def json_file(args: dict[str, Any]) -> dict[str, Any]:
    from platform_assets.ingestion.file_ingestor import ingest_json_file

    start = time.perf_counter()
    result = ingest_json_file(args["path"], args["object_key"], args["execution_date"], services=_services(args))
    seconds = time.perf_counter() - start
    return _s3_output(result, seconds, args)


def dagster_asset(args: dict[str, Any]) -> dict[str, Any]:
    """``dg.materialize`` of one partition of a full-load registry source (asset checks included)."""
    import datetime as dt

    import dagster as dg
    from dagster_aws.s3 import S3Resource

    from platform_assets.definitions import build_definitions
    from platform_assets.registry import PostgresSource, Registry
    from platform_resources.object_store_resources import StorageLayersResource
    from platform_resources.postgres import PostgresResource

    pg = PgTarget.from_json(args["pg"])
    s3 = S3Target.from_json(args["s3"])
    start = time.perf_counter()
    source = PostgresSource(name=args["table"], table=args["table"])
    registry = Registry(start_date=dt.date.fromisoformat(args["start_date"]), timezone="UTC", postgres=[source])
    defs = build_definitions(registry)
    asset = defs.get_assets_def(dg.AssetKey(["bronze", "postgres", source.name]))
    db = PostgresResource(host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname=pg.dbname)
    result = dg.materialize(
        [asset],
        partition_key=args["execution_date"],
        resources={
            "source_db": db,
            "platform_db": db,
            "s3": S3Resource(
                endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
                aws_secret_access_key=s3.secret_key, region_name=s3.region,
            ),
            "storage_layers": StorageLayersResource(bronze_bucket=s3.bucket),
        },
    )
    seconds = time.perf_counter() - start
    if not result.success:
        raise RuntimeError("materialization failed")
    metadata = result.asset_materializations_for_node(f"bronze__postgres__{source.name}")[0].metadata
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    return {
        "seconds": seconds, "rows": metadata["row_count"].value,
        "output_bytes": metadata["file_size_bytes"].value,
        "output": {"kind": "s3", "bucket": s3.bucket, "key": source.key_for(args["execution_date"])},
        "asset_checks": checks,
    }


def _partition(args: dict[str, Any], capture_deletes: bool) -> dict[str, Any]:
    """One run of a full-load registry source's partition through the engine (no Dagster)."""
    import datetime as dt

    from platform_assets.ingestion.partitions.postgres import SourceSpec
    from platform_assets.ingestion.postgres.partition_load import load_partition

    name = "ours_partition_deletes" if capture_deletes else "ours_partition"
    spec = SourceSpec(
        name=name, source_name=f"public.{args['table']}", schema="public", table=args["table"],
        object_key_pattern=f"bench/{{name}}/{{date}}/{args['table']}.parquet",
        start_date=dt.date.fromisoformat(args["start_date"]), capture_deletes=capture_deletes,
    )
    services = _services(args)
    services.bootstrap()
    start = time.perf_counter()
    outcome = load_partition(spec, args["execution_date"], services)
    seconds = time.perf_counter() - start
    result = outcome.result
    return {
        "seconds": seconds, "rows": result.row_count, "output_bytes": result.file_size_bytes,
        "output": {"kind": "s3", "bucket": args["s3"]["bucket"], "key": result.object_key},
        "deleted_rows": result.deleted_rows,
    }


def partition_full(args: dict[str, Any]) -> dict[str, Any]:
    return _partition(args, capture_deletes=False)


def partition_full_with_deletes(args: dict[str, Any]) -> dict[str, Any]:
    """The same run capturing deletes: the key set read in the snapshot and compared."""
    return _partition(args, capture_deletes=True)

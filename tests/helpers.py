"""Reading back what a load wrote: the Parquet object and the tracking rows."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def read_parquet(services: Any, key: str) -> pa.Table:
    body = services.store.client.get_object(Bucket=services.bronze_bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def query(conn: Any, sql: str, params: Any = None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def dagster_resources(pg: Any, store_settings: Any) -> dict[str, Any]:
    """The definitions' resources pointed at a test database and bucket."""
    from dagster_aws.s3 import S3Resource

    from platform_resources.object_store_resources import StorageLayersResource
    from platform_resources.postgres import PostgresResource

    db = PostgresResource(host=pg.host, port=pg.port, user=pg.user, dbname=pg.dbname)
    return {
        "source_db": db,
        "platform_db": db,
        "s3": S3Resource(
            endpoint_url=store_settings.endpoint_url,
            aws_access_key_id=store_settings.access_key,
            aws_secret_access_key=store_settings.secret_key,
            region_name="us-east-1",
        ),
        "storage_layers": StorageLayersResource(bronze_bucket=store_settings.buckets["bronze"]),
    }


def write_input(directory: Any, name: str, data: str | bytes) -> Any:
    """Write a source file under ``directory``; a ``.gz`` name is gzip-compressed."""
    import gzip

    path = directory / name
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    return path


def tracking_runs(conn: Any, source_name: str | None = None) -> list[dict[str, Any]]:
    """Rows of data_platform.ingestion_metadata (of one source), oldest first; [] before bootstrap."""
    if query(conn, "SELECT to_regclass('data_platform.ingestion_metadata')")[0][0] is None:
        return []
    where, params = ("WHERE source_name = %s", (source_name,)) if source_name is not None else ("", None)
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM data_platform.ingestion_metadata {where} ORDER BY id", params)
        names = [d.name for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def watermark_row(conn: Any, source: str) -> dict[str, Any] | None:
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM data_platform.watermarks WHERE source_name = %s", (source,))
        row = cur.fetchone()
        return dict(zip([d.name for d in cur.description], row)) if row else None


def materialize_partition(
    registry: Any,
    pg: Any,
    store_settings: Any,
    name: str,
    partition: str,
    *,
    group: str = "postgres",
    run_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    raise_on_error: bool = True,
) -> Any:
    """``dg.materialize`` of one registry source's partition, as the UI launches it."""
    import dagster as dg

    from platform_assets.definitions import build_definitions

    defs = build_definitions(registry)
    asset = defs.get_assets_def(dg.AssetKey(["bronze", group, name]))
    config = {"ops": {asset.node_def.name: {"config": run_config}}} if run_config else None
    return dg.materialize(
        [asset],
        partition_key=partition,
        resources=dagster_resources(pg, store_settings),
        run_config=config,
        tags=tags,
        raise_on_error=raise_on_error,
    )


def object_rows(store_settings: Any, key: str, *columns: str) -> list[tuple] | None:
    """The rows of a bronze object as tuples of ``columns`` (None when there is no object)."""
    from botocore.exceptions import ClientError

    client = store_settings.client()
    try:
        body = client.get_object(Bucket=store_settings.buckets["bronze"], Key=key)["Body"].read()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in {"NoSuchKey", "NoSuchBucket", "404"}:
            return None
        raise
    table = pq.read_table(io.BytesIO(body))
    return [tuple(row[c] for c in columns) for row in table.to_pylist()]


def waiting_advisory_locks(conn: Any) -> int:
    """How many sessions wait for an advisory lock (e.g. a run waiting for its source's lock)."""
    return query(conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")[0][0]


def bronze_objects(store_settings: Any, prefix: str) -> dict[str, pa.Table]:
    """Every object under ``prefix`` in the bronze bucket, read back ({} when there is none)."""
    from botocore.exceptions import ClientError

    client = store_settings.client()
    bucket = store_settings.buckets["bronze"]
    try:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return {}
        raise
    return {
        o["Key"]: pq.read_table(io.BytesIO(client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()))
        for o in listed
    }


def family_rows(store_settings: Any, family: str, *columns: str) -> list[tuple]:
    """The rows every object of a file family holds, as tuples of ``columns``, sorted."""
    rows = [
        tuple(row.get(c) for c in columns)
        for table in bronze_objects(store_settings, f"files/{family}/").values()
        for row in table.to_pylist()
    ]
    return sorted(rows, key=lambda r: tuple((v is None, str(v)) for v in r))


def sensor_tick(
    registry: Any, family: str, pg: Any, store_settings: Any, cursor: str | None, instance: Any = None
) -> tuple[list, str]:
    """One evaluation of a family's sensor: (run requests, new cursor)."""
    import dagster as dg

    from platform_assets.definitions import build_definitions

    sensor = build_definitions(registry).resolve_sensor_def(f"{family}_sensor")
    resources = dagster_resources(pg, store_settings)
    with dg.build_sensor_context(cursor=cursor, resources=resources, instance=instance) as context:
        result = sensor(context)
    return list(result.run_requests or []), result.cursor


def launch(
    registry: Any, request: Any, family: str, pg: Any, store_settings: Any, raise_on_error: bool = False,
    instance: Any = None,
) -> Any:
    """Run a sensor's run request as the daemon would (its partition, config, tags and run key)."""
    import dagster as dg

    from platform_assets.definitions import build_definitions

    defs = build_definitions(registry)
    return dg.materialize(
        [defs.get_assets_def(dg.AssetKey(["bronze", "files", family]))],
        partition_key=request.partition_key,
        run_config=request.run_config or None,
        tags={**request.tags, "dagster/run_key": request.run_key},
        resources=dagster_resources(pg, store_settings),
        raise_on_error=raise_on_error,
        instance=instance,
    )

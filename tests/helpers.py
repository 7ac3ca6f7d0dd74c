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

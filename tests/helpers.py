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

"""The user guide's database extraction API (``ingestion.database_ingestor``).

Each function runs one tracked load into the bronze bucket and returns a dict with
``uri``, ``row_count``, ``file_size_bytes``, ``checksum`` (MD5 of the stored
object), ``source_name``, ``execution_date``, ``status`` and, for incremental
loads, ``watermark_before``/``watermark_after``. Connections come from the
environment (``PG*``, ``MINIO_*``) unless ``services`` is given.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from platform_assets.ingestion.engine import LoadRequest, run_load
from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.services import Services


def extract_table_full(
    table_name: str,
    schema: str = "public",
    object_key: str | None = None,
    execution_date: str | None = None,
    *,
    services: Services | None = None,
) -> dict[str, Any]:
    """Extract every row of ``schema.table_name`` (tables, views and system views)."""
    ds = _execution_date(execution_date)
    return run_load(
        LoadRequest(
            source_name=f"{schema}.{table_name}",
            object_key=object_key or default_object_key(table_name, ds),
            execution_date=ds,
            mode="full",
            schema=schema,
            table=table_name,
        ),
        services or Services.from_env(),
    )


def extract_table_incremental(
    table_name: str,
    schema: str,
    watermark_column: str,
    object_key: str | None = None,
    execution_date: str | None = None,
    watermark_type: str = "timestamp",
    *,
    services: Services | None = None,
) -> dict[str, Any]:
    """Extract rows with ``watermark_column`` past the stored watermark (all rows the first time).

    Rows committed late by transactions that were open during the previous extract
    are picked up too; the watermark then moves to the largest value loaded.
    """
    ds = _execution_date(execution_date)
    return run_load(
        LoadRequest(
            source_name=f"{schema}.{table_name}",
            object_key=object_key or default_object_key(table_name, ds),
            execution_date=ds,
            mode="incremental",
            schema=schema,
            table=table_name,
            watermark_column=watermark_column,
            watermark_type=watermark_type,
        ),
        services or Services.from_env(),
    )


def extract_with_custom_query(
    query: str,
    object_key: str,
    execution_date: str | None = None,
    source_name: str = "custom_query",
    *,
    services: Services | None = None,
) -> dict[str, Any]:
    """Extract the result of ``query``, run in a read-only transaction."""
    ds = _execution_date(execution_date)
    return run_load(
        LoadRequest(
            source_name=source_name,
            object_key=object_key,
            execution_date=ds,
            mode="full",
            query=query,
        ),
        services or Services.from_env(),
    )


def default_object_key(name: str, execution_date: str) -> str:
    return f"postgres/{name}/{execution_date}/{name}.parquet"


def _execution_date(value: str | dt.date | None) -> str:
    if value is None:
        return dt.date.today().isoformat()
    try:
        return dt.date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError as e:
        raise IngestionError(
            f"execution_date must be a date like '2024-01-01', got {value!r}"
        ) from e

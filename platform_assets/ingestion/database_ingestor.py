"""The user guide's database extraction API (``ingestion.database_ingestor``).

Each function runs one tracked load into the bronze bucket and returns a dict with
``uri``, ``row_count``, ``file_size_bytes``, ``checksum`` (MD5 of the stored
object), ``source_name``, ``execution_date``, ``status`` and, for incremental
loads, ``watermark_before``/``watermark_after``. Connections come from the
environment (``PG*``, ``MINIO_*``) unless ``services`` is given.
"""

from __future__ import annotations

from typing import Any

from platform_assets.ingestion.dates import execution_date_text
from platform_assets.ingestion.postgres.load import LoadRequest, run_load
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
    return _run(_table_request(table_name, schema, object_key, execution_date, mode="full"), services)


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
    request = _table_request(
        table_name, schema, object_key, execution_date,
        mode="incremental", watermark_column=watermark_column, watermark_type=watermark_type,
    )
    return _run(request, services)


def extract_with_custom_query(
    query: str,
    object_key: str,
    execution_date: str | None = None,
    source_name: str = "custom_query",
    *,
    services: Services | None = None,
) -> dict[str, Any]:
    """Extract the result of ``query``, run in a read-only transaction."""
    request = LoadRequest(
        source_name=source_name, object_key=object_key, execution_date=execution_date_text(execution_date),
        mode="full", query=query,
    )
    return _run(request, services)


def default_object_key(name: str, execution_date: str, schema: str = "public") -> str:
    """``postgres/<table>/<date>/<table>.parquet``; a table outside ``public`` is
    ``<schema>.<table>`` in the folder, so same-named tables of two schemas never share a key."""
    folder = name if schema == "public" else f"{schema}.{name}"
    return f"postgres/{folder}/{execution_date}/{name}.parquet"


def _table_request(
    table_name: str, schema: str, object_key: str | None, execution_date: str | None, **mode: Any
) -> LoadRequest:
    ds = execution_date_text(execution_date)
    return LoadRequest(
        source_name=f"{schema}.{table_name}",
        object_key=object_key or default_object_key(table_name, ds, schema),
        execution_date=ds,
        schema=schema,
        table=table_name,
        **mode,
    )


def _run(request: LoadRequest, services: Services | None) -> dict[str, Any]:
    services = services or Services.from_env()
    services.bootstrap()
    return run_load(request, services).as_guide_dict()

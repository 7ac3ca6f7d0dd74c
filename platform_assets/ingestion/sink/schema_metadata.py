"""The JSON document logged to ``data_platform.schema_history`` for each run.

Shape (the guide's ``detect_postgres_schema`` result)::

    {"format": "postgres", "table_name": "orders", "schema": "public",
     "columns": [{"name": ..., "position": 1, "source_type": "numeric(12,2)",
                  "arrow_type": "decimal128(12, 2)", "nullable": true,
                  "precision": 12, "scale": 2}, ...]}
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from platform_assets.ingestion.postgres.type_mapping import ColumnMapping


def column_entries(mappings: list[ColumnMapping]) -> list[dict[str, Any]]:
    entries = []
    for m in mappings:
        c = m.column
        entry: dict[str, Any] = {
            "name": c.name,
            "position": c.position,
            "source_type": c.declared_type,
            "arrow_type": str(m.arrow_type),
            "nullable": c.nullable,
        }
        if c.precision is not None:
            entry.update(precision=c.precision, scale=c.scale)
        if m.lossless_text:
            entry["kept_as_text"] = True
        entries.append(entry)
    return entries


def postgres_schema_metadata(
    mappings: list[ColumnMapping], schema: str | None, table: str | None, query: str | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"format": "postgres"}
    if query is not None:
        metadata["query"] = query
    else:
        metadata.update(table_name=table, schema=schema)
    metadata["columns"] = column_entries(mappings)
    return metadata


def file_column_entries(schema: pa.Schema, pinned: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Column entries of a file's Parquet schema (``source_type`` says pinned or inferred)."""
    return [
        {
            "name": f.name,
            "position": i,
            "source_type": "pinned" if f.name in pinned else "inferred",
            "arrow_type": str(f.type),
            "nullable": f.nullable,
        }
        for i, f in enumerate(schema, start=1)
    ]


def file_schema_metadata(converted: Any) -> dict[str, Any]:
    """The guide's ``detect_csv_schema`` shape: format, columns, row_count."""
    return {
        "format": converted.file_format,
        "columns": file_column_entries(converted.schema, converted.pinned),
        "row_count": converted.parquet.row_count,
    }

"""The user guide's schema detection API (``ingestion.schema_detector``).

``detect_csv_schema(path)`` / ``detect_json_schema(path)`` return
``{"format": ..., "columns": [...], "row_count": N}``; ``detect_postgres_schema(table,
schema)`` returns ``{"format": "postgres", "table_name": ..., "schema": ...,
"columns": [...]}``. Each column has ``name``, ``position``, ``source_type``,
``arrow_type``, ``nullable`` (and ``precision``/``scale`` for Postgres numerics).
The file functions read the whole file with the same rules as ingestion, so the
types they report are the types a load would write.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from platform_assets.ingestion.errors import IngestionError, SchemaDetectionError
from platform_assets.ingestion.files.convert import convert_csv, convert_json
from platform_assets.ingestion.files.csv_reader import CsvOptions
from platform_assets.ingestion.partitions.files import default_delimiter
from platform_assets.ingestion.postgres import catalog as pg_catalog
from platform_assets.ingestion.postgres.session import read_only_snapshot
from platform_assets.ingestion.postgres.type_mapping import map_column
from platform_assets.ingestion.sink.schema_metadata import (
    file_schema_metadata,
    postgres_schema_metadata,
)
from platform_resources.config import PostgresSettings


def detect_csv_schema(file_path: str | Path, options: CsvOptions | None = None) -> dict[str, Any]:
    path = _readable(Path(file_path), "CSV")
    with tempfile.TemporaryDirectory(prefix="detect-") as tmp:
        converted = convert_csv(
            path, Path(tmp) / "schema.parquet", options or CsvOptions(delimiter=default_delimiter(path.name))
        )
    return file_schema_metadata(converted)


def detect_json_schema(file_path: str | Path) -> dict[str, Any]:
    path = _readable(Path(file_path), "JSON")
    with tempfile.TemporaryDirectory(prefix="detect-") as tmp:
        converted = convert_json(path, Path(tmp) / "schema.parquet")
    return file_schema_metadata(converted)


def detect_postgres_schema(
    table_name: str, schema: str = "public", *, settings: PostgresSettings | None = None
) -> dict[str, Any]:
    settings = settings or PostgresSettings.from_env()
    source_name = f"{schema}.{table_name}"
    try:
        with read_only_snapshot(settings, source_name) as (cur, _):
            columns = pg_catalog.describe_table(cur, schema, table_name)
    except SchemaDetectionError:
        raise
    except IngestionError as e:
        raise SchemaDetectionError(f"Failed to read the schema of {source_name}: {e}") from e
    return postgres_schema_metadata([map_column(c) for c in columns], schema, table_name, None)


def _readable(path: Path, kind: str) -> Path:
    if not path.exists():
        raise SchemaDetectionError(f"Failed to read {kind} {path}: the file does not exist")
    if path.is_dir():
        raise SchemaDetectionError(f"Failed to read {kind} {path}: it is a directory")
    try:
        with path.open("rb"):
            pass
    except OSError as e:
        raise SchemaDetectionError(f"Failed to read {kind} {path}: {e.strerror}") from e
    return path

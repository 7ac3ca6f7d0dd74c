"""What a PostgreSQL extract decides and counts inside its snapshot.

The watermark column and the row's key (from the catalog and the request), the range
read (see ``partitions.postgres`` and ``load_planning``), the rows of that range
counted in the same snapshot (the reconciliation check), the NULL-watermark rows no
load captured, and the key of a row whose field is too large to load.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from psycopg2 import sql

from platform_assets.ingestion.errors import SchemaDetectionError, WatermarkError
from platform_assets.ingestion.postgres import catalog as pg_catalog
from platform_assets.ingestion.postgres import query_builder
from platform_assets.ingestion.postgres.copy_lines import MAX_FIELD_BYTES, FieldTooLarge
from platform_assets.ingestion.postgres.load_planning import (
    WatermarkColumn,
    incremental_range,
    window_range,
)
from platform_assets.ingestion.postgres.null_watermarks import (
    NullWatermarks,
    uncaptured_null_rows,
)
from platform_assets.ingestion.postgres.query_builder import ExtractRange
from platform_assets.ingestion.postgres.watermark_values import (
    Window,
    check_column_type,
    parse_value,
)
from platform_assets.ingestion.tracking.watermark_store import StoredWatermark


def watermark_column(request: Any, columns: list[Any]) -> WatermarkColumn | None:
    if not request.watermark_column:
        return None
    by_name = {c.name: c for c in columns}
    column = by_name.get(request.watermark_column)
    if column is None:
        raise WatermarkError(
            f"{request.source_name}: watermark column {request.watermark_column!r} does not exist; "
            f"columns are {sorted(by_name)}"
        )
    check_column_type(
        request.source_name, column.name, column.type_name, request.watermark_type or "timestamp"
    )
    return WatermarkColumn(column.name, column.type_name, request.watermark_type or "timestamp", column.nullable)


def key_columns(cur: Any, request: Any, names: list[str], kind: str | None) -> list[str]:
    """The row's key: the table's primary key, else the registry's ``key_columns``, else none."""
    primary = (
        pg_catalog.primary_key(cur, request.schema, request.table)
        if request.query is None and kind in pg_catalog.ROW_VERSIONED_KINDS else []
    )
    if not request.key_columns:
        return primary
    if primary and list(request.key_columns) != primary:
        raise SchemaDetectionError(
            f"{request.source_name}: key_columns {list(request.key_columns)} are set, but the table's primary "
            f"key is {primary}, which is the row's key: remove key_columns from the registry (it is for views "
            "and tables without a primary key)"
        )
    missing = [c for c in request.key_columns if c not in names]
    if missing:
        raise SchemaDetectionError(
            f"{request.source_name}: key_columns {missing} are not columns of the source; "
            f"its columns are {names}: fix key_columns in the registry"
        )
    return list(request.key_columns)


def read_range(
    request: Any, column: WatermarkColumn | None, stored: StoredWatermark | None, row_versioned: bool
) -> ExtractRange | None:
    """What the run reads (see ``partitions.postgres`` and ``load_planning``)."""
    if request.mode == "replay":
        return request.replay_range
    if column is None:
        return None
    base = ExtractRange(column=column.name, cast_type=column.pg_type)
    if request.mode == "incremental":
        return incremental_range(request.source_name, column, stored, row_versioned)
    if request.mode == "window":
        window = window_range(column, request.window or Window(None, None))
        return replace(window, include_nulls=request.include_nulls)
    if request.mode == "range":
        if stored is not None and stored.column != column.name:
            raise WatermarkError(
                f"{request.source_name}: the stored watermark is on column {stored.column!r} but the source "
                f"now uses {column.name!r}; its value cannot bound the new column's range. DELETE FROM "
                f"data_platform.watermarks WHERE source_name = '{request.source_name}' to extract again from "
                "the start (rows other partitions hold are loaded again), or set it to a value of the new column"
            )
        if request.lower is not None:
            parse_value(request.lower, column.pg_type)  # fail early on a bad manual UPDATE
        return replace(base, lower=request.lower, include_nulls=request.include_nulls)
    return base


def null_watermarks(
    cur: Any,
    request: Any,
    column: WatermarkColumn | None,
    columns: list[Any],
    key: list[str],
    extract_range: ExtractRange | None,
    capture_snapshot: str | None,
    row_versioned: bool,
) -> NullWatermarks | None:
    """NULL-watermark rows no load captured (None: the column cannot hold NULL, or not a table)."""
    if column is None or not column.nullable or request.table is None:
        return None
    if extract_range is not None and (extract_range.include_nulls or extract_range.is_full):
        return NullWatermarks()  # this run reads them all
    return uncaptured_null_rows(
        cur, request.schema, request.table, column.name, key, [c.name for c in columns],
        capture_snapshot, row_versioned,
    )


def count(cur: Any, request: Any, extract_range: ExtractRange | None) -> int:
    """The rows of the range read, counted in the extract's own snapshot."""
    if request.query is not None:
        statement = sql.SQL("SELECT count(*) FROM (\n{}\n) AS custom_query").format(
            sql.SQL(query_builder.custom_query_text(request.query, request.source_name))
        )
    else:
        statement = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
            query_builder.relation(request.schema, request.table),
            query_builder.range_condition(extract_range or ExtractRange()),
        )
    cur.execute(statement)
    return cur.fetchone()[0]


def large_field_key(
    cur: Any, request: Any, error: FieldTooLarge, key: list[str], columns: list[Any]
) -> dict[str, Any] | None:
    """The key of the row holding the oversized field: from the fields read before it, else queried."""
    known = error.key or {}
    if key and all(k in known for k in key):
        return {k: known[k] for k in key}
    if not key:
        first = next(iter(known), None)
        return None if first is None else {first: known[first]}
    if request.query is not None:
        return None
    types = {c.name: c.type_name for c in columns}
    column = sql.Identifier(error.column)
    size = (
        sql.SQL("octet_length({})").format(column)
        if types.get(error.column) == "bytea"
        else sql.SQL("octet_length({}::text)").format(column)
    )
    cur.execute(
        sql.SQL("SELECT {} FROM {} WHERE {} > {} LIMIT 1").format(
            sql.SQL(", ").join(sql.Identifier(k) for k in key),
            query_builder.relation(request.schema, request.table), size, sql.Literal(MAX_FIELD_BYTES),
        )
    )
    row = cur.fetchone()
    return dict(zip(key, row)) if row else None

"""Counts the source rows in the range a run read, to reconcile with the rows it loaded."""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

from platform_assets.ingestion.query_builder import (
    ExtractRange,
    custom_query_text,
    range_condition,
    relation,
)
from platform_assets.ingestion.source_session import read_only_snapshot
from platform_resources.config import PostgresSettings


def count_source_rows(
    settings: PostgresSettings,
    source_name: str,
    *,
    schema: str | None = None,
    table: str | None = None,
    query: str | None = None,
    extract_range: dict[str, Any] | None = None,
) -> int:
    """Rows of the table (in ``extract_range`` when given) or of the custom query, now."""
    if query is not None:
        statement: sql.Composable = sql.SQL("SELECT count(*) FROM (\n{}\n) AS custom_query").format(
            sql.SQL(custom_query_text(query, source_name))
        )
    else:
        condition = range_condition(ExtractRange.from_json(extract_range) if extract_range else ExtractRange())
        statement = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(relation(schema, table), condition)
    with read_only_snapshot(settings, source_name) as (cur, _):
        cur.execute(statement)
        return cur.fetchone()[0]

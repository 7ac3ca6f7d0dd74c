"""Reads column types of tables, views and queries from the Postgres catalog."""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

from platform_assets.ingestion.errors import SchemaDetectionError
from platform_assets.ingestion.postgres.query_builder import custom_query_text, relation
from platform_assets.ingestion.postgres.type_mapping import (
    PgColumn,
    numeric_precision_scale,
)

_TYPES_SQL = """
SELECT t.oid,
       COALESCE(b.typname, t.typname)                   AS type_name,
       COALESCE(b.typcategory, t.typcategory)           AS type_category,
       e.typname                                        AS element_type_name,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod END   AS domain_typmod
FROM pg_type t
LEFT JOIN pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype
LEFT JOIN pg_type e ON e.oid = COALESCE(b.typelem, t.typelem)
                   AND COALESCE(b.typcategory, t.typcategory) = 'A'
WHERE t.oid = ANY(%s)
"""

_ATTRIBUTES_SQL = """
SELECT a.attrelid, a.attnum, a.attnotnull, a.atttypmod,
       format_type(a.atttypid, a.atttypmod) AS declared_type
FROM pg_attribute a
WHERE (a.attrelid, a.attnum) IN (SELECT * FROM unnest(%s::oid[], %s::int2[]))
"""

_RELATION_SQL = """
SELECT c.relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""

MAX_NUMERIC_PRECISION = 1000  # larger values mean 'unconstrained' in psycopg2's description

# Kinds whose rows carry xmin (tables, partitioned tables, materialized views).
ROW_VERSIONED_KINDS = frozenset({"r", "p", "m"})


def relation_kind(cur: Any, schema: str, table: str) -> str:
    """``pg_class.relkind`` of ``schema.table``; SchemaDetectionError if it doesn't exist."""
    cur.execute(_RELATION_SQL, (schema, table))
    row = cur.fetchone()
    if row is None:
        raise SchemaDetectionError(
            f"table {schema}.{table} does not exist or is not visible to user "
            f"{cur.connection.info.user!r}; check the name and the grants"
        )
    return row[0]


def describe_table(cur: Any, schema: str, table: str) -> list[PgColumn]:
    relation_kind(cur, schema, table)
    select = sql.SQL("SELECT * FROM {} LIMIT 0").format(relation(schema, table))
    return _describe(cur, select.as_string(cur), f"{schema}.{table}")


def describe_query(cur: Any, query: str, source_name: str) -> list[PgColumn]:
    """Columns of a custom query; all nullable (an outer join makes any column nullable)."""
    text = custom_query_text(query, source_name)
    return _describe(cur, f"SELECT * FROM (\n{text}\n) AS custom_query LIMIT 0", source_name, from_query=True)


def _describe(cur: Any, select: str, source_name: str, from_query: bool = False) -> list[PgColumn]:
    cur.execute("SAVEPOINT describe")
    try:
        cur.execute(select)
    except Exception as e:
        cur.execute("ROLLBACK TO SAVEPOINT describe")
        raise SchemaDetectionError(
            f"{source_name}: cannot read the column types: {str(e).strip()}"
        ) from e
    description = cur.description
    names = [c.name for c in description]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SchemaDetectionError(
            f"{source_name}: column names must be unique to be written to Parquet; "
            f"alias the duplicates {duplicates} in the query"
        )
    cur.execute(_TYPES_SQL, ([c.type_code for c in description],))
    types = {row[0]: row[1:] for row in cur.fetchall()}
    keys = [(c.table_oid, c.table_column) for c in description if c.table_oid]
    attributes: dict[tuple[int, int], tuple[bool, int, str]] = {}
    if keys:
        cur.execute(_ATTRIBUTES_SQL, ([k[0] for k in keys], [k[1] for k in keys]))
        attributes = {(r[0], r[1]): (r[2], r[3], r[4]) for r in cur.fetchall()}

    columns = []
    for position, c in enumerate(description, start=1):
        type_name, category, element, domain_typmod = types[c.type_code]
        not_null, typmod, declared = attributes.get(
            (c.table_oid, c.table_column), (False, -1, type_name)
        )
        if domain_typmod is not None and domain_typmod >= 0:
            typmod = domain_typmod
        precision_scale = numeric_precision_scale(typmod) if type_name == "numeric" else None
        if (
            precision_scale is None
            and type_name == "numeric"
            and c.precision is not None
            and c.precision <= MAX_NUMERIC_PRECISION
            and c.scale is not None
        ):
            # psycopg2 decodes the scale without its sign (PG15 allows negative scales,
            # stored as 11-bit two's complement).
            precision_scale = (c.precision, c.scale - 2048 if c.scale & 0x400 else c.scale)
        columns.append(
            PgColumn(
                name=c.name,
                type_name=type_name,
                declared_type=declared,
                position=position,
                nullable=from_query or not not_null,
                type_category=category,
                element_type_name=element,
                precision=precision_scale[0] if precision_scale else None,
                scale=precision_scale[1] if precision_scale else None,
            )
        )
    return columns


def relation_pages(cur: Any, schema: str, table: str) -> int:
    """Heap pages of a table now (its size divided by the block size)."""
    cur.execute(
        "SELECT pg_relation_size(c.oid) / current_setting('block_size')::int "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (schema, table),
    )
    row = cur.fetchone()
    return int(row[0]) if row else 0


_PRIMARY_KEY_SQL = """
SELECT a.attname
FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = to_regclass(format('%%I.%%I', %s, %s)) AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)
"""


def primary_key(cur: Any, schema: str, table: str) -> list[str]:
    """Columns of the table's primary key, in key order ([] for views and tables without one)."""
    cur.execute(_PRIMARY_KEY_SQL, (schema, table))
    return [row[0] for row in cur.fetchall()]

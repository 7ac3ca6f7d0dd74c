"""Schemas the runs recorded (``data_platform.schema_history``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def schema_hash(schema_metadata: dict[str, Any]) -> str:
    columns = [
        {k: c.get(k) for k in ("name", "source_type", "arrow_type", "nullable")}
        for c in schema_metadata.get("columns", [])
    ]
    return hashlib.sha256(json.dumps(columns, sort_keys=True).encode()).hexdigest()


def last_schema(conn: Any, source_name: str, family: str | None = None) -> list[dict[str, Any]] | None:
    """Columns of the last successful run of a source (of any file of ``family`` when given;
    else of the source loaded outside any family)."""
    with conn.cursor() as cur:
        if family is not None:
            cur.execute(
                "SELECT schema_metadata FROM data_platform.schema_history WHERE family = %s "
                "ORDER BY id DESC LIMIT 1",
                (family,),
            )
        else:
            cur.execute(
                "SELECT schema_metadata FROM data_platform.schema_history WHERE source_name = %s "
                "AND family IS NULL ORDER BY id DESC LIMIT 1",
                (source_name,),
            )
        row = cur.fetchone()
    return row[0].get("columns", []) if row else None


def family_text_columns(conn: Any, family: str) -> frozenset[str]:
    """Columns any file of ``family`` was loaded with as text (a column that became text
    stays text, even after files without it)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT c->>'name' FROM data_platform.schema_history h, "
            "jsonb_array_elements(h.schema_metadata::jsonb->'columns') c "
            "WHERE h.family = %s AND c->>'arrow_type' = 'string'",
            (family,),
        )
        return frozenset(row[0] for row in cur.fetchall())

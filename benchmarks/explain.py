"""EXPLAIN of the incremental extract's predicate: is the watermark index used?

The exact SELECT the next ``extract_table_incremental`` run will issue is rebuilt
from the stored watermark with the engine's own planning and query builder
(``incremental_range`` + ``query_builder.table_extract``): ``updated_at >
CAST('<watermark>' AS timestamptz)`` plus the catch-up clause for rows the previous
snapshot could not see. The plain ``SELECT * ... WHERE updated_at > '<wm>'`` is
explained too. Plain EXPLAIN (no ANALYZE): nothing is read, caches stay as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.config import PgTarget
from benchmarks.infra import connect


@dataclass
class IncrementalPlan:
    watermark: str | None
    catchup_floor: str | None
    last_snapshot: str | None
    exact_sql: str
    exact_plan: list[str]
    simple_sql: str
    simple_plan: list[str]

    @property
    def index_used(self) -> bool:
        return _uses_index(self.exact_plan)

    @property
    def simple_index_used(self) -> bool:
        return _uses_index(self.simple_plan)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "index_used": self.index_used, "simple_index_used": self.simple_index_used}


def _uses_index(plan: list[str]) -> bool:
    return any("Index Scan" in line or "Index Only Scan" in line for line in plan)


def incremental_plan(target: PgTarget, table: str, watermark_column: str) -> IncrementalPlan:
    from platform_assets.ingestion.postgres import catalog as pg_catalog
    from platform_assets.ingestion.postgres import query_builder
    from platform_assets.ingestion.postgres.load_planning import (
        WatermarkColumn,
        incremental_range,
    )
    from platform_assets.ingestion.postgres.type_mapping import map_column
    from platform_assets.ingestion.tracking import watermark_store

    source_name = f"public.{table}"
    conn = connect(target, autocommit=False)  # the catalog reads use savepoints
    try:
        stored = watermark_store.read_watermark(conn, source_name)
        with conn.cursor() as cur:
            columns = pg_catalog.describe_table(cur, "public", table)
            mappings = [map_column(c) for c in columns]
            column = next(c for c in columns if c.name == watermark_column)
            extract_range = incremental_range(
                source_name, WatermarkColumn(column.name, column.type_name, "timestamp"), stored, True
            )
            exact_sql = query_builder.table_extract("public", table, mappings, extract_range).as_string(cur)
            cur.execute("EXPLAIN " + exact_sql)
            exact_plan = [row[0] for row in cur.fetchall()]
            watermark = stored.value if stored else None
            simple_sql = f"SELECT * FROM public.{table} WHERE {watermark_column} > %s::timestamptz"
            cur.execute("EXPLAIN " + simple_sql, (watermark,))
            simple_plan = [row[0] for row in cur.fetchall()]
            simple_text = cur.mogrify(simple_sql, (watermark,)).decode()
    finally:
        conn.rollback()
        conn.close()
    return IncrementalPlan(
        watermark=watermark, catchup_floor=stored.catchup_floor if stored else None,
        last_snapshot=stored.last_snapshot if stored else None,
        exact_sql=exact_sql, exact_plan=exact_plan, simple_sql=simple_text, simple_plan=simple_plan,
    )

"""Counts the rows with a NULL watermark whose current values no load captured.

A NULL watermark falls in no day and is never past a watermark: only a load that
reads from the start (the first partition, the guide's first full extract) holds
such rows. Rows as they were when that load ran are captured; rows written with
NULL, set to NULL or changed while NULL since are not, and every other load counts
them, in its own snapshot, so that they are reported rather than lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg2
from psycopg2 import sql

from platform_assets.ingestion.postgres.query_builder import relation
from platform_assets.ingestion.postgres.snapshot import Snapshot

SAMPLE_ROWS = 5
MAX_SAMPLE_TEXT = 80


@dataclass(frozen=True)
class NullWatermarks:
    rows: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)

    def warning(self, source_name: str, column: str) -> str:
        return (
            f"{source_name}: {self.rows} row(s) have a NULL {column} and were written or changed since the "
            f"load that read the NULL-watermark rows (sample: {self.sample}); a NULL watermark falls in no "
            "day and is never past a watermark, so these values are not in bronze: give them a value, or "
            "load the first partition again (it merges them in)"
        )


def uncaptured_null_rows(
    cur: Any,
    schema: str,
    table: str,
    column: str,
    key_columns: list[str],
    all_columns: list[str],
    capture_snapshot: str | None,
    row_versioned: bool,
) -> NullWatermarks:
    """Rows with ``column`` NULL that the load with ``capture_snapshot`` could not see,
    and a sample of them (their key, ordered; all columns when there is no key).

    Without a capture (no load read from the start yet) or without row versions (a
    view), every NULL-watermark row counts.
    """
    condition: sql.Composable = sql.SQL("{} IS NULL").format(sql.Identifier(column))
    if capture_snapshot is not None and row_versioned:
        condition = sql.SQL("{} AND {}").format(condition, Snapshot.parse(capture_snapshot).invisible_row_condition())
    where = sql.SQL("FROM {} WHERE {}").format(relation(schema, table), condition)
    cur.execute(sql.SQL("SELECT count(*) {}").format(where))
    (rows,) = cur.fetchone()
    if not rows:
        return NullWatermarks()
    sample_columns = key_columns or all_columns
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in sample_columns)
    order = sql.SQL(" ORDER BY {}").format(columns) if key_columns else sql.SQL("")
    cur.execute("SAVEPOINT null_sample")
    try:
        cur.execute(sql.SQL("SELECT {} {}{} LIMIT {}").format(columns, where, order, sql.Literal(SAMPLE_ROWS)))
        sample = [dict(zip(sample_columns, (_printable(v) for v in row))) for row in cur.fetchall()]
    except psycopg2.DataError as e:  # keys that are not valid UTF-8 (a SQL_ASCII database)
        cur.execute("ROLLBACK TO SAVEPOINT null_sample")
        sample = [{"sample": f"not shown: {str(e).strip()}"}]
    return NullWatermarks(rows, sample)


def _printable(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, bool)):
        return value
    text = str(value)
    return text if len(text) <= MAX_SAMPLE_TEXT else text[: MAX_SAMPLE_TEXT - 3] + "..."

"""What an on-call engineer checks first (``make status``), from the tracking tables.

- the guide's daily summary, for today and the latest closed day;
- failed runs of the last 24 hours, with their errors;
- the guide's watermark state, per source;
- database sources of the registry whose latest closed day (yesterday in the
  registry's timezone) has no successful load. File families are not checked: a
  day without files has no partition.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

DAILY_SUMMARY_SQL = """
SELECT execution_date,
       COUNT(*) AS total_runs,
       SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END) AS successes,
       SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failures,
       SUM(row_count) AS total_rows
FROM data_platform.ingestion_metadata
{where}
GROUP BY execution_date
ORDER BY execution_date DESC
"""

FAILED_SQL = """
SELECT source_name, execution_date, partition_key, created_at, dagster_run_id, error_message
FROM data_platform.ingestion_metadata
WHERE status = 'failed' AND created_at > now() - interval '24 hours'
ORDER BY created_at DESC
"""

WATERMARKS_SQL = """
SELECT source_name, watermark_column, watermark_value, watermark_type, updated_at
FROM data_platform.watermarks
ORDER BY updated_at DESC
"""

LATEST_LOADED_SQL = """
SELECT source_name, max(partition_key), bool_or(partition_key = %s)
FROM data_platform.ingestion_metadata
WHERE status = 'success' AND partition_key IS NOT NULL AND source_name = ANY(%s)
GROUP BY source_name
"""

ERROR_CHARS = 300


def format_table(headers: list[str], rows: list[tuple]) -> str:
    cells = [headers] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _query(conn: Any, sql: str, params: Any = None) -> tuple[list[str], list[tuple]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return [d.name for d in cur.description], cur.fetchall()


def closed_day(timezone: str, now: dt.datetime | None = None) -> dt.date:
    """The latest day that is over in ``timezone``: yesterday there."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.astimezone(ZoneInfo(timezone)).date() - dt.timedelta(days=1)


def missing_closed_day(loaded: dict[str, tuple[str, bool]], sources: dict[str, str], day: dt.date,
                       start_date: dt.date) -> list[tuple[str, str]]:
    """(source, latest loaded partition) for each source without a successful load of ``day``.

    Args:
        loaded: source_name -> (its latest successfully loaded partition, whether ``day``
            was loaded successfully); a source never loaded is absent.
        sources: registry name -> source_name in the tracking tables.
    """
    if day < start_date:
        return []
    return [(name, loaded.get(source_name, ("never", False))[0])
            for name, source_name in sources.items()
            if not loaded.get(source_name, ("never", False))[1]]


def report(conn: Any, sources: dict[str, str], timezone: str, start_date: dt.date,
           now: dt.datetime | None = None) -> str:
    """The status text. ``sources``: registry name -> source_name of the database sources."""
    day = closed_day(timezone, now)
    today = day + dt.timedelta(days=1)
    parts = [f"== Daily summary: today ({today}) and the latest closed day ({day}), timezone {timezone}"]
    headers, rows = _query(conn, DAILY_SUMMARY_SQL.format(where="WHERE execution_date IN (%s, %s)"), (today, day))
    parts.append(format_table(headers, rows) if rows else "no runs for these days")

    headers, rows = _query(conn, FAILED_SQL)
    parts.append(f"\n== Failed runs, last 24 hours: {len(rows)}")
    for source_name, execution_date, partition, created_at, run_id, error in rows:
        message = " ".join((error or "").split())
        if len(message) > ERROR_CHARS:
            message = message[:ERROR_CHARS] + "..."
        where = f"partition {partition}" if partition else f"execution_date {execution_date}"
        parts.append(f"- {created_at:%Y-%m-%d %H:%M:%S%z} {source_name} {where}"
                     f"{f' run {run_id}' if run_id else ''}: {message or '(no error message)'}")

    headers, rows = _query(conn, WATERMARKS_SQL)
    parts.append("\n== Watermarks")
    parts.append(format_table(headers, rows) if rows else "no watermarks yet")

    _, rows = _query(conn, LATEST_LOADED_SQL, (day.isoformat(), list(sources.values())))
    missing = missing_closed_day({r[0]: (r[1], r[2]) for r in rows}, sources, day, start_date)
    parts.append(f"\n== Database sources without a successful load of {day}: {len(missing)} of {len(sources)}")
    parts.extend(f"- {name} (latest loaded partition: {latest})" for name, latest in missing)
    parts.append("(file families are not checked: a day without files has no partition)")
    return "\n".join(parts)

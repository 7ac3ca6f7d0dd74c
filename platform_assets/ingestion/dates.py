"""The execution date the guide's functions take: a date, an ISO string, or today."""

from __future__ import annotations

import datetime as dt

from platform_assets.ingestion.errors import IngestionError


def execution_date_text(value: str | dt.date | None) -> str:
    """``value`` as ``YYYY-MM-DD`` (None: today); IngestionError when it is not a date."""
    if value is None:
        return dt.date.today().isoformat()
    try:
        return dt.date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError as e:
        raise IngestionError(f"execution_date must be a date like '2024-01-01', got {value!r}") from e

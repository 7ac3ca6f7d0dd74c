"""Shared helpers of the adversarial tests (tests/adversarial)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from platform_assets.registry import PostgresSource, Registry
from tests.helpers import object_rows

START = dt.date(2024, 3, 1)
D1, D2, D3, D4, D5 = (str(START + dt.timedelta(days=n)) for n in range(5))


def registry(*sources: PostgresSource, timezone: str = "UTC", start: dt.date = START) -> Registry:
    return Registry(start_date=start, timezone=timezone, postgres=list(sources))


def rows(store_settings: Any, name: str, partition: str, *columns: str) -> list[tuple]:
    """Rows of one partition's object (``[]`` when there is none)."""
    return object_rows(store_settings, f"postgres/{name}/{partition}/{name}.parquet", *columns) or []


def column_union(store_settings: Any, name: str, partitions: list[str], column: str) -> list[Any]:
    """Every value of ``column`` held by the partitions' objects, with repetitions, sorted."""
    values: list[Any] = []
    for partition in partitions:
        values += [r[0] for r in rows(store_settings, name, partition, column)]
    return sorted(values, key=lambda v: (v is None, v))

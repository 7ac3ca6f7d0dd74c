"""Shared helpers of the second adversarial pass on file families (tests/attack2)."""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

from platform_assets.registry import FileFamily, Registry
from tests.helpers import sensor_tick

START = dt.date(2024, 3, 1)
DAY = "2024-03-01"


def family(directory: Any, **overrides: Any) -> FileFamily:
    return FileFamily(**{
        "name": "customer_files", "directory": str(directory), "glob": "customers_*.csv*", "format": "csv",
        "date_pattern": r"_(\d{8})", "date_format": "%Y%m%d", **overrides,
    })


def registry(*families: FileFamily, **overrides: Any) -> Registry:
    return Registry(**{"start_date": START, "files": list(families), **overrides})


def age(path: Any, seconds: float = 3600) -> None:
    """Make a file look written ``seconds`` ago (a manual run loads only files at rest)."""
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def ticks(reg: Registry, name: str, pg: Any, store_settings: Any, cursor: str | None = None,
          count: int = 2, instance: Any = None) -> tuple[list, str | None]:
    requests: list = []
    for _ in range(count):
        new, cursor = sensor_tick(reg, name, pg, store_settings, cursor, instance)
        requests += new
    return requests, cursor

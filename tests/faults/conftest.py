"""Fixtures of the fault-injection suite (the shared ones come from tests/conftest.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.faults.support import ORDERS_DDL, CapturedLogs, query


@pytest.fixture
def orders(pg_conn: Any) -> Any:
    query(pg_conn, ORDERS_DDL)
    return pg_conn


@pytest.fixture
def debug_logs() -> Iterator[CapturedLogs]:
    """Every log record at DEBUG (botocore included) while the test runs."""
    handler = CapturedLogs()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

"""Pure rules of file families: which globs may share files."""

from __future__ import annotations

import pytest

from platform_assets.ingestion.family_spec import globs_may_overlap


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("customers_*.csv", "orders_*.csv", False),
        ("*.csv", "customers_*.csv*", True),
        ("a.csv", "*.csv", True),
        ("a.csv", "b.csv", False),
        ("sub/*.csv", "**/*.csv", True),
        ("x_[0-9].csv", "x_*.json", False),
        ("**/*.csv", "*.json", False),
        ("*", "anything.bin", True),
    ],
)
def test_globs_may_overlap(first: str, second: str, overlap: bool) -> None:
    assert globs_may_overlap(first, second) is overlap
    assert globs_may_overlap(second, first) is overlap

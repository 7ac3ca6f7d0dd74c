"""make status: which day is closed, which sources miss it (pure parts)."""

from __future__ import annotations

import datetime as dt

from platform_assets.status import closed_day, missing_closed_day


def test_closed_day_is_yesterday_in_the_registry_timezone():
    now = dt.datetime(2024, 3, 2, 23, 30, tzinfo=dt.timezone.utc)
    assert closed_day("UTC", now) == dt.date(2024, 3, 1)
    assert closed_day("Europe/Berlin", now) == dt.date(2024, 3, 2)  # 00:30 on 03-03 there


def test_missing_closed_day():
    sources = {"orders": "demo.orders", "events": "demo.events", "q": "q"}
    loaded = {"demo.orders": ("2024-03-02", True), "demo.events": ("2024-03-02", False)}
    day = dt.date(2024, 3, 1)
    assert missing_closed_day(loaded, sources, day, dt.date(2024, 1, 1)) == [
        ("events", "2024-03-02"), ("q", "never")
    ]
    assert missing_closed_day(loaded, sources, day, dt.date(2024, 3, 2)) == []  # before start_date

"""The automation planner and freshness at chosen times (``platform_assets.automation.plan``)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from platform_assets.automation.plan import (
    Attempt,
    day_end,
    day_ranges,
    due_at,
    freshness,
    loaded_days,
    next_attempt,
    plan_automation,
)

PARIS = "Europe/Paris"
START = dt.date(2024, 1, 1)
AT = dt.time(0, 15)


def local(text: str, tz: str = PARIS) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def days(first: str, last: str) -> list[dt.date]:
    a, b = d(first), d(last)
    return [a + dt.timedelta(days=i) for i in range((b - a).days + 1)]


def plan(now: dt.datetime, loaded=(), replayable=True, horizon=7, tz=PARIS, at=AT, start=START):
    return plan_automation(
        now=now, timezone=tz, start_date=start, run_at=at, horizon_days=horizon,
        replayable=replayable, loaded=set(loaded),
    )


@pytest.mark.parametrize("replayable", [True, False])
def test_nothing_before_the_run_time_then_the_day_that_just_ended(replayable):
    loaded = days("2026-11-20", "2026-11-29")
    # 00:14 Paris on Dec 1st is 23:14 UTC on Nov 30th: Nov 30 is over in Paris but not due yet.
    assert plan(local("2026-12-01 00:14"), loaded, replayable).request == []
    assert plan(local("2026-12-01 00:15"), loaded, replayable).request == [d("2026-11-30")]
    # never today's partition, even late in the day
    assert plan(local("2026-11-30 23:59"), loaded, replayable).request == []


def test_the_time_of_day_is_read_in_the_registry_timezone():
    loaded = days("2026-11-20", "2026-11-29")
    # 23:30 UTC on Nov 30 is 00:30 on Dec 1 in Paris: due; in UTC it is still Nov 30.
    now = dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.timezone.utc)
    assert plan(now, loaded, tz=PARIS).request == [d("2026-11-30")]
    assert plan(now, loaded, tz="UTC").request == []


def test_a_source_with_its_own_time():
    loaded = days("2026-11-20", "2026-11-29")
    at = dt.time(6, 20)
    assert plan(local("2026-12-01 06:19"), loaded, at=at).request == []
    assert plan(local("2026-12-01 06:20"), loaded, at=at).request == [d("2026-11-30")]


def test_a_gap_is_caught_up_in_day_order_for_replayable_sources():
    loaded = days("2026-11-20", "2026-11-26")  # the daemon was down from Nov 27
    result = plan(local("2026-12-01 10:00"), loaded)
    assert result.request == days("2026-11-27", "2026-11-30")
    assert result.missed == [] and result.beyond_horizon == [(START, d("2026-11-19"))]


def test_snapshot_sources_get_one_run_for_the_latest_day_and_report_the_rest():
    loaded = days("2026-11-20", "2026-11-26")
    result = plan(local("2026-12-01 10:00"), loaded, replayable=False)
    assert result.request == [d("2026-11-30")]
    assert result.missed == days("2026-11-27", "2026-11-29")
    assert "2026-11-27" in result.describe() and "cannot be rebuilt" in result.describe()


def test_the_horizon_bounds_catch_up_and_older_days_are_reported():
    loaded = days("2026-11-01", "2026-11-10")
    result = plan(local("2026-12-01 10:00"), loaded, horizon=7)
    assert result.request == days("2026-11-24", "2026-11-30")
    assert result.beyond_horizon == [(START, d("2026-10-31")), (d("2026-11-11"), d("2026-11-23"))]
    assert "2026-11-11..2026-11-23 (13 days)" in result.describe()


def test_loaded_days_are_not_requested_again():
    loaded = days("2024-01-01", "2026-11-30")
    result = plan(local("2026-12-01 10:00"), loaded)
    assert result.request == [] and result.missed == [] and result.beyond_horizon == []
    assert "2026-11-30 is loaded" in result.describe()


def test_a_load_that_started_before_the_day_ended_does_not_count():
    end = day_end(d("2026-11-30"), PARIS)
    assert end == local("2026-12-01 00:00")
    during = {d("2026-11-30"): local("2026-11-30 14:00")}  # what `make demo` does
    after = {d("2026-11-30"): end}
    assert loaded_days(during, PARIS) == set()
    assert loaded_days(after, PARIS) == {d("2026-11-30")}
    assert loaded_days(during, PARIS, after_day_end=False) == {d("2026-11-30")}  # files
    loaded = set(days("2026-11-20", "2026-11-29")) | loaded_days(during, PARIS)
    assert plan(local("2026-12-01 00:15"), loaded).request == [d("2026-11-30")]


def test_nothing_before_the_first_partition():
    start = d("2026-11-30")
    assert plan(local("2026-11-30 12:00"), start=start).request == []
    assert plan(local("2026-12-01 00:15"), start=start).request == [start]
    # a long horizon does not reach before start_date
    assert plan(local("2026-12-03 00:15"), start=start, horizon=30).request == days("2026-11-30", "2026-12-02")


def test_daylight_saving_days():
    # Paris leaves DST on 2026-10-25 (25 hours) and enters it on 2026-03-29 (23 hours).
    assert day_end(d("2026-10-25"), PARIS) - day_end(d("2026-10-24"), PARIS) == dt.timedelta(hours=25)
    assert day_end(d("2026-03-29"), PARIS) - day_end(d("2026-03-28"), PARIS) == dt.timedelta(hours=23)
    loaded = days("2026-10-18", "2026-10-24")
    assert plan(local("2026-10-26 00:14"), loaded).request == []
    assert plan(local("2026-10-26 00:15"), loaded).request == [d("2026-10-25")]
    # a run time inside the spring-forward gap (02:30 does not exist on 2026-03-29)
    at = dt.time(2, 30)
    assert due_at(d("2026-03-28"), PARIS, at) == dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.timezone.utc)
    loaded = days("2026-03-20", "2026-03-27")
    assert plan(local("2026-03-29 01:59"), loaded, at=at).request == []
    assert plan(local("2026-03-29 03:30"), loaded, at=at).request == [d("2026-03-28")]


def test_day_ranges():
    assert day_ranges([d("2026-01-03"), d("2026-01-01"), d("2026-01-02"), d("2026-01-05")]) == [
        (d("2026-01-01"), d("2026-01-03")), (d("2026-01-05"), d("2026-01-05"))]


class TestFreshness:
    def status(self, now, loaded, replayable=True, hours=6, horizon=7):
        return freshness(
            now=now, timezone=PARIS, start_date=START, deadline_hours=hours, horizon_days=horizon,
            replayable=replayable, loaded=set(loaded),
        )

    def test_a_backfill_of_old_days_does_not_hide_a_missing_yesterday(self):
        loaded = days("2026-11-20", "2026-11-29")  # ... and Nov 30 missing
        status = self.status(local("2026-12-01 06:00"), loaded)
        assert not status.passed and status.checked_day == d("2026-11-30")
        assert "2026-11-30 has not loaded" in status.description

    def test_before_the_deadline_yesterday_is_pending_and_the_day_before_is_checked(self):
        loaded = days("2026-11-20", "2026-11-29")
        status = self.status(local("2026-12-01 05:59"), loaded)
        assert status.passed and status.checked_day == d("2026-11-29")
        assert status.pending_day == d("2026-11-30")

    def test_a_load_started_during_the_day_is_not_fresh(self):
        loads = {day: day_end(day, PARIS) for day in days("2026-11-20", "2026-11-29")}
        loads[d("2026-11-30")] = local("2026-11-30 14:00")
        status = self.status(local("2026-12-01 07:00"), loaded_days(loads, PARIS))
        assert not status.passed and status.checked_day == d("2026-11-30")

    def test_an_older_gap_fails_a_replayable_source_and_is_only_reported_for_a_snapshot(self):
        loaded = set(days("2026-11-20", "2026-11-30")) - {d("2026-11-27")}
        replayable = self.status(local("2026-12-01 07:00"), loaded)
        assert not replayable.passed and replayable.missing == [d("2026-11-27")]
        assert replayable.description == (
            "partition 2026-11-30 loaded; earlier days past their deadline have not: 2026-11-27")
        snapshot = self.status(local("2026-12-01 07:00"), loaded, replayable=False)
        assert snapshot.passed and snapshot.missing == [d("2026-11-27")]
        assert "2026-11-27" in snapshot.description

    def test_a_deadline_of_more_than_a_day(self):
        loaded = days("2026-11-20", "2026-11-28")
        assert self.status(local("2026-12-01 05:59"), loaded, hours=30).checked_day == d("2026-11-28")
        status = self.status(local("2026-12-01 06:00"), loaded, hours=30)
        assert status.checked_day == d("2026-11-29") and not status.passed


@pytest.mark.parametrize(
    ("attempts", "minutes_after_failure", "expected"),
    [
        ([], 0, 0),
        ([Attempt("active")], 0, None),
        ([Attempt("succeeded")], 0, None),
        ([Attempt("failed")], 29, None),
        ([Attempt("failed")], 30, 1),
        ([Attempt("failed"), Attempt("failed")], 59, None),
        ([Attempt("failed"), Attempt("failed")], 60, 2),
        ([Attempt("failed")] * 10, 359, None),
        ([Attempt("failed")] * 10, 360, 10),  # at most 6 h apart
    ],
)
def test_failed_runs_are_requested_again_with_a_back_off(attempts, minutes_after_failure, expected):
    ended = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.timezone.utc)
    history = [Attempt(a.state, ended if a.state == "failed" else None) for a in attempts]
    assert next_attempt(history, ended + dt.timedelta(minutes=minutes_after_failure)) == expected

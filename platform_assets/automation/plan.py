"""Which daily partitions are due, missed or stale at a given moment: pure rules.

Nothing here reads a clock, a database or Dagster: the caller passes ``now``, the
source's timezone and settings, and the loads the tracking table recorded (the start
time of the last successful load of each partition). The Dagster wiring
(``platform_assets.defs.automation``) turns the answers into run requests and check
results; the unit tests call these functions at chosen times.

- A day ``D`` **ends** at midnight starting ``D + 1`` in the timezone; it is **due** at
  ``run_at`` (a time of day) on the day after, and **overdue** (for freshness)
  ``deadline_hours`` after it ended.
- A database partition counts as **loaded** only when its last successful load
  *started* after the day ended: a load started during the day (``make demo`` loads
  today's partition) saw part of the day only. A file family's partition is loaded
  once any of its files loaded (a file does not grow after its day).
- **Catch-up** within ``horizon_days`` closed days: a ``replayable`` source (timestamp
  watermark: a day is a window of the source that can be read again) gets every
  missed day, oldest first; any other source (snapshots of the present, integer
  ranges past the watermark) gets one run, for the latest due day, and its other
  missed days are reported, never filled with copies of today's data. Days older
  than the horizon are reported, never requested.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

DayRange = tuple[dt.date, dt.date]


def day_end(day: dt.date, timezone: str) -> dt.datetime:
    """The instant ``day`` ends: midnight starting the next day, in ``timezone`` (aware, UTC)."""
    local = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=ZoneInfo(timezone))
    return local.astimezone(dt.timezone.utc)


def due_at(day: dt.date, timezone: str, run_at: dt.time) -> dt.datetime:
    """When ``day``'s partition is requested: ``run_at`` on the next day, local time.

    A local time that does not exist (a DST gap) is read as the instant it would be
    with the offset before the change, i.e. a little later on the wall clock.
    """
    local = dt.datetime.combine(day + dt.timedelta(days=1), run_at, tzinfo=ZoneInfo(timezone))
    return max(local.astimezone(dt.timezone.utc), day_end(day, timezone))


def deadline(day: dt.date, timezone: str, deadline_hours: float) -> dt.datetime:
    """When ``day``'s partition must have loaded (freshness): ``deadline_hours`` after the day ended."""
    return day_end(day, timezone) + dt.timedelta(hours=deadline_hours)


def local_date(instant: dt.datetime, timezone: str) -> dt.date:
    return instant.astimezone(ZoneInfo(timezone)).date()


def latest_day(now: dt.datetime, timezone: str, when: object, max_back: int = 3) -> dt.date | None:
    """The latest day ``D`` with ``when(D) <= now`` (``when`` is ``due_at``-like), or None.

    ``max_back``: how many days before today to look (``when(D)`` is at most that many days after ``D``).
    """
    today = local_date(now, timezone)
    for back in range(0, max_back + 1):
        day = today - dt.timedelta(days=back)
        if when(day) <= now:  # type: ignore[operator]
            return day
    return None


def loaded_days(
    last_loads: Mapping[dt.date, dt.datetime], timezone: str, *, after_day_end: bool = True
) -> set[dt.date]:
    """The days whose last successful load counts (see the module docstring).

    Args:
        last_loads: each partition's last successful load's start time (aware).
        after_day_end: database sources: a load started before its day ended does not count.
    """
    if not after_day_end:
        return set(last_loads)
    return {day for day, started in last_loads.items() if started >= day_end(day, timezone)}


def day_ranges(days: Iterable[dt.date]) -> list[DayRange]:
    """Consecutive days as ``(first, last)`` ranges, oldest first."""
    ranges: list[list[dt.date]] = []
    for day in sorted(set(days)):
        if ranges and day - ranges[-1][1] == dt.timedelta(days=1):
            ranges[-1][1] = day
        else:
            ranges.append([day, day])
    return [(first, last) for first, last in ranges]


def describe_ranges(ranges: list[DayRange]) -> str:
    parts = [
        first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()} ({(last - first).days + 1} days)"
        for first, last in ranges
    ]
    return ", ".join(parts)


@dataclass(frozen=True)
class AutomationPlan:
    """What one evaluation decides for one source."""

    request: list[dt.date] = field(default_factory=list)
    """Days to load now, oldest first."""
    latest_due: dt.date | None = None
    """The newest day due at ``now`` (None: none yet, e.g. before ``start_date``)."""
    missed: list[dt.date] = field(default_factory=list)
    """Days within the horizon that are not loaded and will not be requested (not replayable)."""
    beyond_horizon: list[DayRange] = field(default_factory=list)
    """Days not loaded, older than the horizon: reported, never requested."""
    next_due: dt.datetime | None = None
    """When the next day becomes due (for the tick's message)."""

    def describe(self, requested: list[dt.date] | None = None, waiting: list[dt.date] = ()) -> str:  # type: ignore[assignment]
        """What the evaluation did, for the tick's log.

        Args:
            requested: the days actually requested (default: ``request``).
            waiting: days of ``request`` held back (a run in progress, a retry not due yet).
        """
        requested = self.request if requested is None else requested
        lines = []
        if requested:
            lines.append("requested: " + ", ".join(d.isoformat() for d in requested))
        if waiting:
            lines.append(
                "not requested now (a run is in progress, or the last one failed and its retry is not due "
                "yet): " + ", ".join(d.isoformat() for d in waiting)
            )
        if self.missed:
            lines.append(
                "missed, not filled (this source's partitions take the present, so a past day cannot be "
                "rebuilt): " + ", ".join(d.isoformat() for d in self.missed)
            )
        if self.beyond_horizon:
            lines.append(
                "not loaded and beyond the catch-up horizon (materialize them by hand, e.g. a backfill): "
                + describe_ranges(self.beyond_horizon)
            )
        if not requested and not waiting:
            lines.append(
                f"nothing to request: {self.latest_due.isoformat()} is loaded" if self.latest_due
                else "nothing to request: no day is due yet"
            )
        if self.next_due is not None:
            lines.append(f"next day due at {self.next_due.isoformat()}")
        return "; ".join(lines)


def plan_automation(
    *,
    now: dt.datetime,
    timezone: str,
    start_date: dt.date,
    run_at: dt.time,
    horizon_days: int,
    replayable: bool,
    loaded: set[dt.date],
) -> AutomationPlan:
    """The days one source's automation requests at ``now``, and the days it reports.

    Args:
        now: the evaluation time (aware).
        timezone: the registry's timezone (partition days).
        start_date: the first partition.
        run_at: local time of day at which the day that just ended is requested.
        horizon_days: how many due days, the latest included, are caught up or reported as missed.
        replayable: a past day's content can be read again (timestamp-incremental sources).
        loaded: the days whose last load counts (``loaded_days``).

    Returns:
        The plan: days to request (oldest first), missed days, days beyond the horizon.
    """
    latest = latest_day(now, timezone, lambda d: due_at(d, timezone, run_at))
    following = (latest + dt.timedelta(days=1)) if latest else local_date(now, timezone)
    next_due = due_at(max(following, start_date), timezone, run_at).astimezone(ZoneInfo(timezone))
    if latest is None or latest < start_date:
        return AutomationPlan(next_due=next_due)
    first_in_horizon = max(start_date, latest - dt.timedelta(days=horizon_days - 1))
    window = [first_in_horizon + dt.timedelta(days=i) for i in range((latest - first_in_horizon).days + 1)]
    unloaded = [d for d in window if d not in loaded]
    if replayable:
        request, missed = unloaded, []
    else:
        request = [latest] if latest in unloaded else []
        missed = [d for d in unloaded if d != latest]
    older = _unloaded_before(first_in_horizon, start_date, loaded)
    return AutomationPlan(
        request=request, latest_due=latest, missed=missed, beyond_horizon=older, next_due=next_due
    )


def _unloaded_before(first_in_horizon: dt.date, start_date: dt.date, loaded: set[dt.date]) -> list[DayRange]:
    """Unloaded days from ``start_date`` up to the horizon, as ranges (computed from the
    loaded days, so years of history cost what the loads cost)."""
    last = first_in_horizon - dt.timedelta(days=1)
    if last < start_date:
        return []
    ranges: list[DayRange] = []
    cursor = start_date
    for day in sorted(d for d in loaded if start_date <= d <= last):
        if day > cursor:
            ranges.append((cursor, day - dt.timedelta(days=1)))
        cursor = day + dt.timedelta(days=1)
    if cursor <= last:
        ranges.append((cursor, last))
    return ranges


@dataclass(frozen=True)
class FreshnessStatus:
    """A source's freshness at one moment."""

    passed: bool
    checked_day: dt.date | None
    """The latest day whose deadline has passed (None: none yet)."""
    deadline: dt.datetime | None
    pending_day: dt.date | None = None
    """A closed day whose deadline has not passed yet and is not loaded."""
    missing: list[dt.date] = field(default_factory=list)
    """Days within the horizon, deadline passed, not loaded (``checked_day`` included when it is)."""
    beyond_horizon: list[DayRange] = field(default_factory=list)

    @property
    def description(self) -> str:
        if self.checked_day is None:
            return "no day has reached its freshness deadline yet"
        if not self.passed and self.checked_day in self.missing:
            text = (
                f"partition {self.checked_day.isoformat()} has not loaded; it was due by "
                f"{self.deadline.isoformat() if self.deadline else '?'}"
            )
            older = [d for d in self.missing if d != self.checked_day]
            if older:
                text += "; also missing: " + ", ".join(d.isoformat() for d in older)
            return text
        text = f"partition {self.checked_day.isoformat()} loaded"
        if not self.passed:
            return text + "; earlier days past their deadline have not: " + ", ".join(d.isoformat() for d in self.missing)
        if self.missing:
            text += "; missed earlier (not rebuildable): " + ", ".join(d.isoformat() for d in self.missing)
        return text


def freshness(
    *,
    now: dt.datetime,
    timezone: str,
    start_date: dt.date,
    deadline_hours: float,
    horizon_days: int,
    replayable: bool,
    loaded: set[dt.date],
) -> FreshnessStatus:
    """Fails when the latest day past its deadline has not loaded (and, for a replayable
    source, when any day of the horizon past its deadline has not: it is a gap that a
    replay could fill). Days missed by a non-replayable source are reported, not failed on:
    nothing can fill them."""
    checked = latest_day(
        now, timezone, lambda d: deadline(d, timezone, deadline_hours), max_back=int(deadline_hours // 24) + 3
    )
    closed = latest_day(now, timezone, lambda d: day_end(d, timezone))
    pending = closed if closed and closed not in loaded and (checked is None or closed > checked) else None
    if checked is None or checked < start_date:
        return FreshnessStatus(passed=True, checked_day=None, deadline=None, pending_day=pending)
    first = max(start_date, checked - dt.timedelta(days=horizon_days - 1))
    window = [first + dt.timedelta(days=i) for i in range((checked - first).days + 1)]
    missing = [d for d in window if d not in loaded]
    passed = checked in loaded and (not replayable or not missing)
    return FreshnessStatus(
        passed=passed,
        checked_day=checked,
        deadline=deadline(checked, timezone, deadline_hours).astimezone(ZoneInfo(timezone)),
        pending_day=pending,
        missing=missing,
        beyond_horizon=_unloaded_before(first, start_date, loaded),
    )


@dataclass(frozen=True)
class Attempt:
    """An automated run of one source's day, as the Dagster instance knows it."""

    state: str
    """``active`` (queued, starting, running), ``succeeded`` or ``failed`` (failed or canceled)."""
    ended_at: dt.datetime | None = None


RETRY_AFTER = dt.timedelta(minutes=30)
RETRY_AFTER_MAX = dt.timedelta(hours=6)


def next_attempt(attempts: list[Attempt], now: dt.datetime) -> int | None:
    """The number of the attempt to request now for a day still not loaded, or None.

    Args:
        attempts: the day's earlier automated runs, oldest first.

    A day is requested once; a failed attempt is followed by another, 30 minutes after it
    ended, then 1 h, 2 h, ... at most 6 h apart, for as long as the day is within the
    horizon (a source down for a day is caught up when it returns, without a run every tick).
    """
    if not attempts:
        return 0
    last = attempts[-1]
    if last.state != "failed":
        return None  # running, or succeeded (the tracking rows will say so at the next tick)
    wait = min(RETRY_AFTER * 2 ** (len(attempts) - 1), RETRY_AFTER_MAX)
    if last.ended_at is not None and now < last.ended_at + wait:
        return None
    return len(attempts)

"""Which failures are alerted: a failed run once its retries are spent, a failing sensor
once per streak of the same error."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

DEFAULT_RETRY_GRACE_SECONDS = 900.0
"""How long a failed run Dagster said it would retry may wait for its retry to start."""


class RunVerdict(Enum):
    ALERT = "alert"
    WAIT = "wait"
    RETRIED = "retried"


def failed_run_verdict(
    *,
    will_retry: str | None,
    retry_run_id: str | None,
    retries_enabled: bool,
    waited_seconds: float,
    grace_seconds: float = DEFAULT_RETRY_GRACE_SECONDS,
) -> RunVerdict:
    """What to do about a failed run, from Dagster's retry tags.

    Args:
        will_retry: the run's ``dagster/will_retry`` tag (set by Dagster when the failure
            is stored, if run retries are enabled: whether retries are left).
        retry_run_id: its ``dagster/auto_retry_run_id`` tag (the retry was launched).
        retries_enabled: whether the instance retries runs at all.
        waited_seconds: how long the sensor has seen this run failed.

    Returns:
        RETRIED: its retry was launched (that run is alerted if it fails in turn);
        WAIT: a retry is due but not launched yet (or Dagster has not decided yet);
        ALERT: no retry will come, or none came within ``grace_seconds``.
    """
    if retry_run_id:
        return RunVerdict.RETRIED
    decided = will_retry is not None and will_retry.lower() in ("true", "false")
    if decided and will_retry.lower() == "false":
        return RunVerdict.ALERT
    if not decided and not retries_enabled:
        return RunVerdict.ALERT
    return RunVerdict.WAIT if waited_seconds < grace_seconds else RunVerdict.ALERT


@dataclass(frozen=True)
class TickOutcome:
    tick_id: int
    failed: bool
    error_line: str = ""


def failing_tick_alerts(
    failing: str | None, ticks: list[TickOutcome]
) -> tuple[list[TickOutcome], str | None]:
    """The ticks to alert, oldest first: a failed tick after a good one, or whose error
    differs from the one already alerted. A sensor failing every 30 s with the same error
    is one alert, not 120 an hour.

    Args:
        failing: the error line already alerted for this sensor (None: it was fine).
        ticks: its finished ticks since the last one handled, oldest first.

    Returns:
        The ticks to alert and the new ``failing`` state.
    """
    alerts = []
    for tick in ticks:
        if not tick.failed:
            failing = None
        elif tick.error_line != failing:
            alerts.append(tick)
            failing = tick.error_line
    return alerts, failing

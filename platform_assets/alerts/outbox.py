"""The sensor's memory (its cursor) and the delivery of alerts: sent once, or retried on
later ticks for a bounded time, then dropped.

The cursor is JSON, so it shows in the UI and survives a code change; it holds no
secret (messages are built from it on each attempt, redacted then).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from platform_assets.alerts.messages import Failure

CURSOR_VERSION = 1
MAX_PENDING = 200
"""Undelivered alerts kept at most; the oldest beyond are dropped (and logged)."""
NOT_TRIED = "not tried: the webhook failed earlier in this tick"
OUT_OF_TIME = "not tried: this tick's time for sending ran out"


class CursorError(ValueError):
    """The stored cursor cannot be read."""


@dataclass
class Pending:
    """An alert the webhook has not taken yet."""

    failure: Failure
    queued_at: float
    attempts: int = 0
    last_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"failure": self.failure.to_dict(), "queued_at": self.queued_at, "attempts": self.attempts,
                "last_error": self.last_error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pending:
        return cls(Failure.from_dict(data["failure"]), float(data["queued_at"]), int(data["attempts"]),
                   str(data.get("last_error", "")))


@dataclass
class AlertCursor:
    """Where the sensor is: the last run-status events and sensor ticks it handled, the
    failed runs waiting for their automatic retry, the undelivered alerts.

    ``failures_after is None``: not started; the first tick starts from the present (the
    past is not alerted).
    """

    failures_after: int | None = None
    """Storage id of the last RUN_FAILURE event handled."""
    successes_after: int | None = None
    """Storage id of the last RUN_SUCCESS event handled (their failing checks)."""
    awaiting_retry: dict[str, float] = field(default_factory=dict)
    """Failed run id -> when first seen: Dagster will retry it; alert only if it does not."""
    ticks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Sensor name -> {"after": last tick id handled, "failing": first line of the error
    already alerted while the sensor keeps failing, else None}."""
    pending: list[Pending] = field(default_factory=list)

    @property
    def started(self) -> bool:
        return self.failures_after is not None and self.successes_after is not None

    def to_json(self) -> str:
        return json.dumps(
            {"v": CURSOR_VERSION, "failures_after": self.failures_after, "successes_after": self.successes_after,
             "awaiting_retry": self.awaiting_retry, "ticks": self.ticks,
             "pending": [p.to_dict() for p in self.pending]},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> AlertCursor:
        """``None`` or empty: a fresh cursor. Raises ``CursorError`` when unreadable."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            if data.get("v") != CURSOR_VERSION:
                raise CursorError(f"cursor version {data.get('v')!r}, expected {CURSOR_VERSION}")
            return cls(
                failures_after=_opt_int(data.get("failures_after")),
                successes_after=_opt_int(data.get("successes_after")),
                awaiting_retry={str(k): float(v) for k, v in (data.get("awaiting_retry") or {}).items()},
                ticks={str(k): {"after": int(v["after"]), "failing": v.get("failing")}
                       for k, v in (data.get("ticks") or {}).items()},
                pending=[Pending.from_dict(p) for p in data.get("pending") or []],
            )
        except CursorError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise CursorError(f"unreadable alert cursor ({type(e).__name__}: {e})") from e


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass
class Delivery:
    sent: list[Failure]
    pending: list[Pending]
    dropped: list[Pending]


def deliver(
    pending: list[Pending],
    new: list[Failure],
    send: Callable[[Failure], str | None],
    *,
    now: float,
    retry_seconds: float,
    max_pending: int = MAX_PENDING,
    out_of_time: Callable[[], bool] = lambda: False,
) -> Delivery:
    """Send the pending alerts (oldest first), then the new ones.

    Args:
        send: posts one alert; returns None when the webhook took it, else the error
            (a text without the URL).
        retry_seconds: an alert not delivered this long after it was queued is dropped.
        out_of_time: true once the tick must stop sending (a slow webhook must not make the
            tick time out: its cursor would be lost and the alerts sent again); the rest
            wait for the next tick, their attempts not counted.

    Returns:
        What was sent, what stays pending for a later tick, what was dropped. After the
        first failure of a tick the others wait for the next tick untried, so an
        unreachable webhook costs one timeout per tick, not one per alert.
    """
    queue = list(pending) + [Pending(f, queued_at=now) for f in new]
    sent: list[Failure] = []
    kept: list[Pending] = []
    dropped: list[Pending] = []
    failing = False
    for item in queue:
        if now - item.queued_at > retry_seconds:
            dropped.append(item)
        elif failing:
            kept.append(Pending(item.failure, item.queued_at, item.attempts, item.last_error or NOT_TRIED))
        elif out_of_time():
            kept.append(Pending(item.failure, item.queued_at, item.attempts, item.last_error or OUT_OF_TIME))
        else:
            error = send(item.failure)
            if error is None:
                sent.append(item.failure)
            else:
                failing = True
                kept.append(Pending(item.failure, item.queued_at, item.attempts + 1, error))
    if len(kept) > max_pending:
        dropped.extend(kept[: len(kept) - max_pending])
        kept = kept[len(kept) - max_pending:]
    return Delivery(sent=sent, pending=kept, dropped=dropped)

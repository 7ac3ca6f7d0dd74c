"""The alerts sensor: one webhook message per failure of the platform.

Each evaluation reads the Dagster instance since its cursor and alerts:

- a failed run once its retries are spent (Dagster's ``dagster/will_retry`` tag): a
  run Dagster will retry is held until its retry is launched (that run is then the one
  alerted if it fails too), or alerted if no retry starts within the grace period;
- each failing ERROR check of a run that succeeded (a check that failed its run is in
  the run's alert), and WARN checks when the registry asks (``alerts.warn_checks``);
- a failing tick of one of the platform's sensors, once per streak of the same error.

Undelivered alerts stay in the cursor and are tried again on later ticks for
``ALERT_RETRY_SECONDS``, then logged (without the URL) and dropped. Without
``ALERT_WEBHOOK_URL`` the sensor skips and sends nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import dagster as dg
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG, WILL_RETRY_TAG

from platform_assets.alerts.messages import Failure, first_line, payload, redacted
from platform_assets.alerts.outbox import AlertCursor, CursorError, deliver
from platform_assets.alerts.rules import (
    DEFAULT_RETRY_GRACE_SECONDS,
    RunVerdict,
    TickOutcome,
    failed_run_verdict,
    failing_tick_alerts,
)
from platform_assets.defs import alert_events as events
from platform_resources.alert_webhook import AlertWebhookResource, WebhookError
from platform_resources.config import ALERT_WEBHOOK_VARIABLE, secret_values

SENSOR_NAME = "platform_alerts"
INTERVAL_SECONDS = 60
BATCH = 200
"""Run-status events handled per evaluation and kind (the rest on the next one)."""
TICKS_READ = 50
SEND_BUDGET_SECONDS = 30
"""Time a tick spends posting, at most (plus one timeout); well under the daemon's limit
for a sensor evaluation (60 s)."""


def build_alerts_sensor(
    *,
    sensor_names: Iterable[str],
    op_assets: Mapping[str, str],
    warn_assets: Iterable[str] = (),
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    retry_grace_seconds: float = DEFAULT_RETRY_GRACE_SECONDS,
) -> dg.SensorDefinition:
    """The alerts sensor.

    Args:
        sensor_names: the platform's sensors and schedules whose failing ticks are alerted (this
            sensor is added).
        op_assets: op name -> asset key (``bronze/postgres/orders``), to name a failed step's source.
        warn_assets: asset keys whose failing WARN checks are alerted too.
        retry_grace_seconds: how long a run Dagster will retry may wait for its retry.
    """
    watched = frozenset([*sensor_names, SENSOR_NAME])
    warn = frozenset(warn_assets)
    op_assets = dict(op_assets)

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=default_status,
        description=(
            f"Posts one message per failure (failed runs after their retries, failing ERROR checks of "
            f"successful runs, failing ticks of the platform's sensors) to {ALERT_WEBHOOK_VARIABLE}; "
            "skips when it is unset."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext, alert_webhook: AlertWebhookResource) -> dg.SensorResult:
        if not alert_webhook.enabled:
            # Forget where it was: turning alerts on later does not replay the failures since.
            return dg.SensorResult(
                skip_reason=f"{ALERT_WEBHOOK_VARIABLE} is not set: alerting is off, nothing is sent",
                cursor=AlertCursor().to_json(),
            )
        try:
            cursor = AlertCursor.from_json(context.cursor)
        except CursorError as e:
            context.log.error(f"{e}; alerting starts again from now (failures until now are not alerted)")
            cursor = AlertCursor()
        now = time.time()
        instance = context.instance
        secrets = [*secret_values(), alert_webhook.url or ""]
        if not cursor.started:
            _start(instance, cursor, watched, context.repository_name)
            new: list[Failure] = []
        else:
            found = [
                *_failed_runs(instance, cursor, now, op_assets, warn, retry_grace_seconds),
                *_failed_checks(instance, cursor, warn),
                *_failed_ticks(instance, cursor, watched, context.repository_name),
            ]
            # Redacted before anything keeps them: undelivered ones wait in the cursor.
            new = [redacted(f, secrets) for f in found]

        def send(failure: Failure) -> str | None:
            try:
                alert_webhook.post(payload(failure, ui_base_url=alert_webhook.ui_base_url, secrets=secrets))
            except WebhookError as e:
                return str(e)
            return None

        deadline = time.monotonic() + SEND_BUDGET_SECONDS
        delivery = deliver(
            cursor.pending, new, send, now=now, retry_seconds=alert_webhook.retry_seconds,
            out_of_time=lambda: time.monotonic() > deadline,
        )
        for dropped in delivery.dropped:
            context.log.error(
                f"alert dropped after {dropped.attempts} failed attempts over {now - dropped.queued_at:.0f} s "
                f"({dropped.last_error}): {payload(dropped.failure, secrets=secrets)['text']}"
            )
        if delivery.pending:
            oldest = delivery.pending[0]
            context.log.warning(
                f"{len(delivery.pending)} alerts not delivered yet ({oldest.last_error}); the oldest, "
                f"{oldest.failure.key}, is dropped {alert_webhook.retry_seconds - (now - oldest.queued_at):.0f} s "
                "from now unless delivered"
            )
        cursor.pending = delivery.pending
        summary = (
            f"{len(new)} new failures; {len(delivery.sent)} alerts sent, {len(delivery.pending)} pending, "
            f"{len(delivery.dropped)} dropped"
        )
        context.log.info(summary)
        return dg.SensorResult(skip_reason=summary, cursor=cursor.to_json())

    return _sensor


def _start(instance: dg.DagsterInstance, cursor: AlertCursor, watched: frozenset[str], repo: str | None) -> None:
    """Start from the present: what failed before the sensor's first evaluation is not alerted."""
    cursor.failures_after = events.latest_status_change(instance, dg.DagsterEventType.RUN_FAILURE)
    cursor.successes_after = events.latest_status_change(instance, dg.DagsterEventType.RUN_SUCCESS)
    for state in events.platform_sensor_states(instance, watched, repo):
        cursor.ticks[state.name] = {"after": events.latest_tick_id(instance, state), "failing": None}


def _failed_runs(
    instance: dg.DagsterInstance, cursor: AlertCursor, now: float, op_assets: Mapping[str, str],
    warn: frozenset[str], grace: float,
) -> list[Failure]:
    for record in events.status_changes(instance, dg.DagsterEventType.RUN_FAILURE, cursor.failures_after or 0, BATCH):
        cursor.failures_after = record.storage_id
        cursor.awaiting_retry.setdefault(record.event_log_entry.run_id, now)
    failures = []
    for run_id, first_seen in list(cursor.awaiting_retry.items()):
        run = instance.get_run_by_id(run_id)
        if run is None:  # deleted
            del cursor.awaiting_retry[run_id]
            continue
        verdict = failed_run_verdict(
            will_retry=run.tags.get(WILL_RETRY_TAG),
            retry_run_id=run.tags.get(AUTO_RETRY_RUN_ID_TAG),
            retries_enabled=instance.run_retries_enabled,
            waited_seconds=now - first_seen,
            grace_seconds=grace,
        )
        if verdict is RunVerdict.WAIT:
            continue
        del cursor.awaiting_retry[run_id]
        if verdict is RunVerdict.ALERT:
            note = "" if run.tags.get(WILL_RETRY_TAG) != "true" else (
                f" (its automatic retry did not start within {grace / 60:g} min)"
            )
            failures.append(events.run_failure(instance, run, op_assets, warn, note))
    return failures


def _failed_checks(instance: dg.DagsterInstance, cursor: AlertCursor, warn: frozenset[str]) -> list[Failure]:
    failures = []
    for record in events.status_changes(
        instance, dg.DagsterEventType.RUN_SUCCESS, cursor.successes_after or 0, BATCH
    ):
        cursor.successes_after = record.storage_id
        run = instance.get_run_by_id(record.event_log_entry.run_id)
        if run is not None:
            failures.extend(events.check_failures(instance, run, warn))
    return failures


def _failed_ticks(
    instance: dg.DagsterInstance, cursor: AlertCursor, watched: frozenset[str], repo: str | None
) -> list[Failure]:
    failures = []
    for state in events.platform_sensor_states(instance, watched, repo):
        seen = cursor.ticks.setdefault(state.name, {"after": 0, "failing": None})
        ticks = events.finished_ticks(instance, state, seen["after"], TICKS_READ)
        if not ticks:
            continue
        outcomes = [
            TickOutcome(t.tick_id, t.status == events.TickStatus.FAILURE, events.tick_error_line(t)) for t in ticks
        ]
        alerts, seen["failing"] = failing_tick_alerts(seen["failing"], outcomes)
        seen["after"] = ticks[-1].tick_id
        by_id = {t.tick_id: t for t in ticks}
        for outcome in alerts:
            tick = by_id[outcome.tick_id]
            failures.append(
                Failure(
                    kind="sensor", key=f"tick:{state.name}:{tick.tick_id}",
                    source=f"{state.instigator_type.value.lower()} {state.name}",
                    what=f"tick {tick.tick_id} (alerted once until it recovers or its error changes)",
                    error=first_line(events.error_text(tick.error)) or "(no error recorded)",
                )
            )
    return failures

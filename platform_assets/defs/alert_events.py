"""What the alerts sensor reads from the Dagster instance: run-status events, the failing
checks of a run, the ticks of the platform's sensors. Each is turned into a ``Failure``
(``platform_assets.alerts.messages``); deciding and delivering is done elsewhere."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorTick,
    TickStatus,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from dagster._utils.error import SerializableErrorInfo

from platform_assets.alerts.messages import Failure, first_line

MAX_LISTED = 5
WRAPPERS = frozenset({"RetryRequested"})
FINISHED_TICKS = (TickStatus.SUCCESS, TickStatus.SKIPPED, TickStatus.FAILURE)


def latest_status_change(instance: dg.DagsterInstance, event_type: dg.DagsterEventType) -> int:
    """Storage id of the newest event of ``event_type`` (0: none): where a new cursor starts."""
    result = instance.fetch_run_status_changes(event_type, limit=1, ascending=False)
    return result.records[0].storage_id if result.records else 0


def status_changes(
    instance: dg.DagsterInstance, event_type: dg.DagsterEventType, after: int, limit: int
) -> Sequence[Any]:
    """Events of ``event_type`` after storage id ``after``, oldest first."""
    records_filter = dg.RunStatusChangeRecordsFilter(event_type=event_type, after_storage_id=after)
    return instance.fetch_run_status_changes(records_filter, limit=limit, ascending=True).records


def partition_of(run: dg.DagsterRun) -> str | None:
    tags = run.tags
    if tags.get(PARTITION_NAME_TAG):
        return tags[PARTITION_NAME_TAG]
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and end:
        return start if start == end else f"{start}...{end}"
    return None


def _listed(items: Sequence[str]) -> str:
    items = list(dict.fromkeys(items))
    more = len(items) - MAX_LISTED
    return ", ".join(items[:MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def _wrapper(error: SerializableErrorInfo) -> bool:
    name = error.cls_name or ""
    return name.startswith("Dagster") or name in WRAPPERS


def error_text(error: SerializableErrorInfo | None) -> str:
    """The error's own message: Dagster's wrappers (``DagsterExecutionStepExecutionError:
    Error occurred while executing op ...``, ``RetryRequested: Exceeded max_retries``) are
    skipped for the error they wrap."""
    while error is not None and error.cause is not None and _wrapper(error):
        error = error.cause
    if error is None:
        return ""
    # "platform_assets.ingestion.errors.TransientError: ..." reads better without the module path.
    return re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=\w+: )", "", error.message)


def failing_checks(
    instance: dg.DagsterInstance, run_id: str, warn_assets: frozenset[str]
) -> list[tuple[dg.AssetKey, Any]]:
    """The run's failed check evaluations worth an alert: ERROR ones, and WARN ones of the
    assets whose source asks for them (the registry's ``alerts.warn_checks``)."""
    found = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if evaluation.passed:
            continue
        severity = evaluation.severity
        if severity == dg.AssetCheckSeverity.ERROR or evaluation.asset_key.to_user_string() in warn_assets:
            found.append((evaluation.asset_key, evaluation))
    return found


def check_failures(
    instance: dg.DagsterInstance, run: dg.DagsterRun, warn_assets: frozenset[str]
) -> list[Failure]:
    """One ``Failure`` per failing check of a run that succeeded."""
    failures = []
    for asset_key, evaluation in failing_checks(instance, run.run_id, warn_assets):
        partition = getattr(evaluation, "partition", None) or partition_of(run)
        failures.append(
            Failure(
                kind="check",
                key=f"check:{run.run_id}:{asset_key.to_user_string()}:{evaluation.check_name}:{partition}",
                source=asset_key.to_user_string(),
                partition=partition,
                what=f"check {evaluation.check_name} ({evaluation.severity.value})",
                error=_check_detail(evaluation),
                run_id=run.run_id,
            )
        )
    return failures


def _check_detail(evaluation: Any) -> str:
    """The evaluation's description, or its failing-row count. Never its sample of rows:
    those are data, possibly personal."""
    if evaluation.description:
        return evaluation.description
    failing = evaluation.metadata.get("failing_rows")
    value = getattr(failing, "value", None)
    return f"{value} failing rows" if value is not None else "the check did not pass"


def run_failure(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    op_assets: Mapping[str, str],
    warn_assets: frozenset[str],
    note: str = "",
) -> Failure:
    """One ``Failure`` for a failed run: the failed steps' assets, the first step's error
    (or the run's own, when no step failed: a killed worker, a launch error)."""
    step_failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    steps = [e.dagster_event.step_key for e in step_failures if e.dagster_event.step_key]
    error = ""
    if step_failures:
        error = error_text(step_failures[0].dagster_event.event_specific_data.error)
    run_failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    if not error and run_failures:
        data = run_failures[-1].dagster_event.event_specific_data
        error = error_text(getattr(data, "error", None)) or run_failures[-1].message or ""
    if steps:
        source = _listed([op_assets.get(s, s) for s in steps])
        what = f"step {_listed(steps)}"
    else:
        selected = sorted(k.to_user_string() for k in (run.asset_selection or ()))
        source = _listed(selected) if selected else f"job {run.job_name}"
        reason = run.tags.get("dagster/failure_reason", "")
        what = f"run ({reason.lower().replace('_', ' ')})" if reason else "run"
    checks = [f"{key.to_user_string()} {e.check_name}" for key, e in failing_checks(instance, run.run_id, warn_assets)]
    if checks:
        what += f"; failing checks: {_listed(checks)}"
    return Failure(
        kind="run", key=f"run:{run.run_id}", source=source, partition=partition_of(run),
        what=what + note, error=error or "(no error recorded)", run_id=run.run_id,
    )


def platform_sensor_states(
    instance: dg.DagsterInstance, names: frozenset[str], repository_name: str | None
) -> list[InstigatorState]:
    """The stored states of the platform's sensors and schedules (one that never ticked has none)."""
    states = [
        *instance.all_instigator_state(instigator_type=InstigatorType.SENSOR),
        *instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE),
    ]
    return [
        s for s in states
        if s.name in names and (repository_name is None or s.origin.repository_origin.repository_name == repository_name)
    ]


def latest_tick_id(instance: dg.DagsterInstance, state: InstigatorState) -> int:
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
    return ticks[0].tick_id if ticks else 0


def finished_ticks(
    instance: dg.DagsterInstance, state: InstigatorState, after: int, limit: int
) -> list[InstigatorTick]:
    """The sensor's ticks after tick id ``after``, oldest first, up to the first one still
    running (it is read again on the next evaluation)."""
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=limit)
    finished = []
    for tick in sorted((t for t in ticks if t.tick_id > after), key=lambda t: t.tick_id):
        if tick.status not in FINISHED_TICKS:
            break
        finished.append(tick)
    return finished


def tick_error_line(tick: InstigatorTick) -> str:
    return first_line(error_text(tick.error)) if tick.error else "(no error recorded)"

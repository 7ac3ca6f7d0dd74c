"""Daily automation of database sources: one schedule per source, evaluated against the tracking table.

Why a schedule reading ``data_platform.ingestion_metadata`` rather than declarative
automation conditions:

- a partition counts as loaded only when its last successful load *started after its
  day ended* (with ``end_offset=1`` today's partition exists, and ``make demo`` loads
  it during the day). Dagster's conditions (``missing()``, ``on_cron``) see that a
  materialization exists, not when the load began; the tracking row's ``started_at``
  says it exactly, for loads made by any run (late-row reloads and backfills included);
- catch-up differs by source (every missed day of a timestamp source; one run for the
  latest day of a snapshot or integer source, the rest reported), and days beyond the
  horizon must be reported: a plain function of (now, loaded days) says so in the tick
  log, and ``platform_assets.automation.plan`` is tested without Dagster;
- a failed run is requested again with a back-off (``plan.next_attempt``), instead of
  every tick (an eager condition) or never (``~execution_failed()``).

Each schedule ticks every 15 minutes, at the minute of the source's ``automation.at``,
in the registry's timezone; a tick plans from the tracking table alone, so ticks the
daemon missed (it was down) lose nothing: the next one requests what is due, oldest day
first. A schedule shows in the UI (Automation) and can be stopped there; a source opted
out in the registry (``automation: false``) gets its schedule stopped by default.
The tick reads the tracking table (read-only, no DDL) and fails visibly when it cannot.
"""


import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from platform_assets.automation.plan import (
    Attempt,
    loaded_days,
    next_attempt,
    plan_automation,
)
from platform_assets.ingestion.tracking.partition_loads import last_successful_loads
from platform_assets.registry import PostgresSource, Registry
from platform_resources.postgres import PostgresResource

AUTOMATION_TAG = "data_platform/automation"
"""``<source>:<day>`` on every run a schedule requests: its earlier attempts are found by it."""
TICK_MINUTES = 15


def schedule_name(source: PostgresSource) -> str:
    return f"{source.name}_daily"


def cron_for(at: dt.time) -> str:
    """Every 15 minutes, on the minute of ``at`` (so the first tick at or after ``at`` is ``at``)."""
    minutes = sorted({(at.minute + k * TICK_MINUTES) % 60 for k in range(60 // TICK_MINUTES)})
    return f"{','.join(str(m) for m in minutes)} * * * *"


@contextmanager
def tracking_connection(platform_db: PostgresResource) -> Iterator[Any]:
    """A read-only connection to the tracking database, closed after the block.

    A tick that cannot read the tracking tables fails (visibly, in the tick's history)."""
    settings = platform_db.settings()
    try:
        conn = settings.connect(application_name="data_platform:automation")
    except Exception as e:
        raise RuntimeError(
            f"cannot read the tracking tables in {settings.describe()}: {str(e).strip()}; "
            "check that PostgreSQL is running and the PLATFORM_PG*/PG* settings"
        ) from e
    try:
        conn.set_session(readonly=True, autocommit=True)
        yield conn
    finally:
        conn.close()


def build_automation_schedule(
    *, source: PostgresSource, registry: Registry, asset: dg.AssetsDefinition
) -> dg.ScheduleDefinition:
    """The schedule that loads ``source``'s day once it is over, and catches up missed days."""
    settings = source.automation_settings(registry)
    catch_up = (
        f"every missed day of the last {settings.catch_up_days}" if source.replayable
        else f"the latest day only (missed days of the last {settings.catch_up_days} are reported)"
    )

    @dg.schedule(
        name=schedule_name(source),
        cron_schedule=cron_for(settings.at),
        execution_timezone=registry.timezone,
        target=asset,
        default_status=dg.DefaultScheduleStatus.RUNNING if settings.enabled else dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"Loads bronze/postgres/{source.name} for the day that just ended, after "
            f"{settings.at.strftime('%H:%M')} ({registry.timezone}); catch-up: {catch_up}."
        ),
        tags={"source_kind": "postgres"},
    )
    def _schedule(context: dg.ScheduleEvaluationContext, platform_db: PostgresResource):
        now = _evaluation_time(context)
        with tracking_connection(platform_db) as conn:
            loads = last_successful_loads(conn, source_name=source.source_name)
        plan = plan_automation(
            now=now, timezone=registry.timezone, start_date=registry.start_date, run_at=settings.at,
            horizon_days=settings.catch_up_days, replayable=source.replayable,
            loaded=loaded_days(loads, registry.timezone),
        )
        if plan.missed or plan.beyond_horizon:
            context.log.warning(f"{source.name}: {plan.describe()}")
        requests, waiting = [], []
        attempts = _Attempts(context)
        for day in plan.request:
            number = next_attempt(attempts.of(source.name, day), now)
            if number is None:
                waiting.append(day)
                continue
            requests.append(
                dg.RunRequest(
                    partition_key=day.isoformat(),
                    run_key=f"{source.name}:{day.isoformat()}:{number}",
                    tags={AUTOMATION_TAG: f"{source.name}:{day.isoformat()}", "source_kind": "postgres"},
                )
            )
        message = plan.describe([d for d in plan.request if d not in waiting], waiting)
        if requests:
            context.log.info(f"{source.name}: {message}")
            return requests
        return dg.SkipReason(message)

    return _schedule


def _evaluation_time(context: dg.ScheduleEvaluationContext) -> dt.datetime:
    when = context.scheduled_execution_time
    if when is None:
        return dt.datetime.now(dt.timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


class _Attempts:
    """The automated runs of one source's day in the Dagster instance (none without one)."""

    def __init__(self, context: dg.ScheduleEvaluationContext) -> None:
        try:
            self._instance: dg.DagsterInstance | None = context.instance
        except dg.DagsterInvariantViolationError:
            self._instance = None  # a context built without an instance

    def of(self, name: str, day: dt.date) -> list[Attempt]:
        if self._instance is None:
            return []
        records = self._instance.get_run_records(
            filters=dg.RunsFilter(tags={AUTOMATION_TAG: f"{name}:{day.isoformat()}"})
        )
        return [_attempt(r) for r in sorted(records, key=lambda r: r.create_timestamp)]


def _attempt(record: Any) -> Attempt:
    status = record.dagster_run.status
    if status == dg.DagsterRunStatus.SUCCESS:
        return Attempt("succeeded")
    if status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        ended = record.end_time or record.update_timestamp.timestamp()
        return Attempt("failed", dt.datetime.fromtimestamp(ended, dt.timezone.utc))
    return Attempt("active")

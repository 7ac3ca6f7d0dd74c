"""Partition-aware freshness: a ``freshness`` asset check per source, kept current by a sensor.

The check asks whether the latest closed day whose deadline has passed (the registry's
``freshness.deadline_hours`` after the day ended) has loaded, as the automation counts
loads (``platform_assets.automation.plan``: a database partition loaded before its day
was over does not count), and names the day when it has not. A backfill of old days
therefore cannot hide a missing yesterday, as a "last materialization within N hours"
policy would. Missed days within the catch-up horizon and unloaded days beyond it are
listed in the result's metadata.

The sensor (``freshness_checks``, every 5 minutes, running by default) evaluates every
source from the tracking table and records a check evaluation when a source's result
changes (at most a few per day; no run is launched). The check can also be executed
from the UI: it runs the same evaluation in a run.
"""


import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import dagster as dg

from platform_assets.automation.plan import (
    FreshnessStatus,
    describe_ranges,
    freshness,
    loaded_days,
)
from platform_assets.defs.automation import tracking_connection
from platform_assets.ingestion.tracking.partition_loads import last_successful_loads
from platform_assets.registry import FileFamily, PostgresSource, Registry
from platform_resources.postgres import PostgresResource

CHECK_NAME = "freshness"
SENSOR_NAME = "freshness_checks"


@dataclass(frozen=True)
class Target:
    """A source with a freshness deadline."""

    key: dg.AssetKey
    source: PostgresSource | FileFamily

    @property
    def check_key(self) -> dg.AssetCheckKey:
        return dg.AssetCheckKey(self.key, CHECK_NAME)

    def status(self, conn: Any, registry: Registry, now: dt.datetime) -> FreshnessStatus:
        source = self.source
        assert source.freshness is not None
        if isinstance(source, PostgresSource):
            loads = last_successful_loads(conn, source_name=source.source_name)
            loaded = loaded_days(loads, registry.timezone)
            horizon, replayable = source.automation_settings(registry).catch_up_days, source.replayable
        else:
            loaded = loaded_days(last_successful_loads(conn, family=source.name), registry.timezone, after_day_end=False)
            horizon, replayable = registry.automation.catch_up_days, True
        return freshness(
            now=now, timezone=registry.timezone, start_date=registry.start_date,
            deadline_hours=source.freshness.deadline_hours, horizon_days=horizon, replayable=replayable,
            loaded=loaded,
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _metadata(status: FreshnessStatus, target: Target) -> dict[str, Any]:
    text = dg.MetadataValue.text
    metadata: dict[str, Any] = {"summary": text(status.description)}
    if target.source.freshness:
        metadata["deadline_hours"] = dg.MetadataValue.float(float(target.source.freshness.deadline_hours))
    if status.checked_day:
        metadata["checked_partition"] = text(status.checked_day.isoformat())
    if status.deadline:
        metadata["deadline"] = text(status.deadline.isoformat())
    if status.pending_day:
        metadata["pending_partition"] = text(status.pending_day.isoformat())
    if status.missing:
        metadata["missing_partitions"] = dg.MetadataValue.json([d.isoformat() for d in status.missing])
    if status.beyond_horizon:
        metadata["not_loaded_beyond_horizon"] = text(describe_ranges(status.beyond_horizon))
    return metadata


def _signature(status: FreshnessStatus) -> str:
    return json.dumps(
        [status.passed, str(status.checked_day), [str(d) for d in status.missing], str(status.beyond_horizon)]
    )


def build_freshness(
    *, targets: list[Target], registry: Registry
) -> tuple[dg.AssetChecksDefinition, dg.SensorDefinition] | None:
    """The ``freshness`` checks of ``targets`` and the sensor that keeps them current (None: no targets)."""
    if not targets:
        return None
    by_key = {t.check_key: t for t in targets}
    specs = [
        dg.AssetCheckSpec(
            CHECK_NAME, asset=t.key,
            description=(
                f"The latest closed day's partition loaded within {t.source.freshness.deadline_hours:g} h "
                "after the day ended (fails naming the day)"
                if t.source.freshness else None
            ),
        )
        for t in targets
    ]

    @dg.multi_asset_check(name="freshness_checks", specs=specs, can_subset=True)
    def _checks(context: dg.AssetCheckExecutionContext, platform_db: PostgresResource):
        now = _now()
        with tracking_connection(platform_db) as conn:
            for check_key in sorted(context.selected_asset_check_keys, key=str):
                target = by_key[check_key]
                status = target.status(conn, registry, now)
                yield dg.AssetCheckResult(
                    asset_key=target.key, check_name=CHECK_NAME, passed=status.passed,
                    severity=dg.AssetCheckSeverity.ERROR, metadata=_metadata(status, target),
                )

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Records each source's freshness check result when it changes (no run is launched).",
    )
    def _sensor(context: dg.SensorEvaluationContext, platform_db: PostgresResource) -> dg.SensorResult:
        now = _now()
        seen = json.loads(context.cursor) if context.cursor else {}
        events = []
        with tracking_connection(platform_db) as conn:
            for target in targets:
                status = target.status(conn, registry, now)
                name = "/".join(target.key.path)
                if not status.passed:
                    context.log.warning(f"{name}: {status.description}")
                signature = _signature(status)
                if seen.get(name) == signature:
                    continue
                seen[name] = signature
                events.append(
                    dg.AssetCheckEvaluation(
                        asset_key=target.key, check_name=CHECK_NAME, passed=status.passed,
                        severity=dg.AssetCheckSeverity.ERROR, metadata=_metadata(status, target),
                    )
                )
        return dg.SensorResult(asset_events=events, cursor=json.dumps(seen, sort_keys=True))

    return _checks, _sensor

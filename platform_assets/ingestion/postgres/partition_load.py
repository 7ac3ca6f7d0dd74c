"""Loads one daily partition of a PostgreSQL source, and the partitions that received late rows.

Everything is decided and done under the source's lock, from tracking state read
inside it: the plan of the partition (``partitions.postgres``), its load, the check
for late rows in other partitions (``late_rows``) and their reloads. Runs of one
source launched together (a backfill) therefore take turns and each plans on what
the previous one committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from platform_assets.ingestion.errors import IngestionError, TransientError
from platform_assets.ingestion.partitions.postgres import (
    PartitionPlan,
    SourceSpec,
    plan_partition,
)
from platform_assets.ingestion.postgres.delete_capture import DeletesRequest
from platform_assets.ingestion.postgres.late_rows import late_partitions
from platform_assets.ingestion.postgres.load import LoadRequest, run_locked
from platform_assets.ingestion.postgres.source_state import (
    SourceState,
    read_source_state,
)
from platform_assets.ingestion.postgres.tombstone_repair import restore_tombstones
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.sink.load_result import TableLoadResult
from platform_assets.ingestion.tracking.run_records import RunStart
from platform_assets.ingestion.tracking.run_scope import locked_source, run_in_session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionOutcome:
    result: TableLoadResult
    """The partition asked for."""
    reloads: list[TableLoadResult] = field(default_factory=list)
    """Partitions loaded again because rows were committed into their range after their load."""
    reload_errors: dict[str, str] = field(default_factory=dict)
    """Partitions whose reload failed (their flag stays: the next run tries again)."""
    verified: list[Any] = field(default_factory=list)
    """What ``verify`` returned for ``result`` and each reload, in that order."""


def load_partition(
    spec: SourceSpec,
    partition_key: str,
    services: Services,
    *,
    rebuild: bool = False,
    dagster_run_id: str | None = None,
    verify: Callable[[TableLoadResult], Any] | None = None,
) -> PartitionOutcome:
    """Materialize ``partition_key`` of ``spec`` (see ``partitions.postgres``).

    ``verify`` (the asset's checks) runs on each stored object while the lock is
    still held, so no other run of the source replaces the object meanwhile.
    """
    check = verify or (lambda result: None)
    with locked_source(services, spec.source_name) as platform:
        _refuse_another_sources_objects(services, platform, spec, partition_key, dagster_run_id)
        state = read_source_state(platform, spec.source_name)
        if restore_tombstones(services, platform, spec.source_name, state):
            state = read_source_state(platform, spec.source_name)
        plan = plan_partition(spec, state, partition_key, rebuild)
        result = run_locked(request_for(spec, plan, dagster_run_id, state), services, platform, state)
        verified = [check(result)]
        if spec.load != "incremental":
            return PartitionOutcome(result, verified=verified)
        reloads: list[TableLoadResult] = []
        errors: dict[str, str] = {}
        state = read_source_state(platform, spec.source_name)
        try:
            late = late_partitions(services, spec, platform, state, partition_key)
        except TransientError:
            raise
        except IngestionError as e:
            log.error("%s: the check for late rows failed: %s", spec.source_name, e)
            return PartitionOutcome(result, [], {"late-row check": str(e)}, verified)
        for key, rows in sorted(late.items()):
            log.info("%s: %d late row(s) in partition %s; loading it again", spec.source_name, rows, key)
            try:
                reloaded = run_locked(request_for(spec, plan_partition(spec, state, key), dagster_run_id, state),
                                      services, platform, state)
            except TransientError:
                raise
            except IngestionError as e:
                log.error("%s: reloading partition %s failed: %s", spec.source_name, key, e)
                errors[key] = str(e)
            else:
                reloads.append(reloaded)
                verified.append(check(reloaded))
            state = read_source_state(platform, spec.source_name)
        return PartitionOutcome(result, reloads, errors, verified)


_WRITTEN_BY_ANOTHER = """
SELECT source_name FROM data_platform.ingestion_metadata
WHERE status = 'success' AND source_name <> %s AND (object_key = ANY(%s) OR deletes_object_key = ANY(%s))
ORDER BY id DESC LIMIT 1
"""


def _refuse_another_sources_objects(
    services: Services, platform: Any, spec: SourceSpec, partition_key: str, dagster_run_id: str | None
) -> None:
    """Tracking follows ``schema.table``: a source whose table was renamed (same registry
    name, same objects) would start its partitions afresh and overwrite what they hold.
    The refusal is recorded as a ``failed`` run of the source."""
    keys = [spec.object_key(partition_key)]
    if spec.capture_deletes:
        keys.append(spec.deletes_object_key(partition_key))
    with platform.cursor() as cur:
        cur.execute(_WRITTEN_BY_ANOTHER, (spec.source_name, keys, keys))
        row = cur.fetchone()
    if row is None:
        return
    other = row[0]
    refusal = IngestionError(
        f"{spec.source_name}: the objects of partition {partition_key} ({', '.join(keys)}) were written by "
        f"{other}, whose history this run cannot see (the tracking tables follow schema.table): it would "
        f"overwrite them. If the table was renamed, carry its history over first: UPDATE "
        f"data_platform.ingestion_metadata SET source_name = '{spec.source_name}' WHERE source_name = '{other}'; "
        f"UPDATE data_platform.watermarks SET source_name = '{spec.source_name}' WHERE source_name = '{other}'. "
        "Otherwise give the source another name (its objects then go elsewhere)"
    )
    start = RunStart(
        source_name=spec.source_name, source_type="postgres", execution_date=partition_key, object_key=keys[0],
        uri=services.uri(keys[0]), load_mode=spec.load, partition_key=partition_key,
        dagster_run_id=dagster_run_id, watermark_column=spec.watermark_column,
    )
    with run_in_session(platform, services, start, refusal):
        pass  # not reached: run_in_session records the refusal as failed and raises it


def _deletes(spec: SourceSpec, plan: PartitionPlan, state: SourceState) -> DeletesRequest:
    previous = state.partitions.get(plan.partition_key)
    return DeletesRequest(
        observe=plan.observe_deletes,
        tombstone_key=spec.deletes_object_key(plan.partition_key),
        key_set_key=spec.key_set_pattern,
        previous_key_set=state.key_set,
        previous_deleted=(previous.deleted_rows or 0) if previous else 0,
        previous_tombstone=previous.deletes_object_key if previous else None,
    )


def request_for(spec: SourceSpec, plan: PartitionPlan, dagster_run_id: str | None, state: SourceState) -> LoadRequest:
    """The engine's request for a planned partition load."""
    return LoadRequest(
        source_name=spec.source_name,
        object_key=spec.object_key(plan.partition_key),
        execution_date=plan.partition_key,
        mode=plan.mode,
        schema=spec.schema if spec.table else None,
        table=spec.table,
        query=spec.query,
        watermark_column=spec.watermark_column,
        watermark_type=spec.watermark_type,
        window=plan.window,
        replay_range=plan.replay_range,
        lower=plan.lower,
        include_nulls=plan.include_nulls,
        previous_upper=plan.previous_upper,
        merge=plan.merge,
        merge_from=plan.merge_from,
        rebuild=plan.rebuild,
        watermark_reset=plan.watermark_reset,
        key_columns=spec.key_columns,
        reconcile=True,
        deletes=_deletes(spec, plan, state) if spec.capture_deletes else None,
        schema_policy=spec.schema_policy,
        partition_key=plan.partition_key,
        dagster_run_id=dagster_run_id,
    )

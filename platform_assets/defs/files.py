"""Dagster wiring for file families: a daily-partitioned asset and a sensor per family."""

import hashlib
import warnings

import dagster as dg
from dagster_aws.s3 import S3Resource

from platform_assets.defs.checks import StoredObject, check_specs, run_checks
from platform_assets.defs.common import (
    retry_transient_errors,
    run_services,
    schema_change_metadata,
)
from platform_assets.ingestion.files.family_load import (
    FileRef,
    PartitionFiles,
    load_family_partition,
)
from platform_assets.ingestion.files.family_watch import plan_tick
from platform_assets.ingestion.tracking.file_ledger import partition_objects
from platform_assets.registry import FileFamily, Registry
from platform_resources.object_store_resources import StorageLayersResource
from platform_resources.postgres import PostgresResource

GROUP = "bronze_files"
ALL_FILES_LOADED = "all_files_loaded"
RUN_KEY_TAG = "dagster/run_key"
MAX_SENSOR_ATTEMPTS = 4


def asset_key(family: FileFamily) -> dg.AssetKey:
    return dg.AssetKey(["bronze", "files", family.name])


class FileVersionConfig(dg.Config):
    """A file version the sensor saw at rest (``files.family_load.FileRef``)."""

    relative_path: str
    size: int
    mtime_ns: int
    md5: str | None = None


class FilePartitionConfig(dg.Config):
    files: list[FileVersionConfig] | None = None
    """Set by the sensor: exactly these versions. Unset (a manual run): every file of the
    partition at rest for the family's ``stable_seconds``."""
    reload_ingested: bool = False
    """Load again versions already in the ledger (e.g. after deleting their objects)."""


def build_file_family(
    *, family: FileFamily, registry: Registry, partitions_def: dg.PartitionsDefinition
) -> tuple[dg.AssetsDefinition, dg.SensorDefinition]:
    """The family's asset (one partition = the files of one day) and its directory sensor."""
    key = asset_key(family)
    spec = family.spec(registry)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        all_loaded = dg.AssetCheckSpec(
            ALL_FILES_LOADED, asset=key, blocking=True, partitions_def=partitions_def,
            description="Every file this run took up was loaded (the failed ones are listed).",
        )

    @dg.asset(
        key=key,
        description=family.description or f"{family.format} files {family.glob} in {family.directory}",
        group_name=GROUP,
        partitions_def=partitions_def,
        kinds={family.format, "parquet", "s3"},
        pool=family.pool,
        metadata={"directory": str(family.input_directory()), "glob": family.glob},
        tags={"source_kind": "files"},
        check_specs=[all_loaded, *check_specs(key, family, partitions_def, from_postgres=False)],
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: FilePartitionConfig,
        source_db: PostgresResource,
        platform_db: PostgresResource,
        s3: S3Resource,
        storage_layers: StorageLayersResource,
    ) -> dg.MaterializeResult:
        services = run_services(source_db, platform_db, s3, storage_layers)
        refs = None if config.files is None else [FileRef(**f.model_dump()) for f in config.files]
        with retry_transient_errors(context):
            done = load_family_partition(
                spec, context.partition_key, services, files=refs, reload_loaded=config.reload_ingested,
                dagster_run_id=context.run.run_id,
            )
        for failed in done.by_status("failed"):
            context.log.error(f"{family.name}: {failed.relative_path} failed: {failed.reason}")
        with services.platform_connection() as platform:
            objects = [StoredObject(*o) for o in partition_objects(platform, family.name, context.partition_key)]
        checks = [_all_files_loaded(key, done), *run_checks(key, family, services, objects)]
        return dg.MaterializeResult(metadata=_metadata(done), check_results=checks)

    @dg.sensor(
        name=f"{family.name}_sensor",
        asset_selection=[asset_key(family)],
        minimum_interval_seconds=family.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Loads new file versions matching {family.glob} in {family.directory} once at rest.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        platform_db: PostgresResource,
        source_db: PostgresResource,
        s3: S3Resource,
        storage_layers: StorageLayersResource,
    ) -> dg.SensorResult:
        services = run_services(source_db, platform_db, s3, storage_layers)
        plan = plan_tick(spec, services, context.cursor)
        for problem in plan.reported:
            context.log.error(f"{family.name}: not loaded: {problem}")
        requests, held = [], []
        runs = _SensorRuns(context)
        for partition_key, files in sorted(plan.ready.items()):
            if not partitions_def.has_partition_key(partition_key):
                held.append(
                    f"{[f.relative_path for f in files]} belong to partition {partition_key}, which does not "
                    f"exist yet (partitions run from {registry.start_date} to today): loaded on that day"
                )
                continue
            run_key = runs.unused_key(_run_key(family, partition_key, files))
            if run_key is None:
                held.append(
                    f"{[f.relative_path for f in files]} not requested again: their last {MAX_SENSOR_ATTEMPTS} "
                    f"runs failed; see those runs, then materialize partition {partition_key}"
                )
                continue
            requests.append(_run_request(family, partition_key, files, run_key))
        if held and not requests:
            # Shown on the tick itself, where "0 runs requested" would otherwise hide why.
            return dg.SensorResult(skip_reason=f"{family.name}: " + "; ".join(held), cursor=plan.cursor)
        for reason in held:
            context.log.warning(f"{family.name}: {reason}")
        return dg.SensorResult(run_requests=requests, cursor=plan.cursor)

    return _asset, _sensor


def _run_key(family: FileFamily, partition_key: str, files: list[FileRef]) -> str:
    """The same versions in the same state give the same key (the daemon launches it once)."""
    versions = "\n".join(sorted(f"{f.relative_path}:{f.md5}:{f.size}:{f.mtime_ns}" for f in files))
    return f"{family.name}:{partition_key}:{hashlib.sha256(versions.encode()).hexdigest()[:16]}"


class _SensorRuns:
    """The runs the sensor launched before: a request whose run failed is made again under
    a new key (the daemon launches a key once), ``MAX_SENSOR_ATTEMPTS`` times at most.

    A file whose content is at fault is recorded as failed and not requested again: what
    fails here is a run (an outage after its retries, a killed process).
    """

    def __init__(self, context: dg.SensorEvaluationContext) -> None:
        try:
            self._instance: dg.DagsterInstance | None = context.instance
        except dg.DagsterInvariantViolationError:
            self._instance = None  # a context built without an instance (a unit test)

    def unused_key(self, key: str) -> str | None:
        if self._instance is None:
            return key
        for attempt in range(MAX_SENSOR_ATTEMPTS):
            candidate = key if attempt == 0 else f"{key}:retry{attempt}"
            runs = self._instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: candidate}), limit=1)
            if not runs or runs[0].status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
                return candidate
        return None


def _run_request(family: FileFamily, partition_key: str, files: list[FileRef], run_key: str) -> dg.RunRequest:
    op = "__".join(asset_key(family).path)
    return dg.RunRequest(
        partition_key=partition_key,
        run_key=run_key,
        run_config={"ops": {op: {"config": {"files": [vars(f) for f in files]}}}},
        tags={"file_family": family.name, "files": ",".join(f.relative_path for f in files)[:1000]},
    )


def _all_files_loaded(key: dg.AssetKey, done: PartitionFiles) -> dg.AssetCheckResult:
    failed = done.by_status("failed")
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=ALL_FILES_LOADED,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "failing_rows": dg.MetadataValue.int(len(failed)),
            "failed_files": dg.MetadataValue.json([{"file": o.relative_path, "error": o.reason} for o in failed]),
        },
    )


def _metadata(done: PartitionFiles) -> dict:
    loaded = [o.result for o in done.by_status("loaded") if o.result]
    changes = [r.schema_changes for r in loaded if r.schema_changes and any(r.schema_changes.values())]
    rows = [
        f"| {o.relative_path} | {o.status} | {o.result.row_count if o.result else ''} | "
        f"{o.result.object_key if o.result else ''} | {o.reason[:160]} |"
        for o in done.outcomes
    ]
    table = "\n".join(["| file | status | rows | object key | note |", "|---|---|---|---|---|", *rows])
    return {
        "files": dg.MetadataValue.md(table if done.outcomes else "no files for this partition"),
        "files_loaded": dg.MetadataValue.int(len(loaded)),
        "files_skipped": dg.MetadataValue.int(len(done.by_status("skipped"))),
        "files_failed": dg.MetadataValue.int(len(done.by_status("failed"))),
        "row_count": dg.MetadataValue.int(sum(r.row_count for r in loaded)),
        "dagster/row_count": dg.MetadataValue.int(sum(r.row_count for r in loaded)),
        **(schema_change_metadata(changes[-1]) if changes else {}),
    }

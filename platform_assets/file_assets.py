"""Dagster wiring for file families: a daily-partitioned asset and a sensor per family."""

import hashlib
import json
from datetime import timedelta

import dagster as dg
from dagster_aws.s3 import S3Resource

from platform_assets.asset_checks import StoredObject, check_specs, run_checks
from platform_assets.file_partitions import (
    ingested_identities,
    load_partition,
    plan_tick,
    scan,
)
from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.tracking import partition_objects
from platform_assets.postgres_assets import (
    build_services,
    retry_transient_errors,
    schema_change_metadata,
)
from platform_assets.registry import FileFamily, Registry
from platform_resources.object_store_resources import StorageLayersResource
from platform_resources.postgres import PostgresResource

GROUP = "bronze_files"


def asset_key(family: FileFamily) -> dg.AssetKey:
    return dg.AssetKey(["bronze", "files", family.name])


class FilePartitionConfig(dg.Config):
    reload_ingested: bool = False
    """Load again files already in the ledger (e.g. after deleting their objects)."""


def build_file_family(
    *, family: FileFamily, registry: Registry, partitions_def: dg.PartitionsDefinition
) -> tuple[dg.AssetsDefinition, dg.SensorDefinition]:
    """The family's asset (one partition = the files of one day) and its directory sensor."""
    key = asset_key(family)

    @dg.asset(
        key=key,
        description=family.description or f"{family.format} files {family.glob} in {family.directory}",
        group_name=GROUP,
        partitions_def=partitions_def,
        kinds={family.format, "parquet", "s3"},
        pool=family.pool,
        metadata={"directory": str(family.input_directory()), "glob": family.glob},
        tags={"source_kind": "files"},
        check_specs=check_specs(key, family, partitions_def, from_postgres=False),
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=family.freshness_hours)),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: FilePartitionConfig,
        source_db: PostgresResource,
        platform_db: PostgresResource,
        s3: S3Resource,
        storage_layers: StorageLayersResource,
    ) -> dg.MaterializeResult:
        services = build_services(source_db, platform_db, s3, storage_layers)
        with retry_transient_errors(context):
            results = load_partition(
                family, registry, context.partition_key, services, context.run.run_id, config.reload_ingested
            )
        failed = [r for r in results if r["status"] == "failed"]
        if failed:
            raise IngestionError(
                f"{len(failed)} of {len(results)} file(s) of {family.name} for {context.partition_key} "
                "failed: " + "; ".join(f"{r['file']}: {r['error']}" for r in failed)
            )
        platform = services.connect_platform()
        try:
            objects = [StoredObject(*o) for o in partition_objects(platform, family.name, context.partition_key)]
        finally:
            platform.close()
        return dg.MaterializeResult(
            metadata=_metadata(results), check_results=run_checks(key, family, services, objects)
        )

    @dg.sensor(
        name=f"{family.name}_sensor",
        asset_selection=[asset_key(family)],
        minimum_interval_seconds=family.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Loads new, stable files matching {family.glob} in {family.directory}.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        platform_db: PostgresResource,
        source_db: PostgresResource,
        s3: S3Resource,
        storage_layers: StorageLayersResource,
    ) -> dg.SensorResult:
        services = build_services(source_db, platform_db, s3, storage_layers)
        candidates = scan(family, registry)
        previous = json.loads(context.cursor) if context.cursor else {}
        tick = plan_tick(candidates, previous, ingested_identities(services, candidates))
        requests = []
        for partition_key, files in sorted(tick.ready.items()):
            if not partitions_def.has_partition_key(partition_key):
                context.log.error(
                    f"{family.name}: {[str(f.path) for f in files]} have partition date {partition_key}, "
                    f"outside the partitions ({registry.start_date} to today); not loaded"
                )
                continue
            identities = "\n".join(sorted(f.identity for f in files))
            requests.append(
                dg.RunRequest(
                    partition_key=partition_key,
                    run_key=f"{family.name}:{partition_key}:{hashlib.sha256(identities.encode()).hexdigest()[:16]}",
                    tags={"file_family": family.name, "files": ",".join(f.path.name for f in files)[:1000]},
                )
            )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(tick.cursor, sort_keys=True))

    return _asset, _sensor


def _metadata(results: list[dict]) -> dict:
    loaded = [r for r in results if r["status"] == "success"]
    changes = [r["schema_changes"] for r in loaded if r.get("schema_changes") and any(r["schema_changes"].values())]
    rows = [
        f"| {r['file'].rsplit('/', 1)[-1]} | {r['status']} | {r.get('row_count', '')} | "
        f"{r.get('object_key', '')} | {str(r.get('error', ''))[:120]} |"
        for r in results
    ]
    table = "\n".join(["| file | status | rows | object key | error |", "|---|---|---|---|---|", *rows])
    return {
        "files": dg.MetadataValue.md(table if results else "no files for this partition"),
        "files_loaded": dg.MetadataValue.int(len(loaded)),
        "files_skipped": dg.MetadataValue.int(sum(r["status"] == "skipped" for r in results)),
        "files_failed": dg.MetadataValue.int(sum(r["status"] == "failed" for r in results)),
        "row_count": dg.MetadataValue.int(sum(r.get("row_count", 0) for r in loaded)),
        "dagster/row_count": dg.MetadataValue.int(sum(r.get("row_count", 0) for r in loaded)),
        **(schema_change_metadata(changes[-1]) if changes else {}),
    }

"""Dagster wiring for PostgreSQL sources: one daily-partitioned asset per registry entry."""

from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from platform_assets.defs.checks import StoredObject, check_specs, run_checks
from platform_assets.defs.common import (
    markdown_table,
    retry_transient_errors,
    run_services,
    schema_change_metadata,
)
from platform_assets.ingestion.postgres.partition_load import load_partition
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.sink.load_result import TableLoadResult
from platform_assets.registry import PostgresSource, Registry
from platform_resources.object_store_resources import StorageLayersResource
from platform_resources.postgres import PostgresResource

GROUP = "bronze_postgres"


def asset_key(source: PostgresSource) -> dg.AssetKey:
    return dg.AssetKey(["bronze", "postgres", source.name])


REBUILD_TAG = "data_platform/rebuild"


class PostgresPartitionConfig(dg.Config):
    rebuild: bool = False
    """Replace the partition's object with the source as it is now, instead of merging
    into it; versions no longer in the source are then gone (also: run tag
    ``data_platform/rebuild=true``, e.g. on a backfill)."""


def build_postgres_asset(
    *, source: PostgresSource, registry: Registry, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """The asset that loads ``source`` into ``bronze/postgres/<name>/<date>/``."""
    kind = "incremental" if source.load == "incremental" else "full"
    key = asset_key(source)
    spec = source.spec(registry)

    @dg.asset(
        key=key,
        description=source.description or f"{kind} load of {source.source_name}",
        group_name=GROUP,
        partitions_def=partitions_def,
        kinds={"postgres", "parquet", "s3"},
        pool=source.pool,
        metadata={
            "source": source.source_name,
            "load": kind,
            "object_key": source.object_key,
            **({"watermark_column": source.watermark_column} if source.watermark_column else {}),
        },
        tags={"source_kind": "postgres"},
        check_specs=check_specs(key, source, partitions_def, from_postgres=True),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: PostgresPartitionConfig,
        source_db: PostgresResource,
        platform_db: PostgresResource,
        s3: S3Resource,
        storage_layers: StorageLayersResource,
    ) -> dg.MaterializeResult:
        services = run_services(source_db, platform_db, s3, storage_layers)
        rebuild = config.rebuild or context.run.tags.get(REBUILD_TAG, "").lower() == "true"
        with retry_transient_errors(context):
            outcome = load_partition(
                spec, context.partition_key, services, rebuild=rebuild, dagster_run_id=context.run.run_id,
                verify=lambda result: _checks(key, source, services, result),
            )
        main_checks, *reload_checks = outcome.verified
        for reloaded, checks in zip(outcome.reloads, reload_checks):
            _report_reload(context, key, source, reloaded, checks)
        for partition, error in outcome.reload_errors.items():
            context.log.error(f"{source.source_name}: reloading partition {partition} (late rows) failed: {error}")
        metadata = materialization_metadata(outcome.result)
        if outcome.reload_errors:
            metadata["late_reload_failures"] = dg.MetadataValue.json(outcome.reload_errors)
        return dg.MaterializeResult(metadata=metadata, check_results=main_checks)

    return _asset


def _checks(key: dg.AssetKey, source: PostgresSource, services: Services, result: TableLoadResult) -> list:
    stored = StoredObject(result.object_key, result.checksum, result.row_count)
    return run_checks(key, source, services, [stored], load_result=result)


def _report_reload(
    context: dg.AssetExecutionContext, key: dg.AssetKey, source: PostgresSource, result: TableLoadResult,
    checks: list[dg.AssetCheckResult],
) -> None:
    """A partition loaded again because of late rows: its materialization and its checks."""
    partition = result.partition_key
    context.log.info(f"{source.source_name}: partition {partition} received late rows and was loaded again")
    context.log_event(
        dg.AssetMaterialization(
            asset_key=key,
            partition=partition,
            description="loaded again: rows were committed into its range after its last load",
            metadata=materialization_metadata(result),
        )
    )
    for check in checks:
        context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=key, check_name=check.check_name, passed=check.passed, metadata=check.metadata,
                severity=check.severity, partition=partition,
            )
        )


def materialization_metadata(result: TableLoadResult) -> dict[str, Any]:
    """What a data engineer checks first about a load."""
    metadata: dict[str, Any] = {
        "uri": dg.MetadataValue.url(result.uri),
        "row_count": dg.MetadataValue.int(result.row_count),
        "dagster/row_count": dg.MetadataValue.int(result.row_count),
        "file_size_bytes": dg.MetadataValue.int(result.file_size_bytes),
        "checksum_md5": result.checksum,
        "tracking_run_id": dg.MetadataValue.int(result.run_id),
        "load_mode": result.load_mode,
    }
    if result.merged:
        metadata["rows_from_source"] = dg.MetadataValue.int(result.rows_from_source)
        metadata["rows_kept"] = dg.MetadataValue.int(result.rows_kept)
    if result.rebuild:
        metadata["rebuild"] = dg.MetadataValue.bool(True)
    if result.watermark_reset:
        metadata["watermark_reset"] = dg.MetadataValue.json(result.watermark_reset)
    if result.warnings:
        metadata["warnings"] = dg.MetadataValue.md("\n".join(f"- {w}" for w in result.warnings))
    if result.watermark_column:
        metadata["watermark_column"] = result.watermark_column
        metadata["watermark_before"] = result.watermark_before or "(none)"
        metadata["watermark_after"] = result.watermark_after or "(none)"
    if result.extract_range:
        metadata["extract_range"] = dg.MetadataValue.json(result.extract_range)
    if result.deleted_rows is not None:
        metadata["deleted_rows"] = dg.MetadataValue.int(result.deleted_rows)
        if result.deletes_uri:
            metadata["deletes_uri"] = dg.MetadataValue.url(result.deletes_uri)
    metadata.update(schema_change_metadata(result.schema_changes))
    columns = result.schema["columns"]
    metadata["dagster/column_schema"] = dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c["name"],
                type=c["source_type"],
                description=f"Parquet {c['arrow_type']}",
                constraints=dg.TableColumnConstraints(nullable=c["nullable"]),
            )
            for c in columns
        ]
    )
    if result.preview:
        metadata["preview"] = dg.MetadataValue.md(markdown_table(result.preview, columns))
    return metadata

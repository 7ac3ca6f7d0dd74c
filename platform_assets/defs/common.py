"""What the Dagster wiring of both pipelines shares: services from resources, retries, metadata."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from platform_assets.ingestion.errors import TransientError
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.sink.parquet import PREVIEW_ROWS
from platform_assets.ingestion.sink.schema_evolution import SchemaChanges
from platform_resources.object_store_resources import (
    StorageLayersResource,
    object_store,
)
from platform_resources.postgres import PostgresResource


def run_services(
    source_db: PostgresResource, platform_db: PostgresResource, s3: S3Resource, storage_layers: StorageLayersResource
) -> Services:
    """The engine's ``Services`` from the Dagster resources, with the tracking tables
    bootstrapped: the first step of every run and sensor tick."""
    services = Services(
        source=source_db.settings(),
        platform=platform_db.settings(),
        store=object_store(s3),
        bronze_bucket=storage_layers.bronze_bucket,
    )
    services.bootstrap()
    return services


MAX_RETRIES = 3
RETRY_BASE_SECONDS = 10


@contextmanager
def retry_transient_errors(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Ask Dagster to retry the step, with exponential backoff, when a service was unreachable.

    Errors in the data or the configuration are not retried: they would fail again.
    """
    try:
        yield
    except TransientError as e:
        raise dg.RetryRequested(
            max_retries=MAX_RETRIES, seconds_to_wait=RETRY_BASE_SECONDS * 2**context.retry_number
        ) from e


def schema_change_metadata(changes: dict[str, Any] | None) -> dict[str, Any]:
    """Schema changes against the last successful load, with a warning when columns went away or changed."""
    if not changes or not any(changes.values()):
        return {}
    metadata: dict[str, Any] = {"schema_changes": dg.MetadataValue.json(changes)}
    if changes.get("removed") or changes.get("type_changed") or changes.get("nullability_changed"):
        metadata["schema_warning"] = dg.MetadataValue.md(
            "**Schema changed**: " + SchemaChanges(**changes).describe()
            + ". Readers of this partition see the change in the Parquet footer "
            "(`data_platform.schema_changes`)."
        )
    return metadata


def markdown_table(rows: list[dict[str, Any]], columns: list[dict[str, Any]]) -> str:
    names = [c["name"] for c in columns]

    def cell(value: Any) -> str:
        text = "NULL" if value is None else str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= 60 else text[:57] + "..."

    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(cell(row.get(n)) for n in names) + " |" for row in rows[:PREVIEW_ROWS]]
    return "\n".join(lines)

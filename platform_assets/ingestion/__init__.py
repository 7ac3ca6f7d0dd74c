"""Ingestion engine: plain Python, usable with or without Dagster."""

from platform_assets.ingestion.errors import (
    IngestionError,
    SchemaContractError,
    SchemaDetectionError,
    SourceBusyError,
    TransientError,
    WatermarkError,
)

__all__ = ["IngestionError", "SchemaContractError", "SchemaDetectionError", "SourceBusyError", "TransientError",
           "WatermarkError"]

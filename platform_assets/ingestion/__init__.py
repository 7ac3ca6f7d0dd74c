"""Ingestion engine: plain Python, usable with or without Dagster."""

from platform_assets.ingestion.errors import (
    IngestionError,
    SchemaDetectionError,
    SourceBusyError,
    WatermarkError,
)

__all__ = ["IngestionError", "SchemaDetectionError", "SourceBusyError", "WatermarkError"]

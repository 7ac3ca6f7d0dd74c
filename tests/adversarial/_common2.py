"""Shared pieces of the second adversarial pass (tests/adversarial)."""

from __future__ import annotations

from platform_assets.registry import PostgresSource

ORDERS = PostgresSource(name="orders", table="orders", load="incremental", watermark_column="updated_at",
                        watermark_type="timestamp", allow_empty=True)
EVENTS = PostgresSource(name="events", table="events", load="incremental", watermark_column="id",
                        watermark_type="integer", allow_empty=True)

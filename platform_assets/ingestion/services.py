"""Where a load reads from and writes to: source and platform databases, the object store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_assets.ingestion.errors import TransientError
from platform_assets.ingestion.tracking import migrations
from platform_resources.config import (
    EngineSettings,
    ObjectStoreSettings,
    PostgresSettings,
)
from platform_resources.object_store import ObjectStore


@dataclass
class Services:
    """Where a load reads from and writes to."""

    source: PostgresSettings
    platform: PostgresSettings
    store: ObjectStore
    bronze_bucket: str = "bronze"
    lock_wait_seconds: float = EngineSettings.lock_wait_seconds
    work_dir: Path | None = None
    _bootstrapped: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def from_env(cls) -> Services:
        store_settings = ObjectStoreSettings.from_env()
        return cls(
            source=PostgresSettings.from_env(),
            platform=PostgresSettings.from_env(prefix="PLATFORM_"),
            store=ObjectStore(store_settings.client(), store_settings.endpoint_url),
            bronze_bucket=store_settings.buckets["bronze"],
            lock_wait_seconds=EngineSettings.from_env().lock_wait_seconds,
        )

    @contextmanager
    def platform_connection(self) -> Iterator[Any]:
        """An autocommit connection to the platform (tracking) database, closed after the block.

        TransientError when the database cannot be reached. Opening it runs no DDL:
        the tables come from ``bootstrap``.
        """
        try:
            conn = self.platform.connect(application_name="data_platform:tracking")
        except Exception as e:
            raise TransientError(
                f"cannot connect to the platform database {self.platform.describe()}: "
                f"{str(e).strip()}; check that PostgreSQL is running and the PG* settings"
            ) from e
        try:
            conn.autocommit = True
            yield conn
        finally:
            conn.close()

    def bootstrap(self) -> list[str]:
        """Create or upgrade the tracking tables (``sql/``); once per ``Services``.

        The first step of every run, sensor tick and guide function, and the CLI's
        ``bootstrap`` command. Returns the DDL files applied now.
        """
        if self._bootstrapped:
            return []
        with self.platform_connection() as conn:
            applied = migrations.bootstrap(conn)
        self._bootstrapped = True
        return applied

    def uri(self, object_key: str) -> str:
        return f"s3://{self.bronze_bucket}/{object_key}"

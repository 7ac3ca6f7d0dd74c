"""Where a load reads from and writes to: source and platform databases, the object store."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_assets.ingestion import tracking
from platform_assets.ingestion.errors import TransientError
from platform_resources.config import ObjectStoreSettings, PostgresSettings
from platform_resources.object_store import ObjectStore

DEFAULT_LOCK_WAIT_SECONDS = 1800.0


@dataclass
class Services:
    """Where a load reads from and writes to."""

    source: PostgresSettings
    platform: PostgresSettings
    store: ObjectStore
    bronze_bucket: str = "bronze"
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS
    work_dir: Path | None = None
    _bootstrapped: set[str] = field(default_factory=set)

    @classmethod
    def from_env(cls) -> Services:
        store_settings = ObjectStoreSettings.from_env()
        return cls(
            source=PostgresSettings.from_env(),
            platform=PostgresSettings.from_env(prefix="PLATFORM_"),
            store=ObjectStore(store_settings.client(), store_settings.endpoint_url),
            bronze_bucket=store_settings.buckets["bronze"],
            lock_wait_seconds=float(
                os.environ.get("INGESTION_LOCK_WAIT_SECONDS", DEFAULT_LOCK_WAIT_SECONDS)
            ),
        )

    def connect_platform(self) -> Any:
        try:
            conn = self.platform.connect(application_name="data_platform:tracking")
        except Exception as e:
            raise TransientError(
                f"cannot connect to the platform database {self.platform.describe()}: "
                f"{str(e).strip()}; check that PostgreSQL is running and the PG* settings"
            ) from e
        conn.autocommit = True
        key = self.platform.describe()
        if key not in self._bootstrapped:
            tracking.bootstrap(conn)
            self._bootstrapped.add(key)
        return conn

    def uri(self, object_key: str) -> str:
        return f"s3://{self.bronze_bucket}/{object_key}"

"""Connection settings read from the environment, shared by Dagster and plain Python use.

This is the one module that reads the platform's environment variables:

- PostgreSQL: the standard libpq variables (``PGHOST``, ``PGPORT``, ``PGUSER``,
  ``PGPASSWORD``, ``PGDATABASE``); the platform (tracking) database can be pointed
  elsewhere with the same names prefixed by ``PLATFORM_``.
- The object store: ``MINIO_ENDPOINT``, ``MINIO_ACCESS_KEY``, ``MINIO_SECRET_KEY``,
  ``MINIO_REGION`` and the layer buckets ``BRONZE_BUCKET``, ``SILVER_BUCKET``, ``GOLD_BUCKET``.
- The engine: ``INGESTION_LOCK_WAIT_SECONDS`` (how long a run waits for its source's
  lock), ``INGESTION_PARALLEL_STREAMS`` (COPY streams per large table, default: the
  cores, 2 to 4), ``INGESTION_COPY_CLIENT`` (``psql``, the default, or ``psycopg2``).
- ``SOURCE_REGISTRY``: the registry file (default ``platform_assets/sources.yaml``).
- Alerts: ``ALERT_WEBHOOK_URL`` (a secret: a Slack-compatible incoming webhook; unset, no
  alert is sent), ``DAGSTER_UI_URL`` (the UI's base URL, for links to runs),
  ``ALERT_RETRY_SECONDS`` (how long an undelivered alert is retried, default 3600).

Each is read when it is used, never at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2

DEFAULT_PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres", "dbname": "postgres"}
OBJECT_STORE_VARIABLES = {
    "endpoint_url": "MINIO_ENDPOINT", "access_key": "MINIO_ACCESS_KEY", "secret_key": "MINIO_SECRET_KEY",
}
DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
DEFAULT_BUCKETS = {"bronze": "bronze", "silver": "silver", "gold": "gold"}
CONNECT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class PostgresSettings:
    host: str = DEFAULT_PG["host"]
    port: int = int(DEFAULT_PG["port"])
    user: str = DEFAULT_PG["user"]
    password: str | None = field(default=None, repr=False)
    dbname: str = DEFAULT_PG["dbname"]

    @classmethod
    def from_env(cls, prefix: str = "", env: Mapping[str, str] | None = None) -> PostgresSettings:
        """Settings from ``{prefix}PGHOST`` etc.; a prefixed set falls back to the plain one."""
        env = os.environ if env is None else env

        def read(name: str) -> str | None:
            return env.get(f"{prefix}{name}") or env.get(name)

        return cls(
            host=read("PGHOST") or DEFAULT_PG["host"],
            port=int(read("PGPORT") or DEFAULT_PG["port"]),
            user=read("PGUSER") or DEFAULT_PG["user"],
            password=read("PGPASSWORD"),
            dbname=read("PGDATABASE") or DEFAULT_PG["dbname"],
        )

    def connect(self, application_name: str = "data_platform") -> Any:
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.dbname,
            application_name=application_name,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            # Text arrives as UTF-8 whatever the database's encoding (PostgreSQL converts).
            client_encoding="UTF8",
        )

    def describe(self) -> str:
        """Where this points, without the password (safe for messages)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"


@dataclass(frozen=True)
class ObjectStoreSettings:
    endpoint_url: str = DEFAULT_ENDPOINT
    access_key: str = field(default="minioadmin", repr=False)
    secret_key: str = field(default="minioadmin", repr=False)
    region: str = "us-east-1"
    buckets: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_BUCKETS))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ObjectStoreSettings:
        env = os.environ if env is None else env
        return cls(
            endpoint_url=env.get(OBJECT_STORE_VARIABLES["endpoint_url"]) or DEFAULT_ENDPOINT,
            access_key=env.get(OBJECT_STORE_VARIABLES["access_key"]) or "minioadmin",
            secret_key=env.get(OBJECT_STORE_VARIABLES["secret_key"]) or "minioadmin",
            region=env.get("MINIO_REGION") or "us-east-1",
            buckets={
                layer: env.get(f"{layer.upper()}_BUCKET") or default
                for layer, default in DEFAULT_BUCKETS.items()
            },
        )

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
            ),
        )


@dataclass(frozen=True)
class EngineSettings:
    lock_wait_seconds: float = 1800.0
    parallel_streams: int | None = None
    """None: one per core, 2 to 4."""
    copy_client: str = "psql"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EngineSettings:
        env = os.environ if env is None else env
        streams = env.get("INGESTION_PARALLEL_STREAMS")
        return cls(
            lock_wait_seconds=float(env.get("INGESTION_LOCK_WAIT_SECONDS") or cls.lock_wait_seconds),
            parallel_streams=max(1, int(streams)) if streams else None,
            copy_client=env.get("INGESTION_COPY_CLIENT") or cls.copy_client,
        )


ALERT_WEBHOOK_VARIABLE = "ALERT_WEBHOOK_URL"
UI_URL_VARIABLE = "DAGSTER_UI_URL"
SECRET_VARIABLES = (
    "PGPASSWORD", "PLATFORM_PGPASSWORD", "MINIO_SECRET_KEY", "DAGSTER_PG_PASSWORD",
    ALERT_WEBHOOK_VARIABLE,
)


@dataclass(frozen=True)
class AlertSettings:
    webhook_url: str | None = field(default=None, repr=False)
    ui_base_url: str | None = None
    retry_seconds: float = 3600.0
    """How long an alert the webhook did not take is tried again before it is dropped."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AlertSettings:
        env = os.environ if env is None else env
        return cls(
            webhook_url=env.get(ALERT_WEBHOOK_VARIABLE) or None,
            ui_base_url=(env.get(UI_URL_VARIABLE) or "").rstrip("/") or None,
            retry_seconds=float(env.get("ALERT_RETRY_SECONDS") or cls.retry_seconds),
        )


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """The values of the platform's secrets in the environment, to keep them out of messages."""
    env = os.environ if env is None else env
    return [env[name] for name in SECRET_VARIABLES if env.get(name)]


def is_set(variable: str) -> bool:
    """Whether the environment sets ``variable`` (a secret is then an EnvVar, read at run time)."""
    return bool(os.environ.get(variable))


def registry_file(default: Path) -> Path:
    return Path(os.environ.get("SOURCE_REGISTRY") or default)

"""Shared fixtures: a fresh PostgreSQL database per test and a real S3 server on loopback."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import psycopg2
import pytest

from platform_resources.config import ObjectStoreSettings, PostgresSettings

ADMIN = PostgresSettings.from_env()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server over HTTP on 127.0.0.1 (talked to like MinIO)."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def store_settings(s3_endpoint: str) -> ObjectStoreSettings:
    suffix = uuid.uuid4().hex[:10]
    return ObjectStoreSettings(
        endpoint_url=s3_endpoint,
        access_key="test-access",
        secret_key="test-secret",
        buckets={layer: f"{layer}-{suffix}" for layer in ("bronze", "silver", "gold")},
    )


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> Iterator[PostgresSettings]:
    """A database of its own for this test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = ADMIN.connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    settings = PostgresSettings(
        host=ADMIN.host, port=ADMIN.port, user=ADMIN.user, password=ADMIN.password, dbname=name
    )
    try:
        yield settings
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def database_with_encoding(encoding: str) -> Iterator[PostgresSettings]:
    """A database of its own in ``encoding`` (C collation), dropped afterwards: ``yield from``
    it in a fixture."""
    name = f"t_{encoding.lower()}_{uuid.uuid4().hex[:10]}"
    admin = ADMIN.connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE \"{name}\" ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    try:
        yield PostgresSettings(host=ADMIN.host, port=ADMIN.port, user=ADMIN.user, password=ADMIN.password, dbname=name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg_conn(pg: PostgresSettings) -> Iterator[psycopg2.extensions.connection]:
    conn = pg.connect()
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def services(pg: PostgresSettings, store_settings: ObjectStoreSettings):
    from platform_assets.ingestion.services import Services
    from platform_resources.object_store import ObjectStore

    services = Services(
        source=pg,
        platform=pg,
        store=ObjectStore(store_settings.client(), store_settings.endpoint_url),
        bronze_bucket=store_settings.buckets["bronze"],
        lock_wait_seconds=30,
    )
    services.bootstrap()  # what a run's first step does; engine functions called directly need it
    return services

"""Fixtures for the unit tests: one shared PostgreSQL connection, used only to render
``psycopg2.sql`` composables and to evaluate small expressions (no database is created)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql

from platform_resources.config import PostgresSettings

SETTINGS = PostgresSettings.from_env()


@pytest.fixture(scope="session")
def unit_conn() -> Iterator[Any]:
    """One autocommit connection to the local PostgreSQL for the whole session."""
    try:
        conn = SETTINGS.connect(application_name="data_platform_unit_tests")
    except psycopg2.OperationalError as e:  # pragma: no cover - the server is expected to run
        message = f"local PostgreSQL not reachable at {SETTINGS.describe()}: {e}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (in CI a test that needs it fails rather than skips)")
        pytest.skip(message)
    conn.autocommit = True
    with conn.cursor() as cur:  # never hang the suite on a lock
        cur.execute("SET lock_timeout = '5s'; SET statement_timeout = '10s'")
    yield conn
    conn.close()


@pytest.fixture
def render(unit_conn: Any) -> Callable[[sql.Composable], str]:
    """Render a composable the way the engine does: ``as_string`` on the connection.

    Values are ``sql.Literal``s quoted by psycopg2's adapters and there are no
    placeholders, so the text is exactly what is sent to the server (never ``mogrify``)."""

    def _render(composed: sql.Composable) -> str:
        with unit_conn.cursor() as cur:
            return composed.as_string(cur)

    return _render


@pytest.fixture
def fetch(unit_conn: Any) -> Callable[..., list[tuple]]:
    def _fetch(query: Any, params: Any = None) -> list[tuple]:
        """Without ``params`` the statement is sent as is (``%`` untouched), as the engine
        sends rendered extract queries."""
        with unit_conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()

    return _fetch


@pytest.fixture
def second_conn(scratch_table: str) -> Iterator[Any]:
    """A second session, for tests that need a concurrent open transaction.

    Depends on ``scratch_table`` so it is closed (its locks released) before the table
    is dropped."""
    conn = SETTINGS.connect(application_name="data_platform_unit_tests")
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def scratch_table(unit_conn: Any) -> Iterator[str]:
    """A real (not temporary) table visible to other sessions, dropped afterwards."""
    name = f"unit_scratch_{uuid.uuid4().hex[:12]}"
    with unit_conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE public.{} (id int)").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with unit_conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS public.{}").format(sql.Identifier(name)))

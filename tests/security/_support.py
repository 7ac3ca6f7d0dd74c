"""Shared helpers of the security suite: canaries, tracking rows, bucket listings, log capture."""

from __future__ import annotations

import io
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from psycopg2 import sql

from tests.helpers import query
from tests.helpers import tracking_runs as runs  # noqa: F401 (the suite imports it from here)

T = TypeVar("T")

DS = "2024-01-01"


# --------------------------------------------------------------------------- canaries

CANARY_DDL = """
CREATE TABLE canary (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO canary VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma');
CREATE TABLE canary_two (id int);
INSERT INTO canary_two VALUES (10), (20);
CREATE SCHEMA canary_schema;
CREATE TABLE canary_schema.inner_canary (id int);
INSERT INTO canary_schema.inner_canary VALUES (7);
CREATE SEQUENCE canary_seq;
CREATE FUNCTION canary_insert() RETURNS int LANGUAGE plpgsql AS $$
BEGIN INSERT INTO canary VALUES (99, 'side effect'); RETURN 1; END $$;
"""


def create_canaries(conn: Any) -> None:
    query(conn, CANARY_DDL)


def database_state(conn: Any) -> dict[str, Any]:
    """Everything an injected statement could change in the test database."""
    relations = query(
        conn,
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
        "AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%' "
        "AND n.nspname <> 'data_platform' ORDER BY 1, 2",
    )
    state: dict[str, Any] = {
        "relations": relations,
        "schemas": query(
            conn,
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%%' AND nspname <> 'data_platform' ORDER BY 1",
        ),
        "functions": query(
            conn,
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public' ORDER BY 1",
        ),
        "large_objects": query(conn, "SELECT count(*) FROM pg_largeobject_metadata"),
    }
    for schema, name, kind in relations:
        ident = sql.Identifier(schema, name).as_string(conn)
        if kind == "r":
            state[f"rows:{schema}.{name}"] = sorted(query(conn, f"SELECT * FROM {ident}"), key=repr)
        elif kind == "S":
            state[f"seq:{schema}.{name}"] = query(conn, f"SELECT last_value, is_called FROM {ident}")
    return state


# --------------------------------------------------------------------------- tracking rows


def tracking_exists(conn: Any) -> bool:
    return query(conn, "SELECT to_regclass('data_platform.ingestion_metadata') IS NOT NULL")[0][0]




def tracking_text(conn: Any) -> str:
    """Every row of every table in data_platform, as JSON text (for grepping)."""
    if not tracking_exists(conn):
        return ""
    tables = query(
        conn,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'data_platform' AND c.relkind = 'r' ORDER BY 1",
    )
    parts = []
    for (table,) in tables:
        ident = sql.Identifier("data_platform", table).as_string(conn)
        parts.extend(r[0] for r in query(conn, f"SELECT row_to_json(t)::text FROM {ident} t"))
    return "\n".join(parts)


# --------------------------------------------------------------------------- object store


def bucket_keys(services: Any) -> list[str]:
    services.store.ensure_bucket(services.bronze_bucket)
    return sorted(o["Key"] for o in services.store.list_objects(services.bronze_bucket))


def object_bytes(services: Any, key: str) -> bytes:
    return services.store.client.get_object(Bucket=services.bronze_bucket, Key=key)["Body"].read()


# --------------------------------------------------------------------------- misc


def closed_port() -> int:
    """A loopback port nothing listens on (bound, released, never listened)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def captured_logs(level: int = logging.DEBUG) -> Iterator[io.StringIO]:
    """Every log record of every logger at ``level`` and above, formatted with its arguments.

    (The suite runs with ``-p no:logging``, so pytest's caplog is not available.)
    """
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def within(seconds: float, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a daemon thread; AssertionError if it does not return in time (a hang).

    A daemon thread, so that a conversion that really hangs cannot keep pytest from exiting.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as e:  # handed to the caller below
            outcome["error"] = e

    worker = threading.Thread(target=run, name="fuzz-guard", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise AssertionError(f"did not finish within {seconds}s (hang?)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def check_each(cases: Any, check: Callable[[Any], None]) -> None:
    """Run ``check`` for every case (sharing one database); report every failing case at once."""
    problems = []
    for case in cases:
        try:
            check(case)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001 - pytest.raises' Failed is a BaseException
            problems.append(f"{case!r}: {type(e).__name__}: {e}")
    assert not problems, "\n".join(problems)

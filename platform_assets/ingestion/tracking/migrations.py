"""The numbered DDL files in ``sql/``, applied once each (``bootstrap``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

SQL_DIR = Path(__file__).resolve().parents[3] / "sql"
BOOTSTRAP_LOCK_KEY = "data_platform:bootstrap"


def sql_files() -> list[Path]:
    return sorted(SQL_DIR.glob("[0-9][0-9][0-9]_*.sql"))


def bootstrap(conn: Any) -> list[str]:
    """Apply the numbered DDL files not applied yet; returns the names applied.

    Serialised by an advisory lock so parallel runs can bootstrap at once.
    """
    applied: list[str] = []
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        try:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (BOOTSTRAP_LOCK_KEY,))
            cur.execute(
                "CREATE SCHEMA IF NOT EXISTS data_platform;"
                "CREATE TABLE IF NOT EXISTS data_platform.schema_migrations ("
                " filename TEXT PRIMARY KEY, sha256 TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT filename, sha256 FROM data_platform.schema_migrations")
            done = dict(cur.fetchall())
            for path in sql_files():
                text = path.read_text()
                digest = hashlib.sha256(text.encode()).hexdigest()
                if done.get(path.name) == digest:
                    continue
                cur.execute(text)
                cur.execute(
                    "INSERT INTO data_platform.schema_migrations (filename, sha256) VALUES (%s, %s) "
                    "ON CONFLICT (filename) DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = now()",
                    (path.name, digest),
                )
                applied.append(path.name)
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise
    return applied

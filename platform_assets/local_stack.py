"""Embedded defaults for running the platform on one machine with nothing configured.

- Object store: when ``MINIO_ENDPOINT`` is not set, a ``localbucket`` S3 server on
  127.0.0.1:9000 keeps the buckets as plain folders under ``.local/s3``.
- PostgreSQL: when no ``PG*`` variable is set and nothing listens on
  127.0.0.1:5432, an embedded server from the ``pgserver`` package (extra
  ``[embedded]``) keeps its data under ``.local/pgdata``. Run as root, pgserver
  creates a system user to own that server.

The chosen settings are written to ``.local/env`` so that ``dagster dev`` (see the
Makefile) uses the same services.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

PROJECT_DIR = Path(__file__).resolve().parents[1]
LOCAL_DIR = PROJECT_DIR / ".local"
ENV_FILE = LOCAL_DIR / "env"
LOCAL_INSTANCE_CONFIG = (
    "# Local instance (SQLite under this folder); deploy/dagster.yaml is the production one.\n"
    "telemetry:\n  enabled: false\n"
)
PG_VARIABLES = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")


class LocalStackError(RuntimeError):
    """An embedded service could not be started."""


def listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_object_store() -> dict[str, str]:
    """Point at MINIO_ENDPOINT, or start the embedded localbucket server."""
    if os.environ.get("MINIO_ENDPOINT"):
        return {}
    endpoint = "http://127.0.0.1:9000"
    if not listening("127.0.0.1", 9000):
        executable = shutil.which("localbucket") or str(Path(sys.executable).with_name("localbucket"))
        data = LOCAL_DIR / "s3"
        data.mkdir(parents=True, exist_ok=True)
        log = (LOCAL_DIR / "localbucket.log").open("ab")
        process = subprocess.Popen(
            [executable, "--host", "127.0.0.1", "--port", "9000", str(data)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        (LOCAL_DIR / "localbucket.pid").write_text(str(process.pid))
        _wait_for("127.0.0.1", 9000, "the embedded object store (localbucket)", LOCAL_DIR / "localbucket.log")
    return {"MINIO_ENDPOINT": endpoint}


def ensure_postgres() -> dict[str, str]:
    """Use the configured PostgreSQL, the one on 127.0.0.1:5432, or start an embedded one."""
    if any(os.environ.get(name) for name in PG_VARIABLES) or listening("127.0.0.1", 5432):
        return {}
    try:
        import pgserver
    except ImportError as e:
        raise LocalStackError(
            "no PostgreSQL is configured (PG* variables) or listening on 127.0.0.1:5432, and the "
            "embedded one needs the 'pgserver' package: pip install -e '.[embedded]'"
        ) from e
    data = LOCAL_DIR / "pgdata"
    data.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data, cleanup_mode=None)
    uri = urlparse(server.get_uri())
    socket_dir = dict(p.split("=", 1) for p in uri.query.split("&") if "=" in p).get("host", str(data))
    return {"PGHOST": socket_dir, "PGUSER": uri.username or "postgres", "PGDATABASE": "postgres"}


def start() -> dict[str, str]:
    """Start what is missing, export it to this process and ``.local/env``."""
    LOCAL_DIR.mkdir(parents=True, exist_ok=True)
    settings = {**ensure_postgres(), **ensure_object_store()}
    os.environ.update(settings)
    home = LOCAL_DIR / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    instance_config = home / "dagster.yaml"
    if not instance_config.exists():
        instance_config.write_text(LOCAL_INSTANCE_CONFIG)
    os.environ.setdefault("DAGSTER_HOME", str(home))
    settings.setdefault("DAGSTER_HOME", os.environ["DAGSTER_HOME"])
    ENV_FILE.write_text("".join(f"export {k}={v}\n" for k, v in sorted(settings.items())))
    return settings


def _wait_for(host: str, port: int, what: str, log: Path, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if listening(host, port):
            return
        time.sleep(0.1)
    raise LocalStackError(f"{what} did not start on {host}:{port}; see {log}")

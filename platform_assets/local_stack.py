"""Embedded defaults for running the platform on one machine with nothing configured.

- Object store: when ``MINIO_ENDPOINT`` is not set, a ``localbucket`` S3 server on
  127.0.0.1:``LOCAL_S3_PORT`` (default 9000) keeps the buckets as plain folders under
  ``.local/s3``. A server on that port that this project did not start is never used:
  the start fails with one line naming the port and the setting to change.
- PostgreSQL: when no ``PG*`` variable is set and nothing listens on
  127.0.0.1:5432, an embedded server from the ``pgserver`` package (extra
  ``[embedded]``) keeps its data under ``.local/pgdata``. Run as root, pgserver
  creates a system user to own that server.

What was started is recorded under ``.local`` (``localbucket.pid`` and ``.port``,
``pgserver.started``) so that ``stop()`` (``make stop-local``) stops exactly that. The
chosen settings are also written to ``.local/env`` (for a shell to source); the
commands themselves read the settings file (see ``platform_resources.config``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from platform_resources.config import LocalSettings, ObjectStoreSettings, setting

PROJECT_DIR = Path(__file__).resolve().parents[1]
LOCAL_INSTANCE_CONFIG = (
    "# Local instance (SQLite under this folder); deploy/dagster.yaml is the production one.\n"
    "telemetry:\n  enabled: false\n"
)
PG_VARIABLES = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")


class LocalStackError(RuntimeError):
    """An embedded service could not be started, or a port is taken (one line, for the user)."""


def local_root() -> Path:
    """Where the embedded services keep their state: ``LOCAL_DIR`` (default ``.local``)."""
    return Path(setting("LOCAL_DIR") or PROJECT_DIR / ".local")


class _Paths:
    """Where the embedded services keep their state: ``LOCAL_DIR`` (default ``.local``)."""

    def __init__(self) -> None:
        self.root = local_root()
        self.env = self.root / "env"
        self.localbucket_pid = self.root / "localbucket.pid"
        self.localbucket_port = self.root / "localbucket.port"
        self.localbucket_log = self.root / "localbucket.log"
        self.pgserver_started = self.root / "pgserver.started"
        self.pgdata = self.root / "pgdata"


def listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (nothing else listens there)."""
    if listening(host, port):
        return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _alive(pid: int, name: str) -> bool:
    """Whether process ``pid`` runs and (where /proc tells) its command line names ``name``."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            return name in cmdline.read_bytes().decode(errors="replace")
        except OSError:
            return False
    return True


def _our_localbucket() -> tuple[int, int] | None:
    """(pid, port) of the localbucket this project started, if it still runs."""
    paths = _Paths()
    try:
        pid = int(paths.localbucket_pid.read_text().split()[0])
        port = int(paths.localbucket_port.read_text().split()[0]) if paths.localbucket_port.exists() else 9000
    except (OSError, ValueError, IndexError):
        return None
    return (pid, port) if _alive(pid, "localbucket") else None


def ensure_object_store() -> dict[str, str]:
    """Point at MINIO_ENDPOINT, or use/start the embedded localbucket server on LOCAL_S3_PORT."""
    paths = _Paths()
    if setting("MINIO_ENDPOINT"):
        return {}
    port = LocalSettings.from_env().object_store_port
    endpoint = f"http://127.0.0.1:{port}"
    ours = _our_localbucket()
    if ours and ours[1] == port:
        return {"MINIO_ENDPOINT": endpoint}  # check_object_store() then asks it
    if ours:  # ours, on another port: LOCAL_S3_PORT changed since it started
        raise LocalStackError(
            f"the embedded object store started earlier runs on port {ours[1]}, not LOCAL_S3_PORT={port}: "
            f"run make stop-local first, or set LOCAL_S3_PORT={ours[1]}"
        )
    if not port_free("127.0.0.1", port):
        raise LocalStackError(
            f"127.0.0.1:{port} is in use by a program this project did not start, so the embedded "
            f"object store cannot listen there: set LOCAL_S3_PORT to a free port in local.env "
            f"(or MINIO_ENDPOINT to use an S3 server of your own)"
        )
    executable = shutil.which("localbucket") or str(Path(sys.executable).with_name("localbucket"))
    data = paths.root / "s3"
    data.mkdir(parents=True, exist_ok=True)
    log_path = paths.localbucket_log
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [executable, "--host", "127.0.0.1", "--port", str(port), str(data)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    paths.localbucket_pid.write_text(str(process.pid))
    paths.localbucket_port.write_text(str(port))
    _wait_for("127.0.0.1", port, "the embedded object store (localbucket)", log_path, process)
    return {"MINIO_ENDPOINT": endpoint}


def check_object_store() -> None:
    """Fail fast, in one line, when the configured object store does not answer as S3."""
    from platform_resources.object_store import probe_s3

    store = ObjectStoreSettings.from_env()
    problem = probe_s3(store.endpoint_url, store.access_key, store.secret_key, store.region)
    if problem:
        raise LocalStackError(f"object store: {problem}; set MINIO_ENDPOINT (or LOCAL_S3_PORT) in local.env")


def ensure_postgres() -> dict[str, str]:
    """Use the configured PostgreSQL, the one on 127.0.0.1:5432, or start an embedded one."""
    paths = _Paths()
    if any(setting(name) for name in PG_VARIABLES) or listening("127.0.0.1", 5432):
        return {}
    try:
        import pgserver
        from pgserver.utils import PostmasterInfo
    except ImportError as e:
        raise LocalStackError(
            "no PostgreSQL is configured (PG* variables) or listening on 127.0.0.1:5432, and the "
            "embedded one needs the 'pgserver' package: pip install -e '.[embedded]'"
        ) from e
    paths.pgdata.mkdir(parents=True, exist_ok=True)
    before = PostmasterInfo.read_from_pgdata(paths.pgdata)
    running_before = before is not None and before.is_running()
    server = pgserver.get_server(paths.pgdata, cleanup_mode=None)
    if not running_before:
        paths.pgserver_started.write_text(str(paths.pgdata))
    uri = urlparse(server.get_uri())
    socket_dir = dict(p.split("=", 1) for p in uri.query.split("&") if "=" in p).get("host", str(paths.pgdata))
    return {"PGHOST": socket_dir, "PGUSER": uri.username or "postgres", "PGDATABASE": "postgres"}


def start(object_store: bool = True) -> dict[str, str]:
    """Start what is missing, export it to this process and ``.local/env``.

    Returns the variables set for the embedded services (and ``DAGSTER_HOME``).
    ``object_store=False``: PostgreSQL only (commands that read the tracking tables).
    """
    paths = _Paths()
    paths.root.mkdir(parents=True, exist_ok=True)
    settings = {**ensure_postgres(), **(ensure_object_store() if object_store else {})}
    os.environ.update(settings)
    home = paths.root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    instance_config = home / "dagster.yaml"
    if not instance_config.exists():
        instance_config.write_text(LOCAL_INSTANCE_CONFIG)
    if not setting("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(home)
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)  # one of the user's: no config written
    settings["DAGSTER_HOME"] = os.environ["DAGSTER_HOME"]
    paths.env.write_text("".join(f"export {k}={v}\n" for k, v in sorted(settings.items())))
    return settings


def stop() -> list[str]:
    """Stop the embedded services this project started; returns what was done, one line each."""
    paths = _Paths()
    done = []
    ours = _our_localbucket()
    if ours:
        _stop_localbucket(ours[0])
        done.append(f"stopped the embedded object store (localbucket, pid {ours[0]}, port {ours[1]})")
    elif paths.localbucket_pid.exists():
        done.append("the embedded object store was not running (removed its stale pid file)")
    paths.localbucket_pid.unlink(missing_ok=True)
    paths.localbucket_port.unlink(missing_ok=True)
    if paths.pgserver_started.exists():
        done.append(_stop_pgserver())
    return done or ["nothing to stop: no embedded service started by this project is running"]


def _stop_localbucket(pid: int, seconds: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and _alive(pid, "localbucket"):
        time.sleep(0.1)
    if _alive(pid, "localbucket"):
        os.kill(pid, signal.SIGKILL)


def _stop_pgserver() -> str:
    """``pg_ctl stop`` of the embedded PostgreSQL (as the system user pgserver runs it as)."""
    paths = _Paths()
    try:
        from pgserver._commands import pg_ctl
        from pgserver.utils import PostmasterInfo
    except ImportError:
        return "the embedded PostgreSQL cannot be stopped: the 'pgserver' package is missing"
    info = PostmasterInfo.read_from_pgdata(paths.pgdata)
    if info is None or not info.is_running():
        paths.pgserver_started.unlink(missing_ok=True)
        return "the embedded PostgreSQL was not running"
    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=paths.pgdata, user=user, timeout=60)
    except Exception as e:  # noqa: BLE001 - reported; the marker stays for the next attempt
        return f"could not stop the embedded PostgreSQL ({paths.pgdata}): {e}"
    paths.pgserver_started.unlink(missing_ok=True)
    return f"stopped the embedded PostgreSQL (pg_ctl stop, pid {info.pid}, data {paths.pgdata})"


def _wait_for(host: str, port: int, what: str, log: Path, process: subprocess.Popen, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if listening(host, port):
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise LocalStackError(f"{what} did not start on {host}:{port}; see {log}")

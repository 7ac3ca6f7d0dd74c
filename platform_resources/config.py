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
- The local services of ``make demo`` / ``make dev``: ``UI_PORT`` (the Dagster UI,
  default 3000), ``LOCAL_S3_PORT`` (the embedded object store, default 9000) and
  ``LOCAL_DIR`` (where the embedded services keep their data and state, default
  ``.local`` in the project).

Each can also be given in the settings file: ``local.env`` in the project folder, or
the file named by ``SETTINGS_FILE``. Precedence: the process environment, then the
settings file, then the defaults (an empty environment value counts as unset). The
file is read once per process, the first time a setting is read (never at import),
and its values are copied into ``os.environ`` for the variables the environment does
not set, so that Dagster's ``EnvVar``s, ``psql`` and child processes see the same
values.
"""

from __future__ import annotations

import os
import re
import textwrap
import threading
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
PROJECT_DIR = Path(__file__).resolve().parents[1]
SETTINGS_FILE_VARIABLE = "SETTINGS_FILE"
DEFAULT_SETTINGS_FILE = PROJECT_DIR / "local.env"
DEFAULT_UI_PORT = 3000
DEFAULT_LOCAL_S3_PORT = 9000
# Relative paths in the settings file are relative to the file's folder.
PATH_SETTINGS = ("SOURCE_REGISTRY", "DAGSTER_HOME", "LOCAL_DIR")
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN")


class SettingsError(ValueError):
    """The settings file cannot be read or has a malformed line."""


def parse_settings(text: str, origin: str = "settings file") -> dict[str, str]:
    """``KEY=VALUE`` lines (a shell's syntax, without its expansions).

    Blank lines and ``#`` comments are skipped; ``export `` in front is allowed; a
    value may be wrapped in single or double quotes (taken literally, no escapes); an
    unquoted value ends at `` #``. Anything else is an error naming the line.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line)
        if not match:
            # the line is not echoed: it may hold a password
            raise SettingsError(f"{origin}, line {number}: expected KEY=VALUE (a name of letters, digits, _)")
        key, value = match.groups()
        if value[:1] in {"'", '"'}:
            quote = value[0]
            end = value.find(quote, 1)
            rest = value[end + 1:].strip() if end > 0 else None
            if end < 0 or (rest and not rest.startswith("#")):
                raise SettingsError(f"{origin}, line {number}: unbalanced {quote} in the value of {key}")
            value = value[1:end]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        values[key] = value
    return values


def merge_settings(environ: Mapping[str, str], file_values: Mapping[str, str]) -> dict[str, str]:
    """What the file adds to ``environ``: its values for the variables ``environ`` leaves unset."""
    return {k: v for k, v in file_values.items() if not environ.get(k)}


def settings_file(environ: Mapping[str, str] | None = None) -> Path:
    """The settings file: ``SETTINGS_FILE``, else ``local.env`` in the project folder."""
    environ = os.environ if environ is None else environ
    named = environ.get(SETTINGS_FILE_VARIABLE)
    return Path(named).expanduser() if named else DEFAULT_SETTINGS_FILE


_lock = threading.Lock()
_from_file: dict[str, str] | None = None


def load_settings_file() -> dict[str, str]:
    """Read the settings file once and copy into ``os.environ`` what the environment leaves unset.

    Returns the variables taken from the file. A missing default ``local.env`` is no
    error; a missing file named by ``SETTINGS_FILE`` is.
    """
    global _from_file
    with _lock:
        if _from_file is not None:
            return _from_file
        path = settings_file()
        if not path.is_file():
            if os.environ.get(SETTINGS_FILE_VARIABLE):
                raise SettingsError(f"{SETTINGS_FILE_VARIABLE}={path}: no such file")
            _from_file = {}
            return _from_file
        try:
            values = parse_settings(path.read_text(encoding="utf-8"), origin=str(path))
        except OSError as e:
            raise SettingsError(f"cannot read the settings file {path}: {e}") from e
        for key in PATH_SETTINGS:
            if values.get(key) and not Path(values[key]).expanduser().is_absolute():
                values[key] = str((path.parent / values[key]).resolve())
        added = merge_settings(os.environ, values)
        os.environ.update(added)
        _from_file = added
        return _from_file


def _environ() -> Mapping[str, str]:
    load_settings_file()
    return os.environ


def setting(name: str, default: str | None = None) -> str | None:
    """One variable: the environment, else the settings file, else ``default``."""
    return _environ().get(name) or default


def is_secret(name: str) -> bool:
    return any(word in name.upper() for word in SECRET_WORDS) or name == "ALERT_WEBHOOK_URL"


def mask(name: str, value: str) -> str:
    """``value`` safe to print: secrets as ``****``, a password inside a URL masked."""
    if is_secret(name):
        return "****" if value else ""
    return re.sub(r"(://[^/:@\s]+:)[^/@\s]+@", r"\1****@", value)


KNOWN_SETTINGS: dict[str, str] = {
    "PGHOST": DEFAULT_PG["host"], "PGPORT": DEFAULT_PG["port"], "PGUSER": DEFAULT_PG["user"],
    "PGPASSWORD": "", "PGDATABASE": DEFAULT_PG["dbname"],
    "PLATFORM_PGHOST": "(PGHOST)", "PLATFORM_PGPORT": "(PGPORT)", "PLATFORM_PGUSER": "(PGUSER)",
    "PLATFORM_PGPASSWORD": "(PGPASSWORD)", "PLATFORM_PGDATABASE": "(PGDATABASE)",
    "MINIO_ENDPOINT": "(embedded)", "MINIO_ACCESS_KEY": "minioadmin",
    "MINIO_SECRET_KEY": "minioadmin", "MINIO_REGION": "us-east-1",
    "BRONZE_BUCKET": "bronze", "SILVER_BUCKET": "silver", "GOLD_BUCKET": "gold",
    "SOURCE_REGISTRY": "platform_assets/sources.yaml",
    "INGESTION_LOCK_WAIT_SECONDS": "1800", "INGESTION_PARALLEL_STREAMS": "(cores, 2-4)",
    "INGESTION_COPY_CLIENT": "psql",
    "UI_PORT": str(DEFAULT_UI_PORT), "LOCAL_S3_PORT": str(DEFAULT_LOCAL_S3_PORT),
    "DAGSTER_HOME": ".local/dagster_home", "LOCAL_DIR": ".local",
    "ALERT_WEBHOOK_URL": "", "DAGSTER_UI_URL": "", "ALERT_RETRY_SECONDS": "3600",
}


def describe_settings(origins: Mapping[str, str] | None = None) -> list[str]:
    """One line per known setting: its value (secrets masked) and where it comes from.

    ``origins`` overrides the origin of some variables (e.g. ``embedded`` for those
    the local services set).
    """
    from_file = load_settings_file()
    path = settings_file()
    origins = origins or {}
    source = str(path) if path.is_file() else f"{path} (absent)"
    lines = [f"settings in effect (environment > {source} > defaults):"]
    defaults = []
    for name, default in KNOWN_SETTINGS.items():
        value = os.environ.get(name)
        if value:
            origin = origins.get(name) or ("settings file" if name in from_file else "environment")
            lines.append(f"  {name}={mask(name, value)}  ({origin})")
        else:
            shown = default if default.startswith("(") else mask(name, default)
            defaults.append(f"{name}={shown or '(unset)'}")
    lines.extend(textwrap.wrap("defaults: " + " ".join(defaults), width=110,
                               initial_indent="  ", subsequent_indent="    ", break_on_hyphens=False))
    return lines


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
        env = _environ() if env is None else env

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
        env = _environ() if env is None else env
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
        env = _environ() if env is None else env
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
        env = _environ() if env is None else env
        return cls(
            webhook_url=env.get(ALERT_WEBHOOK_VARIABLE) or None,
            ui_base_url=(env.get(UI_URL_VARIABLE) or "").rstrip("/") or None,
            retry_seconds=float(env.get("ALERT_RETRY_SECONDS") or cls.retry_seconds),
        )


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """The values of the platform's secrets in the environment, to keep them out of messages."""
    env = _environ() if env is None else env
    return [env[name] for name in SECRET_VARIABLES if env.get(name)]


@dataclass(frozen=True)
class LocalSettings:
    """Ports of the services ``make demo`` / ``make dev`` run on this machine."""

    ui_port: int = DEFAULT_UI_PORT
    object_store_port: int = DEFAULT_LOCAL_S3_PORT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalSettings:
        env = _environ() if env is None else env

        def port(name: str, default: int) -> int:
            value = env.get(name) or str(default)
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise SettingsError(f"{name}={value!r}: expected a TCP port (1-65535)")
            return int(value)

        return cls(ui_port=port("UI_PORT", DEFAULT_UI_PORT),
                   object_store_port=port("LOCAL_S3_PORT", DEFAULT_LOCAL_S3_PORT))


def is_set(variable: str) -> bool:
    """Whether the environment or the settings file sets ``variable`` (a secret is then an
    EnvVar, read at run time: the file's values are in ``os.environ`` by then)."""
    return bool(_environ().get(variable))


def registry_file(default: Path) -> Path:
    return Path(_environ().get("SOURCE_REGISTRY") or default)

"""The source registry (``sources.yaml``): which sources exist and how each one loads.

Validated with pydantic when definitions load; a bad entry raises RegistryError
naming the source and the field. Nothing here touches a database.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from platform_assets.ingestion.files.text_types import parse_pinned_type
from platform_assets.ingestion.partitions.files import (
    DEFAULT_OBJECT_KEY as DEFAULT_FILE_OBJECT_KEY,
)
from platform_assets.ingestion.partitions.files import (
    FamilySpec,
    check_object_key_pattern,
    globs_may_overlap,
)
from platform_assets.ingestion.partitions.postgres import SourceSpec
from platform_assets.ingestion.sink.object_keys import check_key_pattern
from platform_assets.registry_automation import (
    Automation,
    AutomationOverride,
    Freshness,
    switch,
)
from platform_assets.registry_checks import Check, Strict
from platform_resources.config import registry_file

DEFAULT_REGISTRY = Path(__file__).with_name("sources.yaml")
PROJECT_DIR = Path(__file__).resolve().parents[1]
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")  # used with fullmatch: no trailing newline
DEFAULT_OBJECT_KEY = "postgres/{name}/{date}/{name}.parquet"
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})


class RegistryError(ValueError):
    """The source registry is invalid."""


class Alerts(Strict):
    """What the alerts sensor posts besides failed runs, ERROR checks and sensor ticks."""

    warn_checks: bool = False
    """Also alert failing WARN-severity checks (of successful runs)."""


class _Checked(Strict):
    """What every source has: a name, a description, quality checks, freshness."""

    name: str
    description: str | None = None
    checks: list[Check] = []
    allow_empty: bool = False
    alerts: Alerts | None = None
    """Overrides the registry's ``alerts`` for this source."""
    freshness: Freshness | None = None
    """Freshness check on the latest closed day (None: no check)."""

    @model_validator(mode="before")
    @classmethod
    def _replaced_fields(cls, data: object) -> object:
        if isinstance(data, dict) and "freshness_hours" in data:
            raise ValueError(
                "freshness_hours was replaced by freshness.deadline_hours: hours after a day ends by which its "
                "partition must have loaded (e.g. 'freshness: {deadline_hours: 6}'; 'freshness: false' turns "
                "the check off)"
            )
        return data

    @field_validator("freshness", mode="before")
    @classmethod
    def _freshness_switch(cls, value: object) -> object:
        return switch(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError("must be lower_snake_case (letters, digits, underscores)")
        if value.endswith("__deletes"):
            raise ValueError("must not end in '__deletes' (the suffix of tombstone folders)")
        return value

    @model_validator(mode="after")
    def _unique_check_names(self) -> _Checked:
        names = [c.name for c in self.checks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"checks must have unique names; repeated: {duplicates}")
        return self


class PostgresSource(_Checked):
    """One PostgreSQL source: a table/view (full or incremental) or a custom query."""

    schema_name: str = Field(default="public", alias="schema")
    table: str | None = None
    query: str | None = None
    load: Literal["full", "incremental"] = "full"
    watermark_column: str | None = None
    watermark_type: Literal["timestamp", "integer"] | None = None
    object_key: str = DEFAULT_OBJECT_KEY
    schema_policy: Literal["evolve", "freeze"] = "evolve"
    pool: str = "postgres_source"
    """Dagster concurrency pool: caps how many loads hit the source database at once."""
    key_columns: list[str] = []
    """The row's key, when the table has no primary key (views, tables without one)."""
    capture_deletes: bool = False
    """Record rows deleted from the table in each partition's tombstone (README, "Deletes")."""
    freshness: Freshness | None = Freshness()
    automation: AutomationOverride = AutomationOverride()
    """The source's own time or horizon; ``false`` opts it out (its schedule starts stopped)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("object_key")
    @classmethod
    def _object_key(cls, value: str) -> str:
        check_key_pattern(value, placeholders=("name", "date"), required=("date",))
        return value

    @field_validator("automation", mode="before")
    @classmethod
    def _automation_switch(cls, value: object) -> object:
        return {"enabled": False} if value is False else {} if value is True or value is None else value

    @property
    def replayable(self) -> bool:
        """A past day's content can be read again: its day window (timestamp watermark).
        Full loads, custom queries and system views snapshot the present; integer
        sources take what is past the watermark."""
        return self.load == "incremental" and self.watermark_type == "timestamp"

    def automation_settings(self, registry: Registry) -> Automation:
        return self.automation.over(registry.automation)

    @model_validator(mode="after")
    def _shape(self) -> PostgresSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("set exactly one of 'table' or 'query'")
        if self.load == "incremental":
            if self.query is not None:
                raise ValueError("a custom query loads in full; 'load: incremental' needs a table")
            if not self.watermark_column or not self.watermark_type:
                raise ValueError("'load: incremental' needs watermark_column and watermark_type")
        elif self.watermark_column or self.watermark_type:
            raise ValueError("watermark_column/watermark_type only apply to 'load: incremental'")
        if self.capture_deletes and self.query is not None:
            raise ValueError("capture_deletes needs a table: a custom query has no key set to compare")
        if self.capture_deletes and self.schema_name in SYSTEM_SCHEMAS:
            raise ValueError(f"capture_deletes does not apply to system views ({self.schema_name}.{self.table})")
        return self

    @property
    def source_name(self) -> str:
        """The name in the tracking tables: ``schema.table`` for tables, else the source name."""
        return f"{self.schema_name}.{self.table}" if self.table else self.name

    def key_for(self, partition_date: str) -> str:
        return self.object_key.format(name=self.name, date=partition_date)

    def spec(self, registry: Registry) -> SourceSpec:
        """The registry-free description the engine loads partitions from."""
        return SourceSpec(
            name=self.name,
            source_name=self.source_name,
            schema=self.schema_name if self.table else None,
            table=self.table,
            query=self.query,
            load=self.load,
            watermark_column=self.watermark_column,
            watermark_type=self.watermark_type,
            object_key_pattern=self.object_key,
            schema_policy=self.schema_policy,
            timezone=registry.timezone,
            start_date=registry.start_date,
            key_columns=tuple(self.key_columns),
            capture_deletes=self.capture_deletes,
        )


class FileFamily(_Checked):
    """Files of one kind arriving in an input directory; one asset partitioned by day.

    A file's partition date comes from ``date_pattern`` (a regex whose first group,
    or group ``date``, matches the name and parses with ``date_format``), else from
    the day it arrived (its modification time in the registry's timezone).
    """

    directory: str
    glob: str
    format: Literal["csv", "json"]
    delimiter: str | None = None
    """None: a tab for .tsv files, else a comma."""
    quote_char: str = '"'
    encoding: str = "utf-8"
    null_values: list[str] = [""]
    skip_rows: int = 0
    column_types: dict[str, str] = {}
    date_pattern: str | None = None
    date_format: str = "%Y-%m-%d"
    after_load: Literal["leave", "move"] = "leave"
    object_key: str = DEFAULT_FILE_OBJECT_KEY
    schema_policy: Literal["evolve", "freeze"] = "evolve"
    pool: str = "file_ingest"
    sensor_interval_seconds: int = Field(default=30, ge=5)
    stable_seconds: float = Field(default=10, ge=0)
    """A manual run loads a file only when it was last modified at least this long ago."""

    @field_validator("glob")
    @classmethod
    def _glob(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be relative to the directory and stay inside it")
        return value

    @field_validator("date_pattern")
    @classmethod
    def _date_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compiled = re.compile(value)
            except re.error as e:
                raise ValueError(f"not a valid regular expression: {e}") from e
            if compiled.groups < 1:
                raise ValueError("needs a group around the date, e.g. '_(\\d{8})\\.csv$'")
        return value

    @field_validator("column_types")
    @classmethod
    def _column_types(cls, value: dict[str, str]) -> dict[str, str]:
        for column, type_name in value.items():
            try:
                parse_pinned_type(type_name)
            except ValueError as e:
                raise ValueError(f"column {column!r}: {e}") from e
        return value

    @field_validator("object_key")
    @classmethod
    def _file_object_key(cls, value: str) -> str:
        check_object_key_pattern(value)
        return value

    def input_directory(self) -> Path:
        path = Path(os.path.expandvars(self.directory))
        return path if path.is_absolute() else PROJECT_DIR / path

    def spec(self, registry: Registry) -> FamilySpec:
        """The registry-free description the engine loads the family's files from."""
        return FamilySpec(
            name=self.name,
            directory=self.input_directory(),
            glob=self.glob,
            format=self.format,
            delimiter=self.delimiter,
            quote_char=self.quote_char,
            encoding=self.encoding,
            null_values=tuple(self.null_values),
            skip_rows=self.skip_rows,
            column_types=dict(self.column_types),
            date_pattern=self.date_pattern,
            date_format=self.date_format,
            after_load=self.after_load,
            object_key_pattern=self.object_key,
            schema_policy=self.schema_policy,
            timezone=registry.timezone,
            stable_seconds=self.stable_seconds,
            start_date=registry.start_date,
        )


class Registry(Strict):
    start_date: dt.date = dt.date(2024, 1, 1)
    timezone: str = "UTC"
    automation: Automation = Automation()
    """Defaults of every database source's daily automation."""
    postgres: list[PostgresSource] = []
    files: list[FileFamily] = []
    alerts: Alerts = Alerts()

    def warn_check_alerts(self, name: str) -> bool:
        """Whether failing WARN checks of source ``name`` are alerted."""
        source = next((s for s in [*self.postgres, *self.files] if s.name == name), None)
        return (source.alerts if source is not None and source.alerts is not None else self.alerts).warn_checks

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown timezone {value!r}") from e
        return value

    @model_validator(mode="after")
    def _unique(self) -> Registry:
        names = [s.name for s in self.postgres] + [f.name for f in self.files]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique; repeated: {duplicates}")
        keys: dict[str, str] = {}
        samples = [(s.name, s.key_for("2024-01-01"), s.key_for("<date>")) for s in self.postgres]
        samples += [
            (f.name, f.spec(self).object_key("2024-01-01", "f.csv", "0" * 32), f.object_key) for f in self.files
        ]
        for name, key, pattern in samples:
            other = keys.setdefault(key, name)
            if other != name:
                raise ValueError(
                    f"sources {other!r} and {name!r} would write the same objects ({pattern}): "
                    "give one of them another object_key, e.g. with {name}"
                )
        _refuse_moves_from_shared_files(self.files)
        tracked: dict[str, str] = {}
        for source in self.postgres:
            other = tracked.setdefault(source.source_name, source.name)
            if other != source.name:
                raise ValueError(
                    f"sources {other!r} and {source.name!r} both read {source.source_name}, and runs are "
                    "tracked by the table (one watermark, lock and partition state): keep one, or read the "
                    f"other through a custom query (query: SELECT * FROM {source.source_name})"
                )
        return self


def _refuse_moves_from_shared_files(families: list[FileFamily]) -> None:
    """A family that moves its files must be the only one reading them."""
    for mover in (f for f in families if f.after_load == "move"):
        for other in families:
            if other is not mover and _may_share_files(mover, other):
                raise ValueError(
                    f"file family {mover.name!r} moves its files after loading (after_load: move), and family "
                    f"{other.name!r} may read the same files ({other.glob} in {other.directory}): it would miss "
                    "the files moved away. Give each family its own directory or non-overlapping globs, or use "
                    "after_load: leave"
                )


def _may_share_files(first: FileFamily, second: FileFamily) -> bool:
    a, b = first.input_directory().resolve(), second.input_directory().resolve()
    if a == b:
        return globs_may_overlap(first.glob, second.glob)
    if b.is_relative_to(a):
        return globs_may_overlap(first.glob, f"{b.relative_to(a).as_posix()}/{second.glob}")
    if a.is_relative_to(b):
        return globs_may_overlap(f"{a.relative_to(b).as_posix()}/{first.glob}", second.glob)
    return False


def registry_path() -> Path:
    return registry_file(DEFAULT_REGISTRY)


def load_registry(path: Path | None = None) -> Registry:
    path = path or registry_path()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise RegistryError(f"cannot read the source registry {path}: {e}") from e
    try:
        return Registry.model_validate(data)
    except ValidationError as e:
        raise RegistryError(f"invalid source registry {path}:\n{_describe(e, data)}") from e


def _describe(error: ValidationError, data: dict) -> str:
    lines = []
    for item in error.errors():
        location = list(item["loc"])
        where = ".".join(str(p) for p in location)
        if len(location) >= 2 and location[0] in ("postgres", "files") and isinstance(location[1], int):
            try:
                name = data[location[0]][location[1]].get("name", f"#{location[1]}")
            except (KeyError, IndexError, AttributeError):
                name = f"#{location[1]}"
            field = ".".join(str(p) for p in location[2:]) or "(entry)"
            where = f"source {name!r}, field {field}"
        lines.append(f"  - {where}: {item['msg']}")
    return "\n".join(lines)

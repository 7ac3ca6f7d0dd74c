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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_REGISTRY = Path(__file__).with_name("sources.yaml")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
DEFAULT_OBJECT_KEY = "postgres/{name}/{date}/{name}.parquet"


class RegistryError(ValueError):
    """The source registry is invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PostgresSource(_Strict):
    """One PostgreSQL source: a table/view (full or incremental) or a custom query."""

    name: str
    description: str | None = None
    schema_name: str = Field(default="public", alias="schema")
    table: str | None = None
    query: str | None = None
    load: Literal["full", "incremental"] = "full"
    watermark_column: str | None = None
    watermark_type: Literal["timestamp", "integer"] | None = None
    object_key: str = DEFAULT_OBJECT_KEY

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("must be lower_snake_case (letters, digits, underscores)")
        return value

    @field_validator("object_key")
    @classmethod
    def _object_key(cls, value: str) -> str:
        if "{date}" not in value:
            raise ValueError("must contain {date} so that each partition has its own object")
        return value

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
        return self

    @property
    def source_name(self) -> str:
        """The name in the tracking tables: ``schema.table`` for tables, else the source name."""
        return f"{self.schema_name}.{self.table}" if self.table else self.name

    def key_for(self, partition_date: str) -> str:
        return self.object_key.format(name=self.name, date=partition_date)


class Registry(_Strict):
    start_date: dt.date = dt.date(2024, 1, 1)
    timezone: str = "UTC"
    postgres: list[PostgresSource] = []

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
        names = [s.name for s in self.postgres]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique; repeated: {duplicates}")
        return self


def registry_path() -> Path:
    return Path(os.environ.get("SOURCE_REGISTRY", DEFAULT_REGISTRY))


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
        if len(location) >= 2 and location[0] == "postgres" and isinstance(location[1], int):
            try:
                name = data["postgres"][location[1]].get("name", f"#{location[1]}")
            except (KeyError, IndexError, AttributeError):
                name = f"#{location[1]}"
            field = ".".join(str(p) for p in location[2:]) or "(entry)"
            where = f"source {name!r}, field {field}"
        lines.append(f"  - {where}: {item['msg']}")
    return "\n".join(lines)

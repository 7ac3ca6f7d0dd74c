"""The quality checks a registry source declares (``checks:``), validated by pydantic.

Each check has a ``type`` (row_count, not_null, unique, accepted_values, range,
pandera), a severity and a name the Dagster check is registered under. They are
evaluated by ``platform_assets.quality`` on the objects a load wrote.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Severity = Literal["WARN", "ERROR"]


class _Check(Strict):
    severity: Severity = "ERROR"
    blocking: bool = False
    description: str | None = None


class RowCountCheck(_Check):
    type: Literal["row_count"]
    min: int = 1
    max: int | None = None

    @property
    def name(self) -> str:
        return "row_count"


class NotNullCheck(_Check):
    type: Literal["not_null"]
    columns: list[str] = Field(min_length=1)

    @property
    def name(self) -> str:
        return "not_null_" + "_".join(self.columns)


class UniqueCheck(_Check):
    """The columns together form a unique key."""

    type: Literal["unique"]
    columns: list[str] = Field(min_length=1)

    @property
    def name(self) -> str:
        return "unique_" + "_".join(self.columns)


class AcceptedValuesCheck(_Check):
    type: Literal["accepted_values"]
    column: str
    values: list[str | int | float | bool] = Field(min_length=1)

    @property
    def name(self) -> str:
        return f"accepted_values_{self.column}"


class RangeCheck(_Check):
    type: Literal["range"]
    column: str
    min: float | str | None = None
    max: float | str | None = None

    @model_validator(mode="after")
    def _bounds(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError("set min, max or both")
        return self

    @property
    def name(self) -> str:
        return f"range_{self.column}"


class PanderaCheck(_Check):
    """A pandera DataFrameSchema, given as ``module:attribute``, run on the loaded data."""

    type: Literal["pandera"]
    schema_ref: str = Field(alias="schema", pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    label: str = "schema"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def name(self) -> str:
        return f"pandera_{self.label}"


Check = Annotated[
    RowCountCheck | NotNullCheck | UniqueCheck | AcceptedValuesCheck | RangeCheck | PanderaCheck,
    Field(discriminator="type"),
]

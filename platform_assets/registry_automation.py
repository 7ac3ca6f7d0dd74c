"""The registry's automation and freshness settings (``automation:``, ``freshness:``), validated by pydantic.

``automation`` at the top of the registry sets every database source's defaults; a
source's own ``automation`` overrides some of them, or is ``false`` (its schedule starts
stopped). ``freshness: {deadline_hours: N}`` is the freshness check's deadline, ``false``
turns it off. See README, "Production".
"""

from __future__ import annotations

import datetime as dt

from pydantic import Field, field_validator

from platform_assets.registry_checks import Strict


def _time_of_day(value: object) -> object:
    """``"HH:MM"`` only: YAML reads an unquoted ``6:20`` as the number 380 (base 60)."""
    if value is not None and not isinstance(value, (str, dt.time)):
        raise ValueError(f'write the time of day as a quoted "HH:MM" (got {value!r}; YAML reads 6:20 unquoted as a number)')
    return value


class Automation(Strict):
    """When a database source loads the day that just ended (registry-wide defaults)."""

    enabled: bool = True
    """False: the source's schedule starts stopped (it can be started in the UI)."""
    at: dt.time = dt.time(0, 15)
    """Time of day, in the registry's timezone, after which the day that just ended is loaded."""
    catch_up_days: int = Field(default=7, ge=1, le=366)
    """Horizon: how many closed days, the latest included, are caught up (timestamp sources) or
    reported as missed; older unloaded days are reported, never requested."""

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: object) -> object:
        return _time_of_day(value)


class AutomationOverride(Strict):
    """A source's own automation settings; unset fields take the registry's."""

    enabled: bool | None = None
    at: dt.time | None = None
    catch_up_days: int | None = Field(default=None, ge=1, le=366)

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: object) -> object:
        return _time_of_day(value)

    def over(self, defaults: Automation) -> Automation:
        return defaults.model_copy(update=self.model_dump(exclude_none=True))


class Freshness(Strict):
    """A day's partition must have loaded ``deadline_hours`` after the day ended."""

    deadline_hours: float = Field(default=6, ge=0, le=24 * 30)


def switch(value: object) -> object:
    """``false`` turns a setting off (None), ``true`` keeps its defaults."""
    if value is False:
        return None
    if value is True:
        return {}
    return value

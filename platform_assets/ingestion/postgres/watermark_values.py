"""Watermark values: exact text form, typed comparison, partition windows.

Watermarks are stored as text (``data_platform.watermarks.watermark_value``) so that a
user can reset one with a plain ``UPDATE``. Timestamps are ISO-8601 with
microseconds (and ``+00:00`` for ``timestamptz``), integers are plain digits.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from platform_assets.ingestion.errors import WatermarkError

WatermarkType = Literal["timestamp", "integer"]
WatermarkValue = int | dt.datetime | dt.date

_INTEGER_TEXT = re.compile(r"^[+-]?[0-9]+$")
# ISO-8601 forms that Python and PostgreSQL both read the same way.
_TIMESTAMP_TEXT = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$"
)

TIMESTAMP_TYPES = frozenset({"timestamp", "timestamptz", "date"})
INTEGER_TYPES = frozenset({"int2", "int4", "int8"})


def check_column_type(source: str, column: str, pg_type: str, watermark_type: str) -> None:
    """Raise WatermarkError when ``column`` cannot carry a ``watermark_type`` watermark."""
    allowed = {"timestamp": TIMESTAMP_TYPES, "integer": INTEGER_TYPES}.get(watermark_type)
    if allowed is None:
        raise WatermarkError(
            f"{source}: watermark_type must be 'timestamp' or 'integer', got {watermark_type!r}"
        )
    if pg_type not in allowed:
        raise WatermarkError(
            f"{source}: watermark column {column!r} has type {pg_type}, which cannot carry a "
            f"{watermark_type} watermark (expected one of {sorted(allowed)})"
        )


def parse_value(text: str, pg_type: str) -> WatermarkValue:
    """Parse a stored watermark for a column of type ``pg_type``.

    A naive ``timestamp`` column ignores any offset in the text, as Postgres does
    when it casts ``'2024-01-01T00:00:00Z'::timestamp``.
    """
    pattern = _INTEGER_TEXT if pg_type in INTEGER_TYPES else _TIMESTAMP_TEXT
    example = "12345" if pg_type in INTEGER_TYPES else "2024-01-01T00:00:00.000000+00:00"
    try:
        if not pattern.match(text.strip()):
            raise ValueError(f"expected the form {example}")
        text = text.strip()
        if pg_type in INTEGER_TYPES:
            return int(text)
        if pg_type == "date":
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                return dt.datetime.fromisoformat(text).date()
        value = dt.datetime.fromisoformat(text)
    except ValueError as e:
        raise WatermarkError(
            f"stored watermark {text!r} is not a valid {pg_type} value; fix it with UPDATE "
            "data_platform.watermarks or DELETE the row to re-extract in full"
        ) from e
    if pg_type == "timestamptz":
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return value.replace(tzinfo=None)


def format_value(value: WatermarkValue) -> str:
    """The exact text form stored in the watermarks table."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value.isoformat(timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(int(value))


def later_of(a: WatermarkValue | None, b: WatermarkValue | None) -> WatermarkValue | None:
    """The larger of two watermarks; a watermark never moves backwards."""
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


@dataclass(frozen=True)
class Window:
    """A half-open range ``[start, end)`` of instants (timezone-aware); None is unbounded."""

    start: dt.datetime | None
    end: dt.datetime | None


def partition_window(partition_date: dt.date, timezone: str = "UTC", first_partition: bool = False) -> Window:
    """The instants a daily partition owns: its calendar day in ``timezone``.

    The first partition also owns everything before it, so no history is left out.
    """
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(partition_date, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(partition_date + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return Window(start=None if first_partition else start, end=end)


def bound_for_column(instant: dt.datetime | None, pg_type: str) -> str | None:
    """A window bound as a value of the watermark column.

    ``timestamptz`` compares instants (written in UTC); a naive ``timestamp`` and a
    ``date`` compare wall-clock values in the partition's timezone.
    """
    if instant is None:
        return None
    if pg_type == "timestamptz":
        return format_value(instant.astimezone(dt.timezone.utc))
    if pg_type == "date":
        return instant.date().isoformat()
    return format_value(instant.replace(tzinfo=None))

"""Arrow values as Python objects without pyarrow's pandas detour.

pyarrow converts zoned timestamps to ``datetime`` through pandas/pytz: the first
conversion in a process imports pandas (about a third of a second and ~30 MiB of
resident memory). These helpers convert zoned timestamps themselves; everything
else goes through pyarrow as usual.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Any

import pyarrow as pa

_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def python_values(array: pa.Array | pa.ChunkedArray) -> list[Any]:
    """``array.to_pylist()``, zoned timestamps as aware datetimes in their zone."""
    arrow_type = array.type
    if not (pa.types.is_timestamp(arrow_type) and arrow_type.tz is not None):
        return array.to_pylist()
    zone = _zone(arrow_type.tz)
    naive = array.cast(pa.timestamp(arrow_type.unit)).to_pylist()  # UTC wall times
    return [None if v is None else v.replace(tzinfo=dt.timezone.utc).astimezone(zone) for v in naive]


def python_value(scalar: pa.Scalar) -> Any:
    """``scalar.as_py()``, a zoned timestamp as an aware datetime in its zone."""
    arrow_type = scalar.type
    if not (pa.types.is_timestamp(arrow_type) and arrow_type.tz is not None) or not scalar.is_valid:
        return scalar.as_py()
    naive = scalar.cast(pa.timestamp(arrow_type.unit)).as_py()  # UTC wall time
    return naive.replace(tzinfo=dt.timezone.utc).astimezone(_zone(arrow_type.tz))


def _zone(name: str) -> dt.tzinfo:
    """A zone name (``UTC``, ``Europe/Paris``) or a fixed offset (``+05:30``), as Arrow allows."""
    if name in ("UTC", "Z"):
        return dt.timezone.utc
    offset = _OFFSET.match(name)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        return dt.timezone(sign * dt.timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3))))
    return zoneinfo.ZoneInfo(name)

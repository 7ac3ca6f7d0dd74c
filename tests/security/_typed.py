"""What a text value must become in a typed column (the oracle of the reader fuzz tests)."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from platform_assets.ingestion.files import text_types

UTC = dt.timezone.utc


def typed_value_matches(text: str, actual: Any, arrow_type: pa.DataType) -> bool:
    """Whether ``actual`` (read back from Parquet) is exactly the value ``text`` spells."""
    if arrow_type == pa.string():
        return actual == text
    if arrow_type == pa.int64():
        return (
            type(actual) is int and actual == int(text) and re.match(r"^[+-]?0[0-9]", text) is None
        )
    if arrow_type == pa.float64():
        expected = float(text)
        return type(actual) is float and (actual == expected or (math.isnan(actual) and math.isnan(expected)))
    if arrow_type == pa.bool_():
        return actual is (text.lower() == "true")
    if arrow_type == pa.date32():
        return actual == dt.date.fromisoformat(text)
    if pa.types.is_timestamp(arrow_type):
        expected = dt.datetime.fromisoformat(text)
        if arrow_type.tz is None:
            return expected.tzinfo is None and actual == expected
        return expected.tzinfo is not None and actual == expected.astimezone(UTC)
    raise AssertionError(f"unexpected inferred type {arrow_type}")


# Values of one kind, so that a column of them infers a non-text type.
KIND_VALUES = {
    "int": st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.from_regex(r"[+-]?(0|[1-9][0-9]{0,19})", fullmatch=True),
    ),
    "leading_zero": st.from_regex(r"[+-]?0[0-9]{1,6}", fullmatch=True),
    "float": st.one_of(
        st.floats().map(repr),
        st.floats(allow_nan=False).map(str),
        st.from_regex(text_types.FLOAT.strip("^$"), fullmatch=True),
    ),
    "bool": st.sampled_from(["true", "false", "TRUE", "False", "tRuE"]),
    "date": st.one_of(st.dates().map(dt.date.isoformat), st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True)),
    "timestamp": st.one_of(
        st.builds(lambda d, sep, spec: d.isoformat(sep=sep, timespec=spec), st.datetimes(), st.sampled_from("T "),
                  st.sampled_from(["minutes", "seconds", "milliseconds", "microseconds"])),
        st.from_regex(text_types.TIMESTAMP_NAIVE.strip("^$"), fullmatch=True),
    ),
    "timestamptz": st.one_of(
        st.builds(lambda d: d.isoformat(), st.datetimes(timezones=st.sampled_from(
            [UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(-dt.timedelta(hours=8))]))),
        st.from_regex(text_types.TIMESTAMP_ZONED.strip("^$"), fullmatch=True),
    ),
}

"""Unit tests for platform_assets.ingestion.postgres.load_planning."""

from __future__ import annotations

import datetime as dt

import pytest
from psycopg2 import sql

from platform_assets.ingestion.errors import WatermarkError
from platform_assets.ingestion.postgres.load_planning import (
    OpenTransactions,
    WatermarkColumn,
    catchup_floor,
    incremental_range,
    next_watermark,
    window_range,
)
from platform_assets.ingestion.postgres.query_builder import (
    CatchUp,
    ExtractRange,
    where_clause,
)
from platform_assets.ingestion.postgres.watermark_values import Window, partition_window
from platform_assets.ingestion.tracking.watermark_store import StoredWatermark

UTC = dt.timezone.utc
TS = WatermarkColumn("updated_at", "timestamptz", "timestamp")
NAIVE = WatermarkColumn("updated_at", "timestamp", "timestamp")
DAY = WatermarkColumn("business_day", "date", "timestamp")
ID = WatermarkColumn("id", "int8", "integer")


def stored(
    value: str | None,
    *,
    column: str = "updated_at",
    snapshot: str | None = None,
    floor: str | None = None,
    watermark_type: str = "timestamp",
) -> StoredWatermark:
    return StoredWatermark(
        source_name="orders",
        column=column,
        value=value,
        watermark_type=watermark_type,
        last_snapshot=snapshot,
        catchup_floor=floor,
    )


# --------------------------------------------------------------------------- incremental_range


@pytest.mark.parametrize("previous", [None, stored(None), stored(None, column="other_column")])
@pytest.mark.parametrize("column", [TS, ID])
def test_incremental_without_a_stored_value_reads_everything(render, previous, column: WatermarkColumn) -> None:
    extract_range = incremental_range("orders", column, previous)
    assert extract_range == ExtractRange(column=column.name, cast_type=column.pg_type, include_nulls=True)
    assert extract_range.is_full
    assert render(where_clause(extract_range)) == ""  # no WHERE, no values


@pytest.mark.parametrize(
    ("column", "value"),
    [
        (TS, "2024-03-10T12:00:00.000000+00:00"),
        (NAIVE, "2024-03-10T12:00:00.000000"),
        (DAY, "2024-03-10"),
        (ID, "1234"),
    ],
)
def test_incremental_with_a_stored_value_and_no_snapshot(column: WatermarkColumn, value: str) -> None:
    extract_range = incremental_range("orders", column, stored(value, column=column.name))
    assert extract_range == ExtractRange(
        column=column.name, cast_type=column.pg_type, lower=value, lower_inclusive=False
    )
    assert extract_range.catchup is None
    assert extract_range.upper is None


@pytest.mark.parametrize("snapshot", [None, ""])
def test_incremental_without_snapshot_has_no_catchup(snapshot: str | None) -> None:
    extract_range = incremental_range("orders", ID, stored("10", column="id", snapshot=snapshot, floor="5"))
    assert extract_range.catchup is None


@pytest.mark.parametrize("floor", [None, "7", "10"])
def test_incremental_catches_up_with_the_stored_snapshot_and_floor(floor: str | None) -> None:
    extract_range = incremental_range("orders", ID, stored("10", column="id", snapshot="100:200:150", floor=floor))
    assert extract_range == ExtractRange(
        column="id",
        cast_type="int8",
        lower="10",
        lower_inclusive=False,
        catchup=CatchUp(snapshot="100:200:150", upper="10", floor=floor),
    )


def test_incremental_keeps_the_stored_text_verbatim() -> None:
    """The stored text is the bound; it is validated but not rewritten."""
    value = "2024-03-10T17:30:00+05:30"
    extract_range = incremental_range("orders", TS, stored(value, snapshot="1:2:"))
    assert extract_range.lower == value
    assert extract_range.catchup.upper == value


def test_incremental_predicate_selects_newer_rows_and_late_rows(fetch) -> None:
    """End to end through where_clause: (id > 10) OR (7 <= id <= 10 AND invisible)."""
    extract_range = incremental_range("orders", ID, stored("10", column="id", snapshot="100:200:150", floor="7"))
    where = where_clause(extract_range)
    rows = [(5, 250), (7, 150), (8, 120), (10, 260), (11, 50), (12, 300), (6, 150)]
    values = sql.SQL(", ").join(sql.SQL("({}, {}::bigint)").format(sql.Literal(i), sql.Literal(x)) for i, x in rows)
    query = sql.SQL("SELECT id FROM (VALUES {}) AS t(id, xmin){} ORDER BY id").format(values, where)
    assert [r[0] for r in fetch(query)] == [7, 10, 11, 12]


def test_incremental_rejects_a_watermark_on_another_column() -> None:
    with pytest.raises(WatermarkError) as e:
        incremental_range("orders", TS, stored("2024-01-01T00:00:00+00:00", column="created_at"))
    message = str(e.value)
    assert message.startswith("orders: the stored watermark is on column 'created_at'")
    assert "now uses 'updated_at'" in message
    assert "DELETE FROM data_platform.watermarks WHERE source_name = 'orders'" in message


@pytest.mark.parametrize(
    ("column", "value"),
    [
        (ID, "ten"),
        (ID, "2024-01-01"),
        (ID, "1.5"),
        (TS, "yesterday"),
        (TS, "2024-02-30T00:00:00"),
        (NAIVE, "42x"),
        (DAY, "2024-13-01"),
    ],
)
def test_incremental_rejects_a_bad_stored_value(column: WatermarkColumn, value: str) -> None:
    with pytest.raises(WatermarkError, match="is not a valid"):
        incremental_range("orders", column, stored(value, column=column.name, snapshot="1:2:"))


# --------------------------------------------------------------------------- window_range


@pytest.mark.parametrize(
    ("column", "timezone", "lower", "upper"),
    [
        (TS, "UTC", "2024-03-10T00:00:00.000000+00:00", "2024-03-11T00:00:00.000000+00:00"),
        (TS, "America/New_York", "2024-03-10T05:00:00.000000+00:00", "2024-03-11T04:00:00.000000+00:00"),
        (NAIVE, "America/New_York", "2024-03-10T00:00:00.000000", "2024-03-11T00:00:00.000000"),
        (DAY, "America/New_York", "2024-03-10", "2024-03-11"),
    ],
)
def test_window_range_is_half_open(column: WatermarkColumn, timezone: str, lower: str, upper: str) -> None:
    extract_range = window_range(column, partition_window(dt.date(2024, 3, 10), timezone))
    assert extract_range == ExtractRange(
        column=column.name,
        cast_type=column.pg_type,
        lower=lower,
        lower_inclusive=True,
        upper=upper,
        upper_inclusive=False,
    )


def test_window_range_of_the_first_partition_has_no_lower_bound() -> None:
    extract_range = window_range(TS, partition_window(dt.date(2024, 3, 10), first_partition=True))
    assert extract_range.lower is None
    assert extract_range.upper == "2024-03-11T00:00:00.000000+00:00"
    assert not extract_range.is_full


def test_window_range_unbounded_is_every_non_null_value() -> None:
    extract_range = window_range(TS, Window(None, None))
    assert extract_range.lower is None and extract_range.upper is None
    assert not extract_range.is_full  # NULL watermarks are the first partition's (include_nulls)


def test_window_range_selects_the_local_day_across_dst(fetch) -> None:
    """The spring-forward day in New York holds 23 hours of instants."""
    extract_range = window_range(TS, partition_window(dt.date(2024, 3, 10), "America/New_York"))
    where = where_clause(extract_range)
    query = sql.SQL(
        "SELECT min(updated_at), max(updated_at), count(*) FROM generate_series("
        "'2024-03-09T00:00:00Z'::timestamptz, '2024-03-12T00:00:00Z'::timestamptz, interval '1 hour'"
        ") AS t(updated_at){}"
    ).format(where)
    [(first, last, count)] = fetch(query)
    assert count == 23
    assert first == dt.datetime(2024, 3, 10, 5, tzinfo=UTC)
    assert last == dt.datetime(2024, 3, 11, 3, tzinfo=UTC)


# --------------------------------------------------------------------------- next_watermark


@pytest.mark.parametrize(
    ("before", "loaded_max", "pg_type", "expected"),
    [
        pytest.param(None, None, "int8", None, id="nothing-yet"),
        pytest.param(None, 5, "int8", "5", id="first-load"),
        pytest.param("10", None, "int8", "10", id="empty-load-keeps-it"),
        pytest.param("10", 12, "int8", "12", id="advances"),
        pytest.param("10", 10, "int8", "10", id="same"),
        pytest.param("10", 7, "int4", "10", id="never-backwards-int"),
        pytest.param("2024-03-10", dt.date(2024, 3, 9), "date", "2024-03-10", id="never-backwards-date"),
        pytest.param("2024-03-10", dt.date(2024, 3, 11), "date", "2024-03-11", id="advances-date"),
        pytest.param(
            "2024-03-10T12:00:00.000000",
            dt.datetime(2024, 3, 10, 12, 0, 0, 1),
            "timestamp",
            "2024-03-10T12:00:00.000001",
            id="advances-by-one-microsecond",
        ),
        pytest.param(
            "2024-03-10T12:00:00.000001",
            dt.datetime(2024, 3, 10, 12),
            "timestamp",
            "2024-03-10T12:00:00.000001",
            id="never-backwards-timestamp",
        ),
        pytest.param(
            "2024-03-10T12:00:00+05:00",  # 07:00Z
            dt.datetime(2024, 3, 10, 8, tzinfo=UTC),
            "timestamptz",
            "2024-03-10T08:00:00.000000+00:00",
            id="tz-advances-by-instant",
        ),
        pytest.param(
            "2024-03-10T12:00:00+05:00",  # 07:00Z is later than 06:00Z
            dt.datetime(2024, 3, 10, 6, tzinfo=UTC),
            "timestamptz",
            "2024-03-10T07:00:00.000000+00:00",
            id="tz-never-backwards-and-normalised",
        ),
        pytest.param(
            "2024-03-10T07:00:00Z",
            None,
            "timestamptz",
            "2024-03-10T07:00:00.000000+00:00",
            id="tz-empty-load-normalised",
        ),
    ],
)
def test_next_watermark(before: str | None, loaded_max, pg_type: str, expected: str | None) -> None:
    assert next_watermark(before, loaded_max, pg_type) == expected


@pytest.mark.parametrize(("before", "pg_type"), [("x", "int8"), ("2024-99-01", "date"), ("noon", "timestamptz")])
def test_next_watermark_rejects_a_bad_previous_value(before: str, pg_type: str) -> None:
    with pytest.raises(WatermarkError):
        next_watermark(before, None, pg_type)


# --------------------------------------------------------------------------- catchup_floor

NONE_OPEN = OpenTransactions(count=0, oldest_start=None, any_hidden=False)
OLDER_OPEN = OpenTransactions(count=2, oldest_start=dt.datetime(2024, 3, 10, 11, tzinfo=UTC), any_hidden=False)
HIDDEN = OpenTransactions(count=1, oldest_start=None, any_hidden=True)
HIDDEN_NONE_COUNTED = OpenTransactions(count=0, oldest_start=None, any_hidden=True)


@pytest.mark.parametrize(
    ("open_at_snapshot", "writers_in_snapshot", "expected"),
    [
        pytest.param(NONE_OPEN, False, "after", id="nothing-open"),
        pytest.param(NONE_OPEN, True, "before", id="only-writers-after-the-count"),
        pytest.param(OLDER_OPEN, False, "when-oldest-began", id="older-open"),
        pytest.param(OLDER_OPEN, True, "when-oldest-began", id="older-open-and-writers"),
        pytest.param(HIDDEN, False, None, id="hidden"),
        pytest.param(HIDDEN, True, None, id="hidden-and-writers"),
        pytest.param(HIDDEN_NONE_COUNTED, True, None, id="hidden-wins-over-empty-count"),
    ],
)
def test_catchup_floor_branches(open_at_snapshot: OpenTransactions, writers_in_snapshot: bool, expected: str | None) -> None:
    assert (
        catchup_floor(open_at_snapshot, writers_in_snapshot, "before", "after", "when-oldest-began") == expected
    )


@pytest.mark.parametrize(
    ("open_at_snapshot", "writers_in_snapshot", "expected"),
    [
        (NONE_OPEN, True, None),  # first run: nothing before it, no floor
        (NONE_OPEN, False, "after"),
        (OLDER_OPEN, False, None),  # no watermark existed when the oldest began
    ],
)
def test_catchup_floor_passes_missing_watermarks_through(
    open_at_snapshot: OpenTransactions, writers_in_snapshot: bool, expected: str | None
) -> None:
    assert catchup_floor(open_at_snapshot, writers_in_snapshot, None, "after", None) == expected


@pytest.mark.parametrize(("count", "none"), [(0, True), (1, False), (5, False)])
def test_open_transactions_none(count: int, none: bool) -> None:
    assert OpenTransactions(count=count, oldest_start=None, any_hidden=False).none is none

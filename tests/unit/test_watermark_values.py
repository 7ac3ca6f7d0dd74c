"""Unit tests for platform_assets.ingestion.postgres.watermark_values."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import psycopg2
import pytest

from platform_assets.ingestion.errors import WatermarkError
from platform_assets.ingestion.postgres.watermark_values import (
    Window,
    bound_for_column,
    check_column_type,
    format_value,
    later_of,
    parse_value,
    partition_window,
)

UTC = dt.timezone.utc
NY = ZoneInfo("America/New_York")


def tz(hours: int, minutes: int = 0) -> dt.timezone:
    return dt.timezone(dt.timedelta(hours=hours, minutes=minutes))


# --------------------------------------------------------------------------- check_column_type


@pytest.mark.parametrize(
    ("pg_type", "watermark_type"),
    [
        ("timestamp", "timestamp"),
        ("timestamptz", "timestamp"),
        ("date", "timestamp"),
        ("int2", "integer"),
        ("int4", "integer"),
        ("int8", "integer"),
    ],
)
def test_check_column_type_accepts(pg_type: str, watermark_type: str) -> None:
    check_column_type("src", "col", pg_type, watermark_type)


@pytest.mark.parametrize(
    ("pg_type", "watermark_type"),
    [
        ("int8", "timestamp"),
        ("text", "timestamp"),
        ("time", "timestamp"),
        ("timestamptz", "integer"),
        ("numeric", "integer"),
        ("float8", "integer"),
        ("oid", "integer"),
    ],
)
def test_check_column_type_rejects_incompatible_column(pg_type: str, watermark_type: str) -> None:
    with pytest.raises(WatermarkError) as e:
        check_column_type("orders_src", "updated_at", pg_type, watermark_type)
    message = str(e.value)
    assert message.startswith("orders_src: ")
    assert "'updated_at'" in message
    assert f"type {pg_type}," in message
    assert f"{watermark_type} watermark" in message


@pytest.mark.parametrize("watermark_type", ["", "Timestamp", "int", "date", "serial"])
def test_check_column_type_rejects_unknown_watermark_type(watermark_type: str) -> None:
    with pytest.raises(WatermarkError, match=r"^src: watermark_type must be 'timestamp' or 'integer'"):
        check_column_type("src", "col", "int8", watermark_type)


# --------------------------------------------------------------------------- parse_value


@pytest.mark.parametrize(
    ("text", "pg_type", "expected"),
    [
        ("42", "int2", 42),
        ("-7", "int4", -7),
        ("9223372036854775807", "int8", 9223372036854775807),
        ("0", "int8", 0),
        ("2024-03-10", "date", dt.date(2024, 3, 10)),
        ("2024-03-10T23:59:59", "date", dt.date(2024, 3, 10)),
        ("2024-01-05T00:00:00Z", "date", dt.date(2024, 1, 5)),
        ("2024-01-05 00:00:00.000000+05:00", "date", dt.date(2024, 1, 5)),  # like '...+05:00'::date
        ("2024-03-10T12:34:56.123456", "timestamp", dt.datetime(2024, 3, 10, 12, 34, 56, 123456)),
        ("2024-03-10 12:34:56", "timestamp", dt.datetime(2024, 3, 10, 12, 34, 56)),
        ("2024-03-10T00:00:00.000001", "timestamp", dt.datetime(2024, 3, 10, 0, 0, 0, 1)),
        # a naive column ignores the offset, like '...+05:00'::timestamp does
        ("2024-03-10T12:34:56.5+05:00", "timestamp", dt.datetime(2024, 3, 10, 12, 34, 56, 500000)),
        ("2024-03-10T12:34:56Z", "timestamp", dt.datetime(2024, 3, 10, 12, 34, 56)),
        ("2024-03-10T12:34:56.000001Z", "timestamptz", dt.datetime(2024, 3, 10, 12, 34, 56, 1, tzinfo=UTC)),
        ("2024-03-10T12:34:56+00:00", "timestamptz", dt.datetime(2024, 3, 10, 12, 34, 56, tzinfo=UTC)),
        ("2024-03-10 12:34:56+00", "timestamptz", dt.datetime(2024, 3, 10, 12, 34, 56, tzinfo=UTC)),
        # a naive text for an aware column is taken as UTC
        ("2024-03-10T12:34:56.999999", "timestamptz", dt.datetime(2024, 3, 10, 12, 34, 56, 999999, tzinfo=UTC)),
    ],
)
def test_parse_value(text: str, pg_type: str, expected) -> None:
    value = parse_value(text, pg_type)
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(expected, dt.datetime):
        assert value.microsecond == expected.microsecond
        assert (value.tzinfo is None) == (expected.tzinfo is None)


@pytest.mark.parametrize(
    ("text", "instant_utc"),
    [
        ("2024-03-10T12:34:56+05:30", dt.datetime(2024, 3, 10, 7, 4, 56, tzinfo=UTC)),
        ("2024-03-10T01:00:00-05:00", dt.datetime(2024, 3, 10, 6, 0, tzinfo=UTC)),
        ("2024-03-10T01:00:00.25-08:00", dt.datetime(2024, 3, 10, 9, 0, 0, 250000, tzinfo=UTC)),
        ("2024-12-31T23:30:00-01:00", dt.datetime(2025, 1, 1, 0, 30, tzinfo=UTC)),
    ],
)
def test_parse_timestamptz_keeps_the_instant_of_an_offset(text: str, instant_utc: dt.datetime) -> None:
    value = parse_value(text, "timestamptz")
    assert value.tzinfo is not None
    assert value == instant_utc
    assert value.astimezone(UTC) == instant_utc


@pytest.mark.parametrize(
    ("text", "pg_type"),
    [
        ("abc", "int8"),
        ("1.5", "int4"),
        ("", "int2"),
        ("2024-01-01", "int8"),
        ("2024-13-01", "date"),
        ("2024-02-30", "date"),
        ("yesterday", "date"),
        ("", "date"),
        ("not a timestamp", "timestamp"),
        ("2024-02-30T00:00:00", "timestamp"),
        ("12345", "timestamp"),
        ("infinity", "timestamptz"),
        ("2024-01-01T25:00:00Z", "timestamptz"),
        ("", "timestamptz"),
        pytest.param("2024-01-05garbage", "date", id="date-trailing-garbage"),
        pytest.param("2024-01-05T00:00:00garbage", "date", id="date-time-trailing-garbage"),
        pytest.param("2024-01-05 x", "date", id="date-space-garbage"),
    ],
)
def test_parse_value_rejects_bad_text(text: str, pg_type: str) -> None:
    with pytest.raises(WatermarkError) as e:
        parse_value(text, pg_type)
    message = str(e.value)
    assert f"stored watermark {text!r} is not a valid {pg_type} value" in message
    assert "data_platform.watermarks" in message
    assert isinstance(e.value.__cause__, ValueError)


@pytest.mark.parametrize("pg_type", ["date", "timestamp", "timestamptz"])
@pytest.mark.parametrize(
    "text",
    [
        "2024-01-05",
        "20240105",
        "0001-01-01",
        "2024-01-05T00:00:00Z",
        "2024-01-05T23:59:59.999999",
        "2024-01-05 12:34:56.5+05:30",
        "2024-01-05 12:34:56+0530",
        "2024-01-05T12:34:56-08",
        "20240105T123456",
        "2024-01-05T1234",
        "2024-01-05garbage",
        "2024-01-05T00:00:00garbage",
        "2024-02-30",
        "2024-13-01",
        "+2024-01-05",
        "2024-01-05T00:00:00+24:00",
        "2024-W01-1",
        "2024-01-05T12",
    ],
)
def test_parse_value_accepts_only_what_postgres_casts(unit_conn, text: str, pg_type: str) -> None:
    """The early check must not let through a watermark the extract's CAST would reject;
    what both accept is the same value (the source session runs with TimeZone UTC).
    parse_value may be stricter than Postgres (it only takes ISO-8601 with dashes)."""
    with unit_conn.cursor() as cur:
        cur.execute("BEGIN")
        try:
            cur.execute("SET LOCAL TimeZone = 'UTC'")
            cur.execute("SAVEPOINT pg_cast")
            try:
                cur.execute(f"SELECT CAST(%s AS {pg_type})", (text,))
                [(expected,)] = cur.fetchall()
            except psycopg2.DataError:
                cur.execute("ROLLBACK TO SAVEPOINT pg_cast")
                expected = None
        finally:
            cur.execute("ROLLBACK")
    if expected is None:
        with pytest.raises(WatermarkError):
            parse_value(text, pg_type)
        return
    try:
        value = parse_value(text, pg_type)
    except WatermarkError:
        # Only forms outside the documented one (e.g. compact '20240105', '2024-01-05T1234').
        assert not re.match(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$", text)
        return
    assert type(value) is type(expected)
    assert value == expected


# --------------------------------------------------------------------------- format_value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, "42"),
        (-3, "-3"),
        (0, "0"),
        (9223372036854775807, "9223372036854775807"),
        (dt.date(2024, 3, 10), "2024-03-10"),
        (dt.datetime(2024, 3, 10, 12, 34, 56), "2024-03-10T12:34:56.000000"),
        (dt.datetime(2024, 3, 10, 12, 34, 56, 1), "2024-03-10T12:34:56.000001"),
        (dt.datetime(2024, 3, 10, tzinfo=UTC), "2024-03-10T00:00:00.000000+00:00"),
        (dt.datetime(2024, 3, 10, 5, 30, 0, 123456, tzinfo=tz(5, 30)), "2024-03-10T00:00:00.123456+00:00"),
        (dt.datetime(2024, 3, 9, 20, 0, tzinfo=tz(-5)), "2024-03-10T01:00:00.000000+00:00"),
        (dt.datetime(2024, 7, 1, 8, 0, tzinfo=NY), "2024-07-01T12:00:00.000000+00:00"),  # EDT
        (dt.datetime(2024, 1, 1, 8, 0, tzinfo=NY), "2024-01-01T13:00:00.000000+00:00"),  # EST
        # the repeated hour of the fall-back day: fold picks the offset
        (dt.datetime(2024, 11, 3, 1, 30, fold=0, tzinfo=NY), "2024-11-03T05:30:00.000000+00:00"),
        (dt.datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NY), "2024-11-03T06:30:00.000000+00:00"),
    ],
)
def test_format_value(value, expected: str) -> None:
    assert format_value(value) == expected


@pytest.mark.parametrize(
    ("text", "pg_type"),
    [
        ("42", "int8"),
        ("-1", "int2"),
        ("2024-03-10", "date"),
        ("2024-03-10T12:34:56.000000", "timestamp"),
        ("2024-03-10T12:34:56.123456", "timestamp"),
        ("2024-03-10T12:34:56.000001+00:00", "timestamptz"),
        ("1999-12-31T23:59:59.999999+00:00", "timestamptz"),
    ],
)
def test_canonical_text_round_trips(text: str, pg_type: str) -> None:
    assert format_value(parse_value(text, pg_type)) == text


@pytest.mark.parametrize(
    ("text", "pg_type", "canonical"),
    [
        ("2024-03-10T12:34:56Z", "timestamptz", "2024-03-10T12:34:56.000000+00:00"),
        ("2024-03-10T12:34:56.5+05:30", "timestamptz", "2024-03-10T07:04:56.500000+00:00"),
        ("2024-03-10 12:34:56", "timestamptz", "2024-03-10T12:34:56.000000+00:00"),
        ("2024-03-10T12:34:56.5+05:30", "timestamp", "2024-03-10T12:34:56.500000"),
        ("2024-03-10T12:34:56Z", "timestamp", "2024-03-10T12:34:56.000000"),
        ("2024-03-10T08:00:00", "date", "2024-03-10"),
        (" 17 ", "int4", "17"),
    ],
)
def test_non_canonical_text_is_normalised(text: str, pg_type: str, canonical: str) -> None:
    assert format_value(parse_value(text, pg_type)) == canonical
    assert format_value(parse_value(canonical, pg_type)) == canonical


@pytest.mark.parametrize(
    ("value", "pg_type"),
    [
        (5, "int8"),
        (dt.date(2024, 2, 29), "date"),
        (dt.datetime(2024, 2, 29, 23, 59, 59, 999999), "timestamp"),
        (dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC), "timestamptz"),
        (dt.datetime(2024, 6, 1, 1, 30, 0, 7, tzinfo=NY), "timestamptz"),
    ],
)
def test_value_round_trips(value, pg_type: str) -> None:
    assert parse_value(format_value(value), pg_type) == value


def test_format_is_ordered_like_the_values_for_timestamptz() -> None:
    """Text written by format_value sorts like the instants it names."""
    values = [
        dt.datetime(2024, 3, 10, 12, tzinfo=tz(9)),
        dt.datetime(2024, 3, 10, 1, tzinfo=tz(-5)),
        dt.datetime(2024, 3, 10, 5, 59, 59, 999999, tzinfo=UTC),
    ]
    assert sorted(values) == sorted(values, key=format_value)


# --------------------------------------------------------------------------- later_of


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (None, None, None),
        (None, 5, 5),
        (5, None, 5),
        (3, 7, 7),
        (7, 3, 7),
        (4, 4, 4),
        (dt.date(2024, 1, 2), dt.date(2024, 1, 1), dt.date(2024, 1, 2)),
        (dt.datetime(2024, 1, 1, 0, 0, 0, 1), dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, 0, 0, 0, 1)),
        # aware values compare as instants, not wall clocks
        (
            dt.datetime(2024, 1, 1, 10, tzinfo=tz(5)),  # 05:00Z
            dt.datetime(2024, 1, 1, 6, tzinfo=UTC),
            dt.datetime(2024, 1, 1, 6, tzinfo=UTC),
        ),
    ],
)
def test_later_of(a, b, expected) -> None:
    assert later_of(a, b) == expected
    assert later_of(b, a) == expected


def test_later_of_returns_one_of_its_arguments() -> None:
    a = dt.datetime(2024, 1, 1, 10, tzinfo=tz(5))
    b = dt.datetime(2024, 1, 1, 4, tzinfo=UTC)
    assert later_of(a, b) is a


# --------------------------------------------------------------------------- partition_window


def test_partition_window_utc() -> None:
    window = partition_window(dt.date(2024, 3, 10))
    assert window == Window(dt.datetime(2024, 3, 10, tzinfo=UTC), dt.datetime(2024, 3, 11, tzinfo=UTC))
    assert window.start.utcoffset() == dt.timedelta(0)
    assert window.end.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    ("day", "start_utc", "end_utc", "hours"),
    [
        pytest.param(
            dt.date(2024, 1, 15), dt.datetime(2024, 1, 15, 5, tzinfo=UTC), dt.datetime(2024, 1, 16, 5, tzinfo=UTC), 24, id="winter"
        ),
        pytest.param(
            dt.date(2024, 7, 4), dt.datetime(2024, 7, 4, 4, tzinfo=UTC), dt.datetime(2024, 7, 5, 4, tzinfo=UTC), 24, id="summer"
        ),
        pytest.param(
            dt.date(2024, 3, 10), dt.datetime(2024, 3, 10, 5, tzinfo=UTC), dt.datetime(2024, 3, 11, 4, tzinfo=UTC), 23, id="spring-forward"
        ),
        pytest.param(
            dt.date(2024, 11, 3), dt.datetime(2024, 11, 3, 4, tzinfo=UTC), dt.datetime(2024, 11, 4, 5, tzinfo=UTC), 25, id="fall-back"
        ),
    ],
)
def test_partition_window_new_york(day: dt.date, start_utc, end_utc, hours: int) -> None:
    window = partition_window(day, "America/New_York")
    assert window.start == start_utc
    assert window.end == end_utc
    # the instants, not wall clocks: aware datetimes subtract as elapsed time
    assert window.end.astimezone(UTC) - window.start.astimezone(UTC) == dt.timedelta(hours=hours)
    # the local calendar day, starting at local midnight
    assert window.start.astimezone(NY).replace(tzinfo=None) == dt.datetime.combine(day, dt.time())
    assert window.end.astimezone(NY).replace(tzinfo=None) == dt.datetime.combine(day + dt.timedelta(days=1), dt.time())


def test_partition_window_half_hour_offset_zone() -> None:
    window = partition_window(dt.date(2024, 3, 10), "Asia/Kolkata")
    assert window == Window(dt.datetime(2024, 3, 9, 18, 30, tzinfo=UTC), dt.datetime(2024, 3, 10, 18, 30, tzinfo=UTC))


@pytest.mark.parametrize("timezone", ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago"])
def test_consecutive_partitions_tile_the_timeline(timezone: str) -> None:
    """Each day ends exactly where the next begins, across every DST change of 2024."""
    day = dt.date(2024, 1, 1)
    while day < dt.date(2025, 1, 1):
        this = partition_window(day, timezone)
        following = partition_window(day + dt.timedelta(days=1), timezone)
        assert this.end == following.start
        assert this.start < this.end
        assert bound_for_column(this.end, "timestamptz") == bound_for_column(following.start, "timestamptz")
        day += dt.timedelta(days=1)


@pytest.mark.parametrize("timezone", ["UTC", "America/New_York"])
def test_first_partition_owns_everything_before_it(timezone: str) -> None:
    day = dt.date(2024, 3, 10)
    first = partition_window(day, timezone, first_partition=True)
    regular = partition_window(day, timezone)
    assert first.start is None
    assert first.end == regular.end
    assert regular.start is not None


def test_partition_window_unknown_timezone_raises() -> None:
    with pytest.raises(Exception):  # zoneinfo.ZoneInfoNotFoundError (a KeyError)
        partition_window(dt.date(2024, 3, 10), "Mars/Olympus_Mons")


# --------------------------------------------------------------------------- bound_for_column


@pytest.mark.parametrize(
    ("timezone", "day", "pg_type", "start", "end"),
    [
        ("UTC", dt.date(2024, 3, 10), "date", "2024-03-10", "2024-03-11"),
        ("UTC", dt.date(2024, 3, 10), "timestamp", "2024-03-10T00:00:00.000000", "2024-03-11T00:00:00.000000"),
        (
            "UTC",
            dt.date(2024, 3, 10),
            "timestamptz",
            "2024-03-10T00:00:00.000000+00:00",
            "2024-03-11T00:00:00.000000+00:00",
        ),
        # New York: timestamptz bounds are the UTC instants (23h/25h days) ...
        (
            "America/New_York",
            dt.date(2024, 3, 10),
            "timestamptz",
            "2024-03-10T05:00:00.000000+00:00",
            "2024-03-11T04:00:00.000000+00:00",
        ),
        (
            "America/New_York",
            dt.date(2024, 11, 3),
            "timestamptz",
            "2024-11-03T04:00:00.000000+00:00",
            "2024-11-04T05:00:00.000000+00:00",
        ),
        # ... naive timestamps and dates are the local calendar day
        ("America/New_York", dt.date(2024, 3, 10), "timestamp", "2024-03-10T00:00:00.000000", "2024-03-11T00:00:00.000000"),
        ("America/New_York", dt.date(2024, 11, 3), "date", "2024-11-03", "2024-11-04"),
        ("Asia/Kolkata", dt.date(2024, 3, 10), "date", "2024-03-10", "2024-03-11"),
        ("Pacific/Kiritimati", dt.date(2024, 12, 31), "date", "2024-12-31", "2025-01-01"),
    ],
)
def test_window_bounds_for_each_column_type(timezone: str, day: dt.date, pg_type: str, start: str, end: str) -> None:
    window = partition_window(day, timezone)
    assert bound_for_column(window.start, pg_type) == start
    assert bound_for_column(window.end, pg_type) == end
    # the bounds are valid stored values for the column
    assert format_value(parse_value(start, pg_type)) == start


@pytest.mark.parametrize("pg_type", ["date", "timestamp", "timestamptz"])
def test_bound_for_column_unbounded(pg_type: str) -> None:
    assert bound_for_column(None, pg_type) is None


def test_bound_for_column_converts_any_zone_to_utc_for_timestamptz() -> None:
    instant = dt.datetime(2024, 6, 1, 9, 30, 0, 250, tzinfo=tz(5, 30))
    assert bound_for_column(instant, "timestamptz") == "2024-06-01T04:00:00.000250+00:00"
    assert bound_for_column(instant, "timestamp") == "2024-06-01T09:30:00.000250"
    assert bound_for_column(instant, "date") == "2024-06-01"

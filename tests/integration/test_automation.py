"""Daily automation and freshness through Dagster's evaluation APIs, at chosen times.

Loads are real runs (``dg.materialize``) recorded in the real tracking tables; the
schedules and the freshness sensor are evaluated with ``build_schedule_context`` /
``build_sensor_context`` at chosen times, and their decisions read those tables.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from platform_assets.definitions import build_definitions
from platform_assets.defs import freshness as freshness_defs
from platform_assets.defs.automation import AUTOMATION_TAG
from platform_assets.registry import PostgresSource, Registry
from platform_assets.registry_automation import Automation, Freshness
from tests.helpers import dagster_resources, materialize_partition, query, tracking_runs

START = dt.date(2024, 3, 1)
UTC = dt.timezone.utc

ORDERS = PostgresSource(
    name="orders", table="orders", load="incremental", watermark_column="updated_at",
    watermark_type="timestamp", allow_empty=True,
)
CUSTOMERS = PostgresSource(name="customers", table="customers")


@pytest.fixture
def tables(pg_conn):
    query(
        pg_conn,
        "CREATE TABLE orders (id int PRIMARY KEY, updated_at timestamptz NOT NULL);"
        "INSERT INTO orders SELECT g, '2024-03-01'::timestamptz + g * interval '5 hours' FROM generate_series(1, 40) g;"
        "CREATE TABLE customers (id int PRIMARY KEY, name text);"
        "INSERT INTO customers VALUES (1, 'a'), (2, 'b');",
    )
    return pg_conn


def _registry(*sources: PostgresSource, start: dt.date = START, timezone: str = "UTC", **automation) -> Registry:
    return Registry(start_date=start, timezone=timezone, postgres=list(sources), automation=Automation(**automation))


def _tick(registry: Registry, name: str, pg, store_settings, when: dt.datetime, instance=None):
    """One evaluation of ``name``'s schedule at ``when``: run requests, or the skip message."""
    schedule = build_definitions(registry).resolve_schedule_def(f"{name}_daily")
    resources = dagster_resources(pg, store_settings)
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when, resources=resources) as ctx:
        result = schedule(ctx)
    if isinstance(result, dg.SkipReason):
        return result.skip_message
    return list(result)


def _days(requests) -> list[str]:
    assert isinstance(requests, list), requests
    return [r.partition_key for r in requests]


def _load(registry, pg, store_settings, name, *days: str) -> None:
    for day in days:
        materialize_partition(registry, pg, store_settings, name, day)


def test_the_day_that_ended_is_requested_after_the_run_time_and_not_before(tables, pg, store_settings):
    registry = _registry(ORDERS)
    _load(registry, pg, store_settings, "orders", "2024-03-01", "2024-03-02", "2024-03-03")
    at = lambda text: dt.datetime.fromisoformat(text).replace(tzinfo=UTC)  # noqa: E731
    assert "2024-03-02 is loaded" in _tick(registry, "orders", pg, store_settings, at("2024-03-04 00:14"))
    assert "2024-03-03 is loaded" in _tick(registry, "orders", pg, store_settings, at("2024-03-04 00:15"))
    # never today's partition, which exists during the day (end_offset=1)
    assert isinstance(_tick(registry, "orders", pg, store_settings, at("2024-03-04 23:59")), str)
    requests = _tick(registry, "orders", pg, store_settings, at("2024-03-05 00:15"))
    assert _days(requests) == ["2024-03-04"]
    assert requests[0].run_key == "orders:2024-03-04:0"
    assert requests[0].tags[AUTOMATION_TAG] == "orders:2024-03-04"


def test_missed_days_are_requested_in_day_order_and_loaded_days_are_not_requested_again(
    tables, pg, store_settings
):
    registry = _registry(ORDERS, catch_up_days=5)
    _load(registry, pg, store_settings, "orders", "2024-03-01", "2024-03-02")
    when = dt.datetime(2024, 3, 10, 9, 0, tzinfo=UTC)  # the daemon was down from Mar 3 to Mar 10
    requests = _tick(registry, "orders", pg, store_settings, when)
    assert _days(requests) == ["2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08", "2024-03-09"]
    for request in requests:  # the daemon launches them; each loads after its day ended
        _load(registry, pg, store_settings, "orders", request.partition_key)
    message = _tick(registry, "orders", pg, store_settings, when)
    assert "2024-03-09 is loaded" in message
    # the days older than the horizon are reported, not skipped silently
    assert "beyond the catch-up horizon" in message and "2024-03-03..2024-03-04 (2 days)" in message
    loaded = [r["partition_key"] for r in tracking_runs(tables, "public.orders") if r["status"] == "success"]
    assert loaded == ["2024-03-01", "2024-03-02", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08", "2024-03-09"]


def test_a_day_loaded_before_it_was_over_is_requested_and_snapshot_sources_do_not_catch_up(
    tables, pg, store_settings
):
    tz = "America/New_York"
    today = dt.datetime.now(ZoneInfo(tz)).date()
    registry = _registry(CUSTOMERS, start=today - dt.timedelta(days=5), timezone=tz)
    _load(registry, pg, store_settings, "customers", today.isoformat())  # what `make demo` does
    [run] = tracking_runs(tables, "public.customers")
    assert run["status"] == "success" and run["partition_key"] == today.isoformat()
    local = lambda day, time: dt.datetime.combine(day, time, tzinfo=ZoneInfo(tz))  # noqa: E731
    tomorrow, yesterday = today + dt.timedelta(days=1), today - dt.timedelta(days=1)
    # a full source gets one run, for the latest due day only: no copies of the present for
    # the days before it; until today is over and the run time has come, that day is yesterday
    for when in (local(today, dt.time(23, 59)), local(tomorrow, dt.time(0, 14))):
        assert _days(_tick(registry, "customers", pg, store_settings, when)) == [yesterday.isoformat()]
    # after it: today's partition counts as not loaded (its load started during the day)
    requests = _tick(registry, "customers", pg, store_settings, local(tomorrow, dt.time(0, 15)))
    assert _days(requests) == [today.isoformat()]


def test_missed_days_of_a_snapshot_source_are_reported(tables, pg, store_settings):
    registry = _registry(CUSTOMERS)
    _load(registry, pg, store_settings, "customers", "2024-03-01", "2024-03-05")
    message = _tick(registry, "customers", pg, store_settings, dt.datetime(2024, 3, 6, 1, 0, tzinfo=UTC))
    assert "2024-03-05 is loaded" in message
    assert "missed, not filled" in message and "2024-03-02, 2024-03-03, 2024-03-04" in message


def test_a_failed_attempt_is_requested_again_when_its_retry_is_due(tables, pg, store_settings):
    # The retry is timed from the run's real end, so the ticks follow the wall clock: the
    # schedule's timezone puts them near local noon, where the 31 minutes they span cannot
    # cross into the next day (which would make another day due; CI once ran at 23:45 UTC).
    utc_plus = 12 - dt.datetime.now(UTC).hour
    tz = f"Etc/GMT{-utc_plus:+d}"  # Etc/GMT-N is UTC+N
    today = dt.datetime.now(ZoneInfo(tz)).date()
    registry = _registry(ORDERS, start=today - dt.timedelta(days=3), timezone=tz, at=dt.time(0, 0), catch_up_days=1)
    day = (today - dt.timedelta(days=1)).isoformat()
    query(tables, "DROP TABLE orders")  # the source is broken: the automated run fails
    with dg.instance_for_test() as instance:
        now = dt.datetime.now(UTC)
        [request] = _tick(registry, "orders", pg, store_settings, now, instance)
        assert request.partition_key == day and request.run_key == f"orders:{day}:0"
        result = dg.materialize(
            [build_definitions(registry).get_assets_def(dg.AssetKey(["bronze", "postgres", "orders"]))],
            partition_key=day, resources=dagster_resources(pg, store_settings), raise_on_error=False,
            tags={**request.tags, "dagster/run_key": request.run_key}, instance=instance,
        )
        assert not result.success
        ended = dt.datetime.now(UTC)
        for when in (ended, ended + dt.timedelta(minutes=29)):
            message = _tick(registry, "orders", pg, store_settings, when, instance)
            assert "not requested now" in message and day in message
        [retry] = _tick(registry, "orders", pg, store_settings, ended + dt.timedelta(minutes=31), instance)
        assert retry.partition_key == day and retry.run_key == f"orders:{day}:1"


def test_freshness_fails_naming_yesterday_when_only_older_days_were_backfilled(
    tables, pg, store_settings, monkeypatch
):
    today = dt.datetime.now(UTC).date()
    day = lambda n: (today - dt.timedelta(days=n)).isoformat()  # noqa: E731
    source = CUSTOMERS.model_copy(update={"freshness": Freshness(deadline_hours=6)})
    registry = _registry(source, start=today - dt.timedelta(days=10))
    _load(registry, pg, store_settings, "customers", day(6), day(5), day(4), day(3), day(2))  # a backfill
    defs = build_definitions(registry)
    sensor = defs.resolve_sensor_def("freshness_checks")
    resources = dagster_resources(pg, store_settings)

    def evaluate(now: dt.datetime, cursor: str | None = None) -> dg.SensorResult:
        monkeypatch.setattr(freshness_defs, "_now", lambda: now)
        with dg.build_sensor_context(cursor=cursor, resources=resources) as context:
            return sensor(context)

    midnight = dt.datetime.combine(today, dt.time(0), tzinfo=UTC)
    early = evaluate(midnight + dt.timedelta(hours=5, minutes=59))  # yesterday's deadline not passed yet
    [evaluation] = early.asset_events
    assert evaluation.passed is True
    assert evaluation.metadata["checked_partition"].value == day(2)
    assert evaluation.metadata["pending_partition"].value == day(1)
    late = evaluate(midnight + dt.timedelta(hours=6), early.cursor)
    [evaluation] = late.asset_events
    assert isinstance(evaluation, dg.AssetCheckEvaluation) and evaluation.check_name == "freshness"
    assert evaluation.passed is False
    assert evaluation.metadata["checked_partition"].value == day(1)
    assert f"partition {day(1)} has not loaded" in evaluation.metadata["summary"].value
    # the same result is not recorded again at the next tick
    assert evaluate(midnight + dt.timedelta(hours=6, minutes=5), late.cursor).asset_events == []
    # once yesterday loads (after its day ended), the check passes (a snapshot source: the
    # missing day before is reported, not failed on: nothing can fill it)
    _load(registry, pg, store_settings, "customers", day(1))
    [evaluation] = evaluate(midnight + dt.timedelta(hours=7), late.cursor).asset_events
    assert evaluation.passed is True and evaluation.metadata["checked_partition"].value == day(1)
    assert evaluation.metadata["missing_partitions"].value == [day(7)]  # in the horizon, before the backfill


def test_the_freshness_check_runs_from_the_ui(tables, pg, store_settings):
    today = dt.datetime.now(UTC).date()
    registry = _registry(CUSTOMERS.model_copy(update={"freshness": Freshness(deadline_hours=0)}),
                         start=today - dt.timedelta(days=3))
    _load(registry, pg, store_settings, "customers", (today - dt.timedelta(days=3)).isoformat())
    defs = build_definitions(registry)
    checks = defs.resolve_asset_graph().asset_check_keys
    key = dg.AssetCheckKey(dg.AssetKey(["bronze", "postgres", "customers"]), "freshness")
    assert key in checks
    [checks_def] = [c for c in defs.asset_checks if key in c.check_keys]
    result = dg.materialize(
        [defs.get_assets_def(key.asset_key), checks_def], selection=dg.AssetSelection.checks(key),
        resources=dagster_resources(pg, store_settings),
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed is False
    assert (today - dt.timedelta(days=1)).isoformat() in evaluation.metadata["summary"].value


def test_a_file_family_expected_daily_has_a_freshness_check_and_the_others_none(
    tmp_path, pg, store_settings, monkeypatch
):
    from platform_assets.registry import FileFamily

    today = dt.datetime.now(UTC).date()
    days_ago = lambda n: today - dt.timedelta(days=n)  # noqa: E731
    for n in (3, 2):
        (tmp_path / f"customers_{days_ago(n):%Y%m%d}.csv").write_text(f"id\n{n}\n")
    daily = FileFamily(
        name="daily_files", directory=str(tmp_path), glob="customers_*.csv", format="csv",
        date_pattern=r"_(\d{8})\.", date_format="%Y%m%d", stable_seconds=0, freshness=Freshness(deadline_hours=6),
    )
    other = daily.model_copy(update={"name": "other_files", "directory": str(tmp_path / "none"), "freshness": None})
    registry = Registry(start_date=days_ago(3), files=[daily, other])
    for n in (3, 2):  # a file's partition counts whenever it loaded (a file does not grow after its day)
        materialize_partition(registry, pg, store_settings, "daily_files", days_ago(n).isoformat(), group="files")
    defs = build_definitions(registry)
    checked = {k.asset_key.path[-1] for k in defs.resolve_asset_graph().asset_check_keys if k.name == "freshness"}
    assert checked == {"daily_files"}
    monkeypatch.setattr(freshness_defs, "_now", lambda: dt.datetime.combine(today, dt.time(7), tzinfo=UTC))
    with dg.build_sensor_context(resources=dagster_resources(pg, store_settings)) as context:
        [evaluation] = defs.resolve_sensor_def("freshness_checks")(context).asset_events
    assert evaluation.passed is False
    assert evaluation.metadata["summary"].value.startswith(f"partition {days_ago(1).isoformat()} has not loaded")

"""The registry's automation and freshness settings (pydantic), and the schedules built from them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from platform_assets.registry import Freshness, RegistryError, load_registry

BASE = """
timezone: Europe/Paris
automation: {at: "01:30", catch_up_days: 3}
postgres:
  - {name: orders, table: orders, load: incremental, watermark_column: updated_at, watermark_type: timestamp}
  - {name: customers, table: customers, automation: {at: "06:20"}, freshness: {deadline_hours: 12}}
  - {name: events, table: events, automation: false, freshness: false}
files:
  - {name: drops, directory: data/input, glob: "*.csv", format: csv}
  - {name: daily_drops, directory: data/other, glob: "*.csv", format: csv, freshness: {deadline_hours: 30}}
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return load_registry(path)


def test_defaults_overrides_and_opt_out(tmp_path: Path) -> None:
    registry = _load(tmp_path, BASE)
    orders, customers, events = registry.postgres
    assert orders.automation_settings(registry).at == dt.time(1, 30)
    assert orders.automation_settings(registry).catch_up_days == 3
    assert orders.replayable and not customers.replayable and not events.replayable
    assert customers.automation_settings(registry).at == dt.time(6, 20)
    assert customers.automation_settings(registry).catch_up_days == 3
    assert events.automation_settings(registry).enabled is False
    assert orders.freshness == Freshness(deadline_hours=6)
    assert customers.freshness == Freshness(deadline_hours=12)
    assert events.freshness is None
    drops, daily = registry.files
    assert drops.freshness is None  # files: only when expected daily
    assert daily.freshness == Freshness(deadline_hours=30)


def test_schedules_follow_the_registry(tmp_path: Path) -> None:
    import dagster as dg

    from platform_assets.definitions import build_definitions

    repo = build_definitions(_load(tmp_path, BASE)).get_repository_def()
    schedules = {s.name: s for s in repo.schedule_defs}
    assert set(schedules) == {"orders_daily", "customers_daily", "events_daily"}
    assert schedules["orders_daily"].cron_schedule == "0,15,30,45 * * * *"
    assert schedules["customers_daily"].cron_schedule == "5,20,35,50 * * * *"
    assert schedules["orders_daily"].execution_timezone == "Europe/Paris"
    assert schedules["orders_daily"].default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedules["events_daily"].default_status == dg.DefaultScheduleStatus.STOPPED
    checks = {key for key in repo.asset_graph.asset_check_keys if key.name == "freshness"}
    assert {"/".join(k.asset_key.path) for k in checks} == {
        "bronze/postgres/orders", "bronze/postgres/customers", "bronze/files/daily_drops"}
    assert "freshness_checks" in {s.name for s in repo.sensor_defs}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: a, table: a, freshness_hours: 26}", "freshness_hours was replaced by freshness.deadline_hours"),
        ("{name: a, table: a, automation: {at: '25:00'}}", "source 'a', field automation.at"),
        ("{name: a, table: a, automation: {at: 6:20}}", 'quoted "HH:MM"'),
        ("{name: a, table: a, automation: {catch_up_days: 0}}", "source 'a', field automation.catch_up_days"),
        ("{name: a, table: a, automation: {every: 1}}", "source 'a', field automation.every"),
        ("{name: a, table: a, freshness: {deadline_hours: -1}}", "source 'a', field freshness.deadline_hours"),
    ],
)
def test_bad_entries_name_the_source_and_the_field(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message.replace(".", r"\.")):
        _load(tmp_path, f"postgres:\n  - {entry}\n")


def test_a_tick_fails_visibly_when_the_tracking_database_is_unreachable() -> None:
    import dagster as dg

    from platform_assets.definitions import build_definitions
    from platform_assets.registry import PostgresSource, Registry
    from platform_resources.postgres import PostgresResource

    schedule = build_definitions(Registry(postgres=[PostgresSource(name="a", table="a")])).resolve_schedule_def("a_daily")
    db = PostgresResource(host="127.0.0.1", port=1, user="u", password="s3cret-pw", dbname="d")
    when = dt.datetime(2026, 12, 1, 0, 15, tzinfo=dt.timezone.utc)
    with dg.build_schedule_context(scheduled_execution_time=when, resources={"platform_db": db}) as context:
        with pytest.raises(RuntimeError, match="cannot read the tracking tables in postgresql://u@127.0.0.1:1/d") as e:
            schedule(context)
    assert "s3cret-pw" not in str(e.value)

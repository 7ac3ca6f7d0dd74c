"""Unit tests of partition_planning.plan_partition: what a partition's load reads, from the source's state."""

from __future__ import annotations

import datetime as dt

import pytest

from platform_assets.ingestion.partitions.postgres import SourceSpec, plan_partition
from platform_assets.ingestion.postgres.query_builder import ExtractRange
from platform_assets.ingestion.postgres.source_state import PartitionLoad, SourceState
from platform_assets.ingestion.tracking.watermark_store import StoredWatermark

START = dt.date(2024, 3, 1)
INTEGER = SourceSpec(name="events", source_name="public.events", schema="public", table="events",
                     load="incremental", watermark_column="id", watermark_type="integer", start_date=START)
TIMESTAMP = SourceSpec(name="orders", source_name="public.orders", schema="public", table="orders",
                       load="incremental", watermark_column="updated_at", watermark_type="timestamp",
                       start_date=START, timezone="Europe/Berlin")
FULL = SourceSpec(name="customers", source_name="public.customers", schema="public", table="customers")


def _range(lower: str | None, upper: str | None, empty: bool = False) -> ExtractRange:
    return ExtractRange(column="id", cast_type="int8", lower=lower, upper=upper, upper_inclusive=upper is not None,
                        include_nulls=lower is None, empty=empty)


def _load(run_id: int, key: str, extract_range: ExtractRange, mode: str = "range") -> PartitionLoad:
    return PartitionLoad(run_id, key, mode, extract_range, "1:2:", None, False, f"k/{key}")


def _state(watermark: str | None, *loads: PartitionLoad, frontier: int | None = None,
           last_written: str | None = "unset") -> SourceState:
    stored = None if watermark is None else StoredWatermark("public.events", "id", watermark, "integer", None, None)
    written = watermark if last_written == "unset" else last_written
    return SourceState(
        watermark=stored, last_written=written, wrote_watermark=bool(loads),
        partitions={load.partition_key: load for load in loads},
        frontier=next((load for load in loads if load.run_id == frontier), None),
    )


def test_full_sources_take_a_snapshot_and_never_merge() -> None:
    state = _state(None, _load(1, "2024-03-02", _range(None, None), mode="full"))
    plan = plan_partition(FULL, state, "2024-03-02")
    assert (plan.mode, plan.merge, plan.window) == ("full", False, None)


def test_first_integer_partition_reads_from_the_start_with_nulls() -> None:
    plan = plan_partition(INTEGER, SourceState(), "2024-03-05")
    assert (plan.mode, plan.lower, plan.include_nulls, plan.merge, plan.watermark_reset) == (
        "range", None, True, False, None)


def test_a_new_integer_partition_starts_at_the_stored_watermark() -> None:
    first = _load(1, "2024-03-01", _range(None, "100"))
    plan = plan_partition(INTEGER, _state("100", first, frontier=1), "2024-03-02")
    assert (plan.mode, plan.lower, plan.include_nulls, plan.merge) == ("range", "100", False, False)


def test_the_frontier_loaded_again_grows_from_its_own_lower_bound_and_merges() -> None:
    first = _load(1, "2024-03-01", _range(None, "100"))
    second = _load(2, "2024-03-02", _range("100", "150"))
    plan = plan_partition(INTEGER, _state("150", first, second, frontier=2), "2024-03-02")
    assert (plan.mode, plan.lower, plan.previous_upper, plan.merge) == ("range", "100", "150", True)


@pytest.mark.parametrize("rebuild", [False, True])
def test_an_older_integer_partition_replays_its_recorded_range(rebuild: bool) -> None:
    first = _load(1, "2024-03-01", _range(None, "100"))
    second = _load(2, "2024-03-02", _range("100", "150"))
    plan = plan_partition(INTEGER, _state("150", first, second, frontier=2), "2024-03-01", rebuild=rebuild)
    assert (plan.mode, plan.replay_range, plan.merge, plan.rebuild) == ("replay", first.extract_range, not rebuild,
                                                                         rebuild)
    assert not plan.writes_watermark


def test_an_empty_range_replays_as_empty() -> None:
    empty = _load(1, "2024-03-01", _range(None, None, empty=True))
    later = _load(2, "2024-03-02", _range(None, "5"))
    plan = plan_partition(INTEGER, _state("5", empty, later, frontier=2), "2024-03-01")
    assert plan.replay_range.empty


def test_a_reset_is_acted_on_by_the_next_new_partition() -> None:
    first = _load(1, "2024-03-01", _range(None, "100"))
    deleted = _state(None, first, frontier=1, last_written="100")
    plan = plan_partition(INTEGER, deleted, "2024-03-02")
    assert (plan.lower, plan.include_nulls, plan.watermark_reset) == (None, True, {"old": "100", "new": None})
    updated = _state("40", first, frontier=1, last_written="100")
    plan = plan_partition(INTEGER, updated, "2024-03-02")
    assert (plan.lower, plan.watermark_reset) == ("40", {"old": "100", "new": "40"})


def test_a_replay_does_not_act_on_a_pending_reset() -> None:
    first = _load(1, "2024-03-01", _range(None, "100"))
    second = _load(2, "2024-03-02", _range("100", "150"))
    plan = plan_partition(INTEGER, _state("40", first, second, frontier=2, last_written="150"), "2024-03-01")
    assert (plan.mode, plan.watermark_reset) == ("replay", None)


@pytest.mark.parametrize(("reset", "lower"), [("40", "40"), ("120", "100"), (None, None)])
def test_the_frontier_acting_on_a_reset_never_shrinks_its_range(reset: str | None, lower: str | None) -> None:
    first = _load(1, "2024-03-01", _range(None, "100"))
    second = _load(2, "2024-03-02", _range("100", "150"))
    plan = plan_partition(INTEGER, _state(reset, first, second, frontier=2, last_written="150"), "2024-03-02",
                          rebuild=True)
    assert (plan.lower, plan.rebuild, plan.merge) == (lower, True, False)
    assert plan.watermark_reset == {"old": "150", "new": reset}


def test_a_timestamp_partition_is_its_day_in_the_registry_timezone() -> None:
    plan = plan_partition(TIMESTAMP, SourceState(), "2024-03-31")  # the day Berlin moves to summer time
    assert plan.mode == "window" and not plan.merge and not plan.include_nulls
    assert plan.window.start.isoformat() == "2024-03-31T00:00:00+01:00"
    assert plan.window.end.astimezone(dt.UTC) - plan.window.start.astimezone(dt.UTC) == dt.timedelta(hours=23)


def test_the_first_timestamp_partition_also_holds_everything_earlier_and_nulls() -> None:
    plan = plan_partition(TIMESTAMP, SourceState(), str(START))
    assert plan.window.start is None and plan.include_nulls


def test_a_timestamp_partition_loaded_again_merges_unless_rebuilt() -> None:
    loaded = _state("x", _load(1, "2024-03-04", _range(None, None), mode="window"))
    assert plan_partition(TIMESTAMP, loaded, "2024-03-04").merge
    assert not plan_partition(TIMESTAMP, loaded, "2024-03-04", rebuild=True).merge
    assert not plan_partition(TIMESTAMP, loaded, "2024-03-05").merge


@pytest.mark.parametrize(
    ("stored", "last_written", "wrote", "expected"),
    [
        ("10", "10", True, None),
        ("5", "10", True, {"old": "10", "new": "5"}),
        (None, "10", True, {"old": "10", "new": None}),
        (None, None, False, None),  # never written: a first run, not a reset
    ],
)
def test_source_state_reset(stored: str | None, last_written: str | None, wrote: bool, expected: dict | None) -> None:
    watermark = None if stored is None else StoredWatermark("s", "id", stored, "integer", None, None)
    assert SourceState(watermark=watermark, last_written=last_written, wrote_watermark=wrote).reset() == expected


def test_after_ranges_that_loaded_no_value_the_next_takes_every_value_and_no_null() -> None:
    """A watermark row holding NULL: the first range loaded NULLs at most (found by an attack test)."""
    first = _load(1, "2024-03-01", _range(None, None, empty=True))
    stored_null = SourceState(
        watermark=StoredWatermark("public.events", "id", None, "integer", None, None), last_written=None,
        wrote_watermark=True, partitions={first.partition_key: first}, frontier=first,
    )
    plan = plan_partition(INTEGER, stored_null, "2024-03-02")
    assert (plan.mode, plan.lower, plan.include_nulls, plan.watermark_reset) == ("range", None, False, None)


def test_a_reset_past_the_frontier_end_is_left_to_the_next_new_partition() -> None:
    """Found by an attack test: the frontier acting on the guide's UPDATE to a value past
    its end re-read the rows the reset meant to skip."""
    first = _load(1, "2024-03-01", _range(None, "100"))
    second = _load(2, "2024-03-02", _range("100", "150"))
    skip = _state("200", first, second, frontier=2, last_written="150")
    frontier = plan_partition(INTEGER, skip, "2024-03-02")
    assert (frontier.mode, frontier.replay_range, frontier.watermark_reset) == ("replay", second.extract_range, None)
    new = plan_partition(INTEGER, skip, "2024-03-03")
    assert (new.mode, new.lower, new.watermark_reset) == ("range", "200", {"old": "150", "new": "200"})


def test_a_partition_loaded_as_another_kind_of_source_is_replaced_not_merged() -> None:
    """Found by an attack test: a source switched from a full load to incremental merged the
    day into the old snapshot."""
    snapshot = _load(1, "2024-03-04", _range(None, None), mode="full")
    plan = plan_partition(TIMESTAMP, SourceState(partitions={"2024-03-04": snapshot}), "2024-03-04")
    assert (plan.mode, plan.merge, plan.merge_from) == ("window", False, None)
    plan = plan_partition(INTEGER, SourceState(partitions={"2024-03-04": snapshot}), "2024-03-04")
    assert (plan.mode, plan.merge, plan.lower, plan.include_nulls) == ("range", False, None, True)


def test_a_replay_merges_from_where_the_previous_load_wrote() -> None:
    loaded = SourceState(partitions={"2024-03-04": _load(1, "2024-03-04", _range(None, None), mode="window")})
    assert plan_partition(TIMESTAMP, loaded, "2024-03-04").merge_from == "k/2024-03-04"


CAPTURING = SourceSpec(name="items", source_name="public.items", schema="public", table="items",
                       capture_deletes=True, start_date=START)


@pytest.mark.parametrize(
    ("loaded", "partition", "observes"),
    [
        ([], "2024-03-05", True),  # the first run: a key set to compare with next time
        (["2024-03-05"], "2024-03-05", True),  # the frontier again
        (["2024-03-05"], "2024-03-06", True),  # a newer day
        (["2024-03-05"], "2024-03-04", False),  # an older day: observes nothing
        (["2024-03-03", "2024-03-05"], "2024-03-03", False),
    ],
)
def test_only_runs_of_the_newest_partition_observe_deletes(loaded: list[str], partition: str, observes: bool) -> None:
    state = SourceState(partitions={key: _load(n, key, _range(None, None), "full") for n, key in enumerate(loaded)})
    assert plan_partition(CAPTURING, state, partition).observe_deletes is observes
    assert plan_partition(INTEGER, state, partition).observe_deletes is False


@pytest.mark.parametrize(
    ("pattern", "tombstone"),
    [
        ("postgres/{name}/{date}/{name}.parquet", "postgres/items__deletes/2024-03-05/items.parquet"),
        ("raw/{date}/{name}.parquet", "_deletes/raw/2024-03-05/items.parquet"),
        ("raw/{name}-x/{date}/data.parquet", "raw/items__deletes-x/2024-03-05/data.parquet"),
        ("raw/{date}/data.parquet", "_deletes/raw/2024-03-05/data.parquet"),
    ],
)
def test_the_tombstone_sits_outside_the_datas_prefix(pattern: str, tombstone: str) -> None:
    spec = SourceSpec(name="items", source_name="public.items", object_key_pattern=pattern, capture_deletes=True)
    assert spec.deletes_object_key("2024-03-05") == tombstone
    assert spec.deletes_object_key("2024-03-05") != spec.object_key("2024-03-05")

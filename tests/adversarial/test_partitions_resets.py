"""The guide's watermark UPDATE acted on by integer partitions.

Promise (README, "Resets and partitions"): "the next load past the frontier (a new
partition, or the frontier loaded again) reads from the new value", and the run says so
in ``watermark_reset``.
"""

from __future__ import annotations

from typing import Any

from platform_assets.ingestion.postgres import extract as pg_extract
from platform_assets.ingestion.sink.parquet import ParquetSink
from tests.adversarial._common import D1, D2, D3, column_union, registry, rows
from tests.adversarial._common2 import EVENTS
from tests.helpers import materialize_partition, query, tracking_runs


def test_an_upward_reset_skips_rows_even_when_the_frontier_is_loaded_again(pg_conn, pg, store_settings):
    """Found by an attack test: D1 = (None, 3], D2 = (3, 6] (the frontier); ids 7..10
    arrive; the user sets the watermark to 8 ("read the rows after 8"). Loading the
    frontier D2 again read from min(8, 3) = 3 and loaded 7 and 8, which the UPDATE skipped.
    A reset past the frontier's end is now acted on by the next new partition only: the
    frontier keeps its range."""
    query(pg_conn, "CREATE TABLE events (id bigserial PRIMARY KEY, kind text);"
                   "INSERT INTO events (kind) SELECT 'a' FROM generate_series(1, 3)")
    reg = registry(EVENTS)
    assert materialize_partition(reg, pg, store_settings, "events", D1).success
    query(pg_conn, "INSERT INTO events (kind) SELECT 'b' FROM generate_series(1, 3)")
    assert materialize_partition(reg, pg, store_settings, "events", D2).success
    query(pg_conn, "INSERT INTO events (kind) SELECT 'c' FROM generate_series(1, 4)")
    query(pg_conn, "UPDATE data_platform.watermarks SET watermark_value = '8' WHERE source_name = 'public.events'")
    result = materialize_partition(reg, pg, store_settings, "events", D2)
    [materialization] = result.asset_materializations_for_node("bronze__postgres__events")
    assert "watermark_reset" not in materialization.metadata
    assert sorted(r[0] for r in rows(store_settings, "events", D2, "id")) == [4, 5, 6]
    result = materialize_partition(reg, pg, store_settings, "events", D3)
    [materialization] = result.asset_materializations_for_node("bronze__postgres__events")
    assert materialization.metadata["watermark_reset"].value == {"old": "6", "new": "8"}
    assert column_union(store_settings, "events", [D1, D2, D3], "id") == [1, 2, 3, 4, 5, 6, 9, 10]


def test_a_reset_made_while_a_run_extracts_is_overwritten_and_never_reported(
    pg_conn, pg, store_settings, monkeypatch
):
    """The user runs the guide's ``DELETE FROM data_platform.watermarks ...`` ("extract
    again") while a run of the source is extracting (a backfill is going on). That run read
    the watermark under its lock before, and ``tracking.commit_success`` then upserts its
    own value unconditionally: the DELETE is silently undone. The next new partition reads
    past the run's value, no run acts on the reset and none reports ``watermark_reset``.
    Expected: a later run acts on the reset and reports it (or the overwrite is refused).
    """
    query(pg_conn, "CREATE TABLE events (id bigserial PRIMARY KEY, kind text);"
                   "INSERT INTO events (kind) SELECT 'a' FROM generate_series(1, 5)")
    reg = registry(EVENTS)
    assert materialize_partition(reg, pg, store_settings, "events", D1).success
    query(pg_conn, "INSERT INTO events (kind) SELECT 'b' FROM generate_series(1, 3)")
    armed = {"on": True}

    class Sink(ParquetSink):
        def write(self, batch: Any) -> None:
            super().write(batch)
            if armed["on"]:
                armed["on"] = False
                query(pg_conn, "DELETE FROM data_platform.watermarks WHERE source_name = 'public.events'")

    monkeypatch.setattr(pg_extract, "ParquetSink", Sink)
    assert materialize_partition(reg, pg, store_settings, "events", D2).success
    monkeypatch.setattr(pg_extract, "ParquetSink", ParquetSink)
    assert not armed["on"]
    query(pg_conn, "INSERT INTO events (kind) VALUES ('c')")
    assert materialize_partition(reg, pg, store_settings, "events", D3).success
    resets = [r["watermark_reset"] for r in tracking_runs(pg_conn, "public.events")]
    assert any(resets), f"the DELETE was never acted on nor reported: {resets}, " \
                        f"D3 holds {column_union(store_settings, 'events', [D3], 'id')}"

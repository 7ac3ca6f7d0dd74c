"""State machine for the model-based test of deletes capture (README, "Deletes").

The model keeps the source's keys, the key set the last frontier run observed, and
the deletions bronze must hold: each time a run of the newest partition (or a newer
one) runs, the keys present at the previous observation and gone now are deletions,
once. Hypothesis draws inserts, deletes, re-inserts (a key deleted and inserted again
between two runs is not a deletion), watermark resets, materializations of any
partition in any order (through the engine or Dagster, several at once), rebuilds and
runs that fail after storing their tombstone but before committing.

After every step, the tombstone objects read back from S3 hold exactly the model's
deletions (as a multiset of keys): none twice, none lost, none invented. After a run
that failed, the next run of the source restores what the failure left; until then
the failed run's tombstone may hold the deletions it observed, and nothing else.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import uuid
from collections import Counter
from typing import Any

import dagster as dg
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.partitions.postgres import SourceSpec
from platform_assets.ingestion.postgres.partition_load import load_partition
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.tracking import migrations, run_records
from platform_assets.registry import PostgresSource, Registry
from platform_resources.object_store import ObjectStore
from tests.helpers import bronze_objects, materialize_partition, query
from tests.model.concurrently import run_concurrently

START = dt.date(2024, 3, 1)
PARTITIONS = [str(START + dt.timedelta(days=n)) for n in range(8)]
KEYS = st.integers(min_value=1, max_value=12)
_FAIL_COMMITS = threading.local()
_real_commit = run_records.commit_success


def _commit(*args: Any, **kwargs: Any) -> Any:
    if getattr(_FAIL_COMMITS, "on", False):
        raise IngestionError("injected: the platform database went away before the commit")
    return _real_commit(*args, **kwargs)


class DeleteMachine(RuleBasedStateMachine):
    pg: Any = None
    store_settings: Any = None

    def __init__(self) -> None:
        super().__init__()
        suffix = uuid.uuid4().hex[:8]
        self.schema, self.name = f"d_{suffix}", f"del_{suffix}"
        self.conn = self.pg.connect()
        self.conn.autocommit = True
        migrations.bootstrap(self.conn)
        self.keys: set[int] = set()
        self.observed: set[int] | None = None
        self.expected: Counter[int] = Counter()
        self.newest: str | None = None
        self.unrepaired: Counter[int] = Counter()
        self.load = "full"
        run_records.commit_success = _commit

    @initialize(load=st.sampled_from(["full", "incremental"]), rows=st.sets(KEYS, max_size=8))
    def create_source(self, load: str, rows: set[int]) -> None:
        self.load = load
        query(self.conn, f'CREATE SCHEMA "{self.schema}"; CREATE TABLE "{self.schema}".t '
                         "(id int PRIMARY KEY, wm timestamptz NOT NULL DEFAULT '2024-03-01 12:00+00')")
        for key in rows:
            self.insert(key)

    def source(self) -> PostgresSource:
        extra = {"load": "incremental", "watermark_column": "wm", "watermark_type": "timestamp"} \
            if self.load == "incremental" else {}
        return PostgresSource(name=self.name, schema=self.schema, table="t", capture_deletes=True,
                              allow_empty=True, **extra)

    def registry(self) -> Registry:
        return Registry(start_date=START, postgres=[self.source()])

    def spec(self) -> SourceSpec:
        return self.source().spec(self.registry())

    def services(self) -> Services:
        settings = self.store_settings
        return Services(source=self.pg, platform=self.pg, store=ObjectStore(settings.client(), settings.endpoint_url),
                        bronze_bucket=settings.buckets["bronze"], lock_wait_seconds=120)

    # ------------------------------------------------------------------ source changes

    @rule(key=KEYS)
    def insert(self, key: int) -> None:
        query(self.conn, f'INSERT INTO "{self.schema}".t (id) VALUES (%s) ON CONFLICT DO NOTHING', (key,))
        self.keys.add(key)

    @rule(key=KEYS)
    def delete(self, key: int) -> None:
        query(self.conn, f'DELETE FROM "{self.schema}".t WHERE id = %s', (key,))
        self.keys.discard(key)

    @rule(key=KEYS)
    def delete_and_insert_again(self, key: int) -> None:
        query(self.conn, f'DELETE FROM "{self.schema}".t WHERE id = %s', (key,))
        self.insert(key)

    @precondition(lambda self: self.load == "incremental")
    @rule()
    def reset_watermark(self) -> None:
        query(self.conn, "DELETE FROM data_platform.watermarks WHERE source_name = %s", (f"{self.schema}.t",))

    # ------------------------------------------------------------------ runs

    def _observe(self, partitions: list[str]) -> None:
        """The model after successful runs of ``partitions`` on the current source."""
        if self.newest is None or max(partitions) >= self.newest:
            if self.observed is not None:
                self.expected.update(self.observed - self.keys)
            self.observed = set(self.keys)
        self.newest = max([*partitions, *([self.newest] if self.newest else [])])
        self.unrepaired.clear()

    def _run(self, partition: str, via: str, rebuild: bool = False) -> None:
        if via == "engine":
            outcome = load_partition(self.spec(), partition, self.services(), rebuild=rebuild)
            assert not outcome.reload_errors, outcome.reload_errors
            return
        result = materialize_partition(self.registry(), self.pg, self.store_settings, self.name, partition)
        assert result.success
        failed = [e for e in result.get_asset_check_evaluations()
                  if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
        assert not failed, [(e.check_name, e.metadata) for e in failed]

    @rule(data=st.data(), via=st.sampled_from(["engine"] * 3 + ["dagster"]), rebuild=st.booleans())
    def materialize(self, data: st.DataObject, via: str, rebuild: bool) -> None:
        """Any partition; the days just past the newest most often (a daily schedule)."""
        newer = [p for p in PARTITIONS if self.newest is None or p > self.newest]
        partition = data.draw(st.sampled_from(newer[:1] * 3 + PARTITIONS) if newer else st.sampled_from(PARTITIONS))
        self._run(partition, via, rebuild and via == "engine")
        self._observe([partition])

    @rule(partitions=st.lists(st.sampled_from(PARTITIONS), min_size=2, max_size=3))
    def materialize_in_parallel(self, partitions: list[str]) -> None:
        run_concurrently(*(functools.partial(self._run, p, "engine") for p in partitions))
        self._observe(partitions)

    @rule(data=st.data(), delete_first=st.booleans())
    def run_fails_before_commit(self, data: st.DataObject, delete_first: bool) -> None:
        """Mostly the frontier (the runs that store a tombstone), sometimes an older partition;
        often right after a key the last observation saw was deleted (a tombstone to store)."""
        if delete_first and self.observed and self.observed & self.keys:
            self.delete(data.draw(st.sampled_from(sorted(self.observed & self.keys))))
        newer = [p for p in PARTITIONS if self.newest is None or p >= self.newest]
        partition = data.draw(st.sampled_from(newer[:2] + PARTITIONS[:1]))
        frontier = self.newest is None or partition >= self.newest
        _FAIL_COMMITS.on = True
        try:
            load_partition(self.spec(), partition, self.services())
        except IngestionError as e:
            assert "injected" in str(e)
        else:
            raise AssertionError("the injected failure did not fail the run")
        finally:
            _FAIL_COMMITS.on = False
        if frontier and self.observed is not None:
            self.unrepaired.update(self.observed - self.keys)

    # ------------------------------------------------------------------ the invariant

    @invariant()
    def tombstones_hold_each_deletion_once(self) -> None:
        held: Counter[int] = Counter()
        for table in bronze_objects(self.store_settings, f"postgres/{self.name}__deletes/").values():
            held.update(table.column("id").to_pylist())
        extra = held - self.expected
        assert self.expected - held == Counter(), ("deletions lost", self.expected - held, held)
        assert extra - self.unrepaired == Counter(), ("deletions invented or repeated", extra, self.expected)

    def teardown(self) -> None:
        run_records.commit_success = _real_commit
        query(self.conn, f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.conn.close()

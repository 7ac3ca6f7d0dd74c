"""State machines for the model-based test of database partitions (README, "What a partition holds").

A tiny model of the source (its committed rows, every version it ever committed, the
transactions left open) and of what bronze must hold. Hypothesis draws sequences of
operations: inserts, updates (moving a row to another day, keeping its watermark,
setting it NULL), deletes, transactions left open (with savepoints) and committed or
rolled back later, materializations of any partition in any order (through the
engine or through Dagster, as the UI launches them), several at once in threads as a
backfill launches them, rebuilds and the guide's watermark resets. After every step
the bronze objects are read back from S3 and compared with the model.

Timestamp sources, after every step:
- no version (key, watermark) is in two partitions, and each sits in the partition its
  watermark falls on (NULL and earlier: the first);
- every row holds exactly the values of a version the source committed;
- every version an extract saw is still in bronze (a replay merges, never drops), and a
  rebuilt partition equals the source;
- rows committed by a transaction that was open while a partition was loaded are in
  that partition after the next run of the source.

Integer sources: every row at most once (more only after a reset, which the run
acting on it reports), with the values of a committed version, and every row
committed up to the end of the newest range is in bronze after each run.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from platform_assets.ingestion.partitions.postgres import SourceSpec
from platform_assets.ingestion.postgres.partition_load import load_partition
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.tracking import migrations
from platform_assets.registry import PostgresSource, Registry
from platform_resources.object_store import ObjectStore
from tests.helpers import materialize_partition, object_rows, query
from tests.model.concurrently import run_concurrently

START = dt.date(2024, 3, 1)
PARTITIONS = [str(START + dt.timedelta(days=n)) for n in range(4)]
IDS = st.integers(min_value=1, max_value=8)
# payloads with characters COPY escapes, and non-ASCII text
PAYLOAD_PARTS = ["a", "é", "\t", "\n", "\\", "日本", " ", "x" * 3]


@dataclass
class Txn:
    """A transaction left open on its own connection; its writes reach the model at commit."""

    conn: Any
    writes: list[tuple[int, Any, str | None]] = field(default_factory=list)  # (id, watermark, payload or None=delete)

    @property
    def ids(self) -> set[int]:
        return {w[0] for w in self.writes}


class SourceMachine(RuleBasedStateMachine):
    """What both machines share: a source table of its own, runs, transactions, bronze reads."""

    pg: Any = None
    store_settings: Any = None
    kind = ""

    def __init__(self) -> None:
        super().__init__()
        suffix = uuid.uuid4().hex[:8]
        self.schema = f"m_{suffix}"
        self.name = f"src_{suffix}"
        self.conn = self.pg.connect()
        self.conn.autocommit = True
        migrations.bootstrap(self.conn)  # the watermark resets below need the tables
        self.txns: dict[int, Txn] = {}
        self.next_txn = 0
        self.loaded: set[str] = set()
        self.counter = 0
        self.timezone = "UTC"

    # ------------------------------------------------------------------ plumbing

    @property
    def source_name(self) -> str:
        return f"{self.schema}.t"

    def spec(self) -> SourceSpec:
        return self.source().spec(self.registry())

    def registry(self) -> Registry:
        return Registry(start_date=START, timezone=self.timezone, postgres=[self.source()])

    def source(self) -> PostgresSource:
        raise NotImplementedError

    def services(self) -> Services:
        settings = self.store_settings
        return Services(
            source=self.pg, platform=self.pg,
            store=ObjectStore(settings.client(), settings.endpoint_url),
            bronze_bucket=settings.buckets["bronze"], lock_wait_seconds=120,
        )

    def payload(self) -> str:
        self.counter += 1
        return f"v{self.counter}" + "".join(PAYLOAD_PARTS[(self.counter * k) % len(PAYLOAD_PARTS)] for k in (1, 3))

    def locked(self, exclude: int | None = None) -> set[int]:
        """Row ids written by open transactions (other sessions would wait for their locks)."""
        return {i for n, t in self.txns.items() if n != exclude for i in t.ids}

    def objects(self) -> dict[str, list[tuple]]:
        found = {}
        for partition in PARTITIONS:
            key = f"postgres/{self.name}/{partition}/{self.name}.parquet"
            rows = object_rows(self.store_settings, key, *self.columns)
            if rows is not None:
                found[partition] = rows
        return found

    columns: tuple[str, ...] = ()

    def run(self, partitions: list[str], via: str, rebuild: bool = False) -> list[tuple[str, Any]]:
        """Materialize the partitions (in threads when several) and return what was loaded:
        (partition, watermark_reset) for each partition asked for and each late-row reload."""
        each = run_concurrently(*(functools.partial(self._run_one, p, via, rebuild) for p in partitions))
        return [loaded for one in each for loaded in one]

    def _run_one(self, partition: str, via: str, rebuild: bool) -> list[tuple[str, Any]]:
        if via == "engine":
            outcome = load_partition(self.spec(), partition, self.services(), rebuild=rebuild)
            assert not outcome.reload_errors, outcome.reload_errors
            return [(r.partition_key, r.watermark_reset) for r in [outcome.result, *outcome.reloads]]
        result = materialize_partition(
            self.registry(), self.pg, self.store_settings, self.name, partition,
            run_config={"rebuild": True} if rebuild else None,
        )
        assert result.success
        failed = [e for e in result.get_asset_check_evaluations()
                  if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
        assert not failed, [(e.check_name, e.partition, e.metadata) for e in failed]
        loaded = []
        for event in result.get_asset_materialization_events():
            reset = event.materialization.metadata.get("watermark_reset")
            loaded.append((event.partition, reset.value if reset is not None else None))
        return loaded

    def open_txn(self, statements: list[tuple[str, tuple]], savepoint: bool) -> Txn:
        conn = self.pg.connect()
        txn = Txn(conn)
        if savepoint:
            query(conn, "SAVEPOINT s")
        for statement, params in statements:
            query(conn, statement, params)
        if savepoint:
            query(conn, "RELEASE SAVEPOINT s")
        self.txns[self.next_txn] = txn
        self.next_txn += 1
        return txn

    def close_txn(self, number: int, commit: bool) -> Txn:
        txn = self.txns.pop(number)
        if commit:
            txn.conn.commit()
        else:
            txn.conn.rollback()
        txn.conn.close()
        return txn

    def teardown(self) -> None:
        for txn in self.txns.values():
            txn.conn.rollback()
            txn.conn.close()
        query(self.conn, f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.conn.close()


class TimestampMachine(SourceMachine):
    kind = "timestamp"
    columns = ("id", "wm", "payload")

    def __init__(self) -> None:
        super().__init__()
        self.current: dict[int, tuple[dt.datetime | None, str]] = {}
        self.history: set[tuple[int, dt.datetime | None, str]] = set()
        self.required: dict[str, set[tuple[int, dt.datetime | None]]] = {}
        self.open_at_load: dict[str, set[int]] = {}
        self.dirty: set[str] = set()

    @initialize(timezone=st.sampled_from(["UTC", "Asia/Kathmandu", "America/St_Johns"]))
    def create_source(self, timezone: str) -> None:
        self.timezone = timezone
        query(self.conn, f'CREATE SCHEMA "{self.schema}"; '
                         f'CREATE TABLE "{self.schema}".t (id int PRIMARY KEY, wm timestamptz, payload text)')

    def source(self) -> PostgresSource:
        return PostgresSource(
            name=self.name, schema=self.schema, table="t", load="incremental", watermark_column="wm",
            watermark_type="timestamp", allow_empty=True,
            checks=[{"type": "unique", "columns": ["id", "wm"]}],
        )

    # ------------------------------------------------------------------ model

    def instants(self) -> st.SearchStrategy:
        zone = ZoneInfo(self.timezone)
        days = [START + dt.timedelta(days=n) for n in range(-2, len(PARTITIONS))]
        times = [dt.time(0, 0), dt.time(11, 30), dt.time(23, 59, 59, 999999)]
        local = [dt.datetime.combine(d, t, tzinfo=zone) for d in days for t in times]
        return st.one_of(st.none(), st.sampled_from(local))

    def owner(self, wm: dt.datetime | None) -> str:
        if wm is None:
            return PARTITIONS[0]
        day = wm.astimezone(ZoneInfo(self.timezone)).date()
        return str(max(day, START))

    def versions_of(self, partition: str) -> set[tuple[int, dt.datetime | None]]:
        return {(i, wm) for i, (wm, _) in self.current.items() if self.owner(wm) == partition}

    def apply(self, row: int, wm: Any, payload: str | None) -> None:
        if payload is None:
            self.current.pop(row, None)
        else:
            self.current[row] = (wm, payload)
            self.history.add((row, wm, payload))

    def upsert(self) -> str:
        return (f'INSERT INTO "{self.schema}".t VALUES (%s, %s, %s) '
                "ON CONFLICT (id) DO UPDATE SET wm = EXCLUDED.wm, payload = EXCLUDED.payload")

    def after_runs(self, loaded: list[tuple[str, Any]]) -> None:
        for partition, _ in loaded:
            self.loaded.add(partition)
            self.required.setdefault(partition, set()).update(self.versions_of(partition))
            self.open_at_load[partition] = set(self.txns)
        for partition in self.dirty:
            self.required.setdefault(partition, set()).update(self.versions_of(partition))
        self.dirty.clear()

    # ------------------------------------------------------------------ operations

    @rule(row=IDS, data=st.data())
    def write(self, row: int, data: st.DataObject) -> None:
        if row in self.locked():
            return
        wm = data.draw(self.instants())
        if data.draw(st.booleans()) and row in self.current:
            wm = self.current[row][0]  # a change that keeps the watermark
        payload = self.payload()
        query(self.conn, self.upsert(), (row, wm, payload))
        self.apply(row, wm, payload)

    @rule(row=IDS)
    def delete(self, row: int) -> None:
        if row in self.locked():
            return
        query(self.conn, f'DELETE FROM "{self.schema}".t WHERE id = %s', (row,))
        self.apply(row, None, None)

    @precondition(lambda self: len(self.txns) < 2)
    @rule(row=IDS, savepoint=st.booleans(), data=st.data())
    def open_transaction(self, row: int, savepoint: bool, data: st.DataObject) -> None:
        if row in self.locked():
            return
        wm, payload = data.draw(self.instants()), self.payload()
        txn = self.open_txn([(self.upsert(), (row, wm, payload))], savepoint)
        txn.writes.append((row, wm, payload))

    @precondition(lambda self: bool(self.txns))
    @rule(pick=st.integers(0, 1), commit=st.booleans())
    def end_transaction(self, pick: int, commit: bool) -> None:
        number = sorted(self.txns)[pick % len(self.txns)]
        txn = self.close_txn(number, commit)
        if not commit:
            return
        final: dict[int, tuple[Any, str | None]] = {}
        for row, wm, payload in txn.writes:
            self.apply(row, wm, payload)
            final[row] = (wm, payload)
        for wm, payload in final.values():
            partition = self.owner(wm)
            if payload is not None and number in self.open_at_load.get(partition, set()):
                self.dirty.add(partition)

    @rule(partition=st.sampled_from(PARTITIONS), via=st.sampled_from(["engine"] * 4 + ["dagster"]))
    def materialize(self, partition: str, via: str) -> None:
        self.after_runs(self.run([partition], via))

    @rule(partitions=st.lists(st.sampled_from(PARTITIONS), min_size=2, max_size=3, unique=True))
    def materialize_in_parallel(self, partitions: list[str]) -> None:
        self.after_runs(self.run(partitions, "engine"))

    @precondition(lambda self: bool(self.loaded))
    @rule(data=st.data())
    def rebuild(self, data: st.DataObject) -> None:
        partition = data.draw(st.sampled_from(sorted(self.loaded)))
        loaded = self.run([partition], "engine", rebuild=True)
        self.required[partition] = set()
        self.after_runs(loaded)
        held = {(r[0], r[1]) for r in self.objects()[partition]}
        assert held == self.versions_of(partition), "a rebuilt partition equals the source"

    @rule(delete=st.booleans())
    def reset_watermark(self, delete: bool) -> None:
        if delete:
            query(self.conn, "DELETE FROM data_platform.watermarks WHERE source_name = %s", (self.source_name,))
        else:
            query(self.conn, "UPDATE data_platform.watermarks SET watermark_value = %s WHERE source_name = %s",
                  ("2024-03-01T00:00:00Z", self.source_name))

    # ------------------------------------------------------------------ the invariant

    @invariant()
    def bronze_matches_the_model(self) -> None:
        objects = self.objects()
        versions = Counter((r[0], r[1]) for rows in objects.values() for r in rows)
        assert not [v for v, n in versions.items() if n > 1], "a version is in two partitions"
        for partition, rows in objects.items():
            for row in rows:
                assert self.owner(row[1]) == partition, (row, partition)
                assert row in self.history, ("values no committed version had", row)
        for partition, required in self.required.items():
            held = {(r[0], r[1]) for r in objects.get(partition, [])}
            assert required <= held, ("versions dropped", partition, sorted(required - held, key=str))


class IntegerMachine(SourceMachine):
    kind = "integer"
    columns = ("id", "payload")

    def __init__(self) -> None:
        super().__init__()
        self.current: dict[int, str] = {}
        self.history: set[tuple[int, str]] = set()
        self.required: set[int] = set()
        self.allowed: Counter[int] = Counter()
        self.frontier: str | None = None
        self.frontier_upper: int | None = None
        self.pending_reset: tuple[bool, int | None] | None = None

    @initialize()
    def create_source(self) -> None:
        query(self.conn, f'CREATE SCHEMA "{self.schema}"; '
                         f'CREATE TABLE "{self.schema}".t (id bigserial PRIMARY KEY, payload text)')

    def source(self) -> PostgresSource:
        return PostgresSource(
            name=self.name, schema=self.schema, table="t", load="incremental", watermark_column="id",
            watermark_type="integer", allow_empty=True, checks=[{"type": "unique", "columns": ["id"]}],
        )

    def insert_sql(self) -> str:
        return f'INSERT INTO "{self.schema}".t (payload) VALUES (%s) RETURNING id'

    @rule(rows=st.integers(1, 3))
    def insert(self, rows: int) -> None:
        for _ in range(rows):
            payload = self.payload()
            [(new_id,)] = query(self.conn, self.insert_sql(), (payload,))
            self.current[new_id] = payload
            self.history.add((new_id, payload))

    @rule(data=st.data(), delete=st.booleans())
    def change(self, data: st.DataObject, delete: bool) -> None:
        free = sorted(set(self.current) - self.locked())
        if not free:
            return
        row = data.draw(st.sampled_from(free))
        if delete:
            query(self.conn, f'DELETE FROM "{self.schema}".t WHERE id = %s', (row,))
            del self.current[row]
        else:
            payload = self.payload()
            query(self.conn, f'UPDATE "{self.schema}".t SET payload = %s WHERE id = %s', (payload, row))
            self.current[row] = payload
            self.history.add((row, payload))

    @precondition(lambda self: len(self.txns) < 2)
    @rule(savepoint=st.booleans(), rows=st.integers(1, 2))
    def open_transaction(self, savepoint: bool, rows: int) -> None:
        txn = self.open_txn([], savepoint)
        for _ in range(rows):
            payload = self.payload()
            [(new_id,)] = query(txn.conn, self.insert_sql(), (payload,))
            txn.writes.append((new_id, new_id, payload))

    @precondition(lambda self: bool(self.txns))
    @rule(pick=st.integers(0, 1), commit=st.booleans())
    def end_transaction(self, pick: int, commit: bool) -> None:
        txn = self.close_txn(sorted(self.txns)[pick % len(self.txns)], commit)
        if commit:
            for row, _, payload in txn.writes:
                self.current[row] = payload
                self.history.add((row, payload))

    def extends(self, partitions: list[str]) -> bool:
        return any(p not in self.loaded or p == self.frontier for p in partitions)

    def after_runs(self, partitions: list[str], loaded: list[tuple[str, Any]]) -> None:
        extended = self.extends(partitions)
        if self.pending_reset is not None and extended:
            assert any(reset is not None for _, reset in loaded), "the run acting on a reset reports it"
            _, value = self.pending_reset
            for row in self.current:
                if value is None or row > value:
                    self.allowed[row] += 1
            self.pending_reset = None
        self.loaded.update(p for p, _ in loaded)
        if extended:
            self.frontier = self._frontier_partition()
            top = max(self.current, default=None)
            if top is not None:
                self.frontier_upper = max(top, self.frontier_upper or top)
        if self.frontier_upper is not None:
            self.required.update(i for i in self.current if i <= self.frontier_upper)

    def _frontier_partition(self) -> str:
        [(partition,)] = query(
            self.conn,
            "SELECT partition_key FROM data_platform.ingestion_metadata WHERE source_name = %s "
            "AND status = 'success' AND load_mode IN ('incremental', 'range') ORDER BY id DESC LIMIT 1",
            (self.source_name,),
        )
        return partition

    @rule(partition=st.sampled_from(PARTITIONS), via=st.sampled_from(["engine"] * 4 + ["dagster"]))
    def materialize(self, partition: str, via: str) -> None:
        self.after_runs([partition], self.run([partition], via))

    @rule(partitions=st.lists(st.sampled_from(PARTITIONS), min_size=2, max_size=3, unique=True))
    def materialize_in_parallel(self, partitions: list[str]) -> None:
        self.after_runs(partitions, self.run(partitions, "engine"))

    @precondition(lambda self: bool(self.loaded))
    @rule(data=st.data())
    def rebuild(self, data: st.DataObject) -> None:
        partition = data.draw(st.sampled_from(sorted(self.loaded)))
        loaded = self.run([partition], "engine", rebuild=True)
        lower, upper, empty = self._recorded_range(partition)
        gone = {i for i in self.required
                if i not in self.current and not empty and (lower is None or i > lower) and i <= upper}
        self.required -= gone
        self.after_runs([partition], loaded)

    def _recorded_range(self, partition: str) -> tuple[int | None, int, bool]:
        [(extract_range,)] = query(
            self.conn,
            "SELECT extract_range FROM data_platform.ingestion_metadata WHERE source_name = %s "
            "AND partition_key = %s AND status = 'success' ORDER BY id DESC LIMIT 1",
            (self.source_name, partition),
        )
        lower = extract_range.get("lower")
        return (None if lower is None else int(lower)), int(extract_range.get("upper") or 0), extract_range["empty"]

    @precondition(lambda self: self.frontier_upper is not None and self.pending_reset is None)
    @rule(delete=st.booleans(), data=st.data())
    def reset_watermark(self, delete: bool, data: st.DataObject) -> None:
        if delete:
            query(self.conn, "DELETE FROM data_platform.watermarks WHERE source_name = %s", (self.source_name,))
            self.pending_reset = (True, None)
            return
        value = data.draw(st.integers(0, self.frontier_upper or 0))
        stored = query(self.conn, "SELECT watermark_value FROM data_platform.watermarks WHERE source_name = %s",
                       (self.source_name,))
        if not stored or stored[0][0] == str(value):
            return  # no row to update, or the same value: not a reset
        query(self.conn, "UPDATE data_platform.watermarks SET watermark_value = %s WHERE source_name = %s",
              (str(value), self.source_name))
        self.pending_reset = (False, value)

    @invariant()
    def bronze_matches_the_model(self) -> None:
        objects = self.objects()
        counts = Counter(r[0] for rows in objects.values() for r in rows)
        for row, n in counts.items():
            assert n <= 1 + self.allowed[row], ("a row is in more partitions than resets explain", row, n)
        for rows in objects.values():
            for row in rows:
                assert row in self.history, ("values no committed version had", row)
        missing = sorted(self.required - set(counts))
        assert not missing, ("rows committed up to the newest range's end are missing", missing)

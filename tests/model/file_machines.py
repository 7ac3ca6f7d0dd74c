"""State machine for the model-based test of file families (README, "File ingestion").

The model is what the input directory held: every version (relative path + content)
ever written, with the rows it holds (or None: a bad file), and which versions a run
saw at rest (so they must be in bronze, or recorded as failed). Hypothesis draws file
operations (create, replace, append while still being written, finish writing, touch,
rename, delete; ``.gz`` twins and same names in subdirectories; unparseable content
and a name that is no date), sensor ticks (through the engine or the Dagster sensor)
and the runs they request, manual runs of a partition, a sensor's run and a manual run
of one partition at once (threads), a sensor tick while a run loads and moves files,
runs that fail when the platform database goes away before the commit or that the
object store refuses (then retried), and a writer that appends to a file while a run
loads it.

After every step, against the real S3 server and PostgreSQL:

* every ledger row is a version that was written, with good content, loaded once
  (one ``success`` run per object key), into the object named for it, whose rows are
  the version's rows with the platform's exact types;
* every object of the family is such a version's object (nothing else in bronze);
* every version a run saw at rest is in the ledger (or, bad, in ``file_failures``
  with a ``failed`` run); no good version is recorded as failed; a misnamed file is
  reported;
* a sensor tick requests every good version at rest since its previous tick and not
  loaded (under ``move``, loaded ones found again too, so that their run moves them);
* no file is lost: the input and ``_processed`` folders hold exactly the contents
  written and not replaced or deleted by the test; a file in ``_processed`` is a
  version that was loaded, under its partition's folder.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import gzip
import hashlib
import io
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pyarrow as pa
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from platform_assets.ingestion.errors import IngestionError, TransientError
from platform_assets.ingestion.files import family_load
from platform_assets.ingestion.files.family_load import FileRef, load_family_partition
from platform_assets.ingestion.files.family_watch import plan_tick
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.tracking import migrations, run_records
from platform_assets.registry import FileFamily, Registry
from platform_resources.object_store import ObjectStore, ObjectStoreError
from tests.helpers import (
    bronze_objects,
    launch,
    materialize_partition,
    query,
    sensor_tick,
)
from tests.model.concurrently import run_concurrently

START = dt.date(2024, 3, 1)
PARTITIONS = ["2024-03-01", "2024-03-02"]
PATHS = [
    "customers_20240301.csv", "customers_20240301.csv.gz", "east/customers_20240301.csv",
    "west/customers_20240301.csv", "customers_20240302.csv", "east/customers_20240302.csv.gz",
]
NAMES = st.sampled_from(PATHS[:1] * 4 + PATHS[1:3] * 2 + PATHS)
"""Mostly one name: redeliveries, replacements and moves into a folder that holds it already."""
BAD_NAME = "customers_20240230.csv"
"""Its date is no date: a problem of its name, recorded once per state of the file."""
HEADER = ("id", "name", "code")
ROWS = st.lists(
    st.tuples(
        st.integers(min_value=-5, max_value=10**12).map(str),
        st.sampled_from(["ann", "Bob", "c, d", 'say "hi"', "é", "x\ny"]),
        st.sampled_from(["007", "12", "-3", "1e400", "0x10", "3.5", "abc", "9007199254740993"]),
    ),
    min_size=1, max_size=4,
)
_FAIL = threading.local()
_real_commit = run_records.commit_success
_real_load_file = family_load.load_file


def _commit(*args: Any, **kwargs: Any) -> Any:
    if getattr(_FAIL, "commit", False):
        raise psycopg2.OperationalError("injected: the platform database went away before the commit")
    return _real_commit(*args, **kwargs)


def _load_file(request: Any, *args: Any, **kwargs: Any) -> Any:
    """A writer appending to the file while it is loaded: before it is read, or after
    its load committed (before it may be moved)."""
    hook = getattr(_FAIL, "writer", None)
    if hook is not None and hook[0] == request.relative_path and hook[1] == "before":
        hook[2]()
    result = _real_load_file(request, *args, **kwargs)
    if hook is not None and hook[0] == request.relative_path and hook[1] == "after":
        hook[2]()
    return result


class _RefusingStore(ObjectStore):
    def ensure_bucket(self, bucket: str) -> None:
        raise ObjectStoreError(f"injected: cannot access bucket {bucket!r}: 403 AccessDenied", transient=False)


def csv_text(rows: list[tuple[str, str, str]], header: bool = True) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode()


def partition_of(relative: str) -> str:
    day = re.search(r"_(\d{8})\.", relative).group(1)
    return f"{day[:4]}-{day[4:6]}-{day[6:]}"


def _same_value(text: str, value: Any, arrow_type: pa.DataType) -> bool:
    """A CSV value read back: as written (text), or the integer or float it writes exactly."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return value == text
    if pa.types.is_integer(arrow_type):
        return re.fullmatch(r"-?(0|[1-9]\d*)", text) is not None and int(text) == value
    if pa.types.is_floating(arrow_type):
        return Decimal(text) == Decimal(value)
    return False


class FileFamilyMachine(RuleBasedStateMachine):
    pg: Any = None
    store_settings: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.name = f"ff_{uuid.uuid4().hex[:8]}"
        self.directory = Path(tempfile.mkdtemp(prefix="file_model_"))
        self.conn = self.pg.connect()
        self.conn.autocommit = True
        migrations.bootstrap(self.conn)
        self.after_load = "leave"
        self.rows: dict[str, list[tuple[str, str, str]] | None] = {}
        """Content MD5 -> the rows it holds (None: not loadable)."""
        self.written: set[tuple[str, str]] = set()
        """(relative path, MD5) of every version written."""
        self.files: dict[str, dict[str, Any]] = {}
        """The test's view of each file it wrote in the input directory: data, gen, stable."""
        self.contents: Counter[bytes] = Counter()
        """What the input and _processed folders must hold, as a multiset of contents."""
        self.must: set[tuple[str, str]] = set()
        """Versions a run saw at rest: loaded (good) or recorded as failed (bad)."""
        self.bad_name_seen = False
        self.must_bad_name = False
        self.engine_tick_gens: dict[str, int] = {}
        self.cursor: str | None = None
        self.dagster_cursor: str | None = None
        self.pending: list[tuple[str, list[FileRef], dict[str, int], Any]] = []
        self.clock = 0
        self.instance: dg.DagsterInstance | None = None
        self.launched: set[str] = set()
        run_records.commit_success = _commit
        family_load.load_file = _load_file

    @initialize(after_load=st.sampled_from(["leave", "move"]),
                files=st.lists(st.tuples(NAMES, ROWS, st.booleans()), min_size=1, max_size=4))
    def configure(self, after_load: str, files: list) -> None:
        self.after_load = after_load
        for relative, rows, stable in files:
            self.write_file(relative, rows, stable)

    def family(self) -> FileFamily:
        return FileFamily(name=self.name, directory=str(self.directory), glob="**/customers_*.csv*", format="csv",
                          date_pattern=r"_(\d{8})\.", date_format="%Y%m%d", after_load=self.after_load,
                          allow_empty=True)

    def registry(self) -> Registry:
        return Registry(start_date=START, files=[self.family()])

    def services(self) -> Services:
        settings = self.store_settings
        return Services(source=self.pg, platform=self.pg, store=ObjectStore(settings.client(), settings.endpoint_url),
                        bronze_bucket=settings.buckets["bronze"], lock_wait_seconds=120)

    # ------------------------------------------------------------------ the input directory

    def _path(self, relative: str) -> Path:
        return self.directory / relative

    def _on_disk(self, relative: str) -> bool:
        return self._path(relative).is_file()

    def _stamp(self, path: Path, stable: bool) -> None:
        """Unique mtimes: at rest (an hour old) or still being written (in the future,
        so a manual run never takes it for at rest)."""
        self.clock += 1
        stamp = time.time() + (-3600 if stable else 3600) + self.clock * 1e-3
        os.utime(path, (stamp, stamp))

    def _put(self, relative: str, data: bytes, rows: list | None, stable: bool) -> None:
        path = self._path(relative)
        if path.is_file():
            self.contents[path.read_bytes()] -= 1
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self._stamp(path, stable)
        self.contents[data] += 1
        md5 = hashlib.md5(data).hexdigest()
        self.rows[md5] = rows
        self.written.add((relative, md5))
        gen = self.files.get(relative, {}).get("gen", 0) + 1
        self.files[relative] = {"data": data, "gen": gen, "stable": stable, "rows": rows}

    @rule(relative=NAMES, rows=ROWS, stable=st.booleans())
    def write_file(self, relative: str, rows: list, stable: bool) -> None:
        """Create a file, or replace one with new content."""
        raw = csv_text(rows)
        self._put(relative, gzip.compress(raw, mtime=0) if relative.endswith(".gz") else raw, rows, stable)

    @rule(relative=NAMES, kind=st.sampled_from(["ragged", "unterminated", "empty", "not gzip"]))
    def write_bad_file(self, relative: str, kind: str) -> None:
        data = {"ragged": b"id,name,code\n1,a,b,c\n", "unterminated": b'id,name,code\n1,"a,b\n',
                "empty": b"", "not gzip": b"\x1f\x8b\x08\x00garbage"}[kind]
        if relative.endswith(".gz") and kind != "not gzip":
            data = gzip.compress(data, mtime=0)[:-3] if kind == "empty" else gzip.compress(data, mtime=0)
        self._put(relative, data, None, True)

    @precondition(lambda self: not self.bad_name_seen)
    @rule()
    def write_bad_name(self) -> None:
        path = self._path(BAD_NAME)
        path.write_bytes(csv_text([("1", "a", "b")]))
        self._stamp(path, True)
        self.contents[path.read_bytes()] += 1
        self.bad_name_seen = True

    def _here(self, plain_only: bool = False) -> list[str]:
        return [r for r in PATHS if self._on_disk(r) and r in self.files and not (plain_only and r.endswith(".gz"))]

    def _existing(self, data: st.DataObject, plain_only: bool = False) -> str | None:
        here = self._here(plain_only)
        return data.draw(st.sampled_from(here)) if here else None

    def _appendable(self) -> list[str]:
        return [r for r in self._here(plain_only=True) if self.files[r]["rows"] is not None]

    @precondition(lambda self: self._appendable())
    @rule(data=st.data(), rows=ROWS)
    def append_while_writing(self, data: st.DataObject, rows: list) -> None:
        """A writer adds rows to a (plain) file: it is not at rest."""
        self._append(data.draw(st.sampled_from(self._appendable())), rows)

    def _append(self, relative: str, rows: list, stable: bool = False) -> None:
        old = self.files[relative]
        self._put(relative, old["data"] + csv_text(rows, header=False), old["rows"] + rows, stable)

    @precondition(lambda self: self._here())
    @rule(data=st.data(), stable=st.booleans())
    def touch(self, data: st.DataObject, stable: bool) -> None:
        """Finish writing (at rest now), or touch a file: same content, new mtime."""
        relative = self._existing(data)
        if relative is None:
            return
        self._stamp(self._path(relative), stable)
        self.files[relative]["gen"] += 1
        self.files[relative]["stable"] = stable

    @precondition(lambda self: self._here())
    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        """To a free name of the same kind (.gz or not): a new file, same content."""
        source = self._existing(data)
        if source is None:
            return
        free = [r for r in PATHS if not self._on_disk(r) and r.endswith(".gz") == source.endswith(".gz")]
        if not free:
            return
        target = data.draw(st.sampled_from(free))
        self._path(target).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self._path(source), self._path(target))
        old = self.files[source]
        md5 = hashlib.md5(old["data"]).hexdigest()
        self.written.add((target, md5))
        self.files[target] = {**old, "gen": self.files.get(target, {}).get("gen", 0) + 1}
        self.files[source]["gen"] += 1

    @precondition(lambda self: self._here())
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        relative = self._existing(data)
        if relative is None:
            return
        self.contents[self._path(relative).read_bytes()] -= 1
        self._path(relative).unlink()
        self.files[relative]["gen"] += 1

    # ------------------------------------------------------------------ runs

    def _at_rest(self, partition: str) -> dict[str, int]:
        """The files a manual run of ``partition`` must take: stable, on disk (their gen)."""
        return {r: f["gen"] for r, f in self.files.items()
                if f["stable"] and self._on_disk(r) and partition_of(r) == partition}

    def _saw(self, gens: dict[str, int]) -> None:
        """A run saw these files at rest: unless they changed since, each version is loaded or failed."""
        for relative, gen in gens.items():
            now = self.files[relative]
            if now["gen"] == gen:
                self.must.add((relative, hashlib.md5(now["data"]).hexdigest()))

    def _manual(self, partition: str, via: str) -> None:
        if via == "engine":
            load_family_partition(self.family().spec(self.registry()), partition, self.services())
        else:
            materialize_partition(self.registry(), self.pg, self.store_settings, self.name, partition,
                                  group="files", raise_on_error=False)

    @precondition(lambda self: self._here())
    @rule(partition=st.sampled_from(PARTITIONS), via=st.sampled_from(["engine", "engine", "dagster"]))
    def manual_run(self, partition: str, via: str) -> None:
        gens = self._at_rest(partition)
        self._manual(partition, via)
        self._saw(gens)

    @precondition(lambda self: self._here())
    @rule(via=st.sampled_from(["engine", "engine", "dagster"]))
    def sensor_tick(self, via: str) -> None:
        gens = {r: f["gen"] for r, f in self.files.items() if self._on_disk(r)}
        if via == "engine":
            self._engine_tick(gens, check=True)
        else:
            requests, self.dagster_cursor = sensor_tick(self.registry(), self.name, self.pg, self.store_settings,
                                                        self.dagster_cursor, self._instance())
            op = f"bronze__files__{self.name}"
            for request in requests:
                refs = [FileRef(**f) for f in request.run_config["ops"][op]["config"]["files"]]
                self.pending.append((request.partition_key, refs,
                                     {r.relative_path: gens[r.relative_path] for r in refs}, request))
        if self._on_disk(BAD_NAME):
            self.must_bad_name = True

    def _engine_tick(self, gens: dict[str, int], check: bool) -> None:
        loaded = {(r, m) for r, m, _, _ in self._ledger()}
        plan = plan_tick(self.family().spec(self.registry()), self.services(), self.cursor)
        self.cursor = plan.cursor
        requested = set()
        for partition, refs in sorted(plan.ready.items()):
            self.pending.append((partition, refs, {r.relative_path: gens[r.relative_path] for r in refs}, None))
            requested |= {(r.relative_path, r.md5) for r in refs}
        if not check:  # a run ran at the same time: what was at rest may have moved or loaded meanwhile
            self.engine_tick_gens = gens
            return
        # The sensor asks for every good version at rest since its previous tick and not loaded yet.
        at_rest = {(r, hashlib.md5(self.files[r]["data"]).hexdigest()) for r, gen in gens.items()
                   if self.engine_tick_gens.get(r) == gen}
        missing = {v for v in at_rest - loaded - requested if self.rows[v[1]] is not None}
        assert not missing, ("versions at rest, not loaded, not requested by the sensor", missing)
        if self.after_load == "move":  # a loaded version found again is requested: its run moves it
            unmoved = at_rest & loaded - requested
            assert not unmoved, ("loaded versions found again, not requested to be moved", unmoved)
        self.engine_tick_gens = gens

    def _requested(self, index: int) -> None:
        partition, refs, gens, request = self.pending.pop(index % len(self.pending))
        if request is None:
            load_family_partition(self.family().spec(self.registry()), partition, self.services(), files=refs)
        elif request.run_key in self.launched:
            return  # the daemon launches a run key once
        else:
            self.launched.add(request.run_key)
            launch(self.registry(), request, self.name, self.pg, self.store_settings, instance=self._instance())
        self._saw(gens)

    def _instance(self) -> dg.DagsterInstance:
        """One instance per sequence: the sensor sees the runs launched before (run keys, retries)."""
        if self.instance is None:
            self.instance = dg.DagsterInstance.ephemeral()
        return self.instance

    @precondition(lambda self: self.pending)
    @rule(index=st.integers(min_value=0, max_value=3))
    def run_requested(self, index: int) -> None:
        self._requested(index)

    @precondition(lambda self: self.pending)
    @rule(index=st.integers(min_value=0, max_value=3))
    def sensor_run_and_manual_run_at_once(self, index: int) -> None:
        partition = self.pending[index % len(self.pending)][0]
        gens = self._at_rest(partition)
        run_concurrently(functools.partial(self._requested, index),
                         functools.partial(self._manual, partition, "engine"))
        self._saw(gens)

    @precondition(lambda self: self._here())
    @rule(partition=st.sampled_from(PARTITIONS))
    def sensor_tick_while_a_run_loads(self, partition: str) -> None:
        gens = {r: f["gen"] for r, f in self.files.items() if self._on_disk(r)}
        at_rest = self._at_rest(partition)
        run_concurrently(functools.partial(self._engine_tick, gens, False),
                         functools.partial(self._manual, partition, "engine"))
        self._saw(at_rest)

    @precondition(lambda self: self._here())
    @rule(partition=st.sampled_from(PARTITIONS))
    def run_fails_before_commit(self, partition: str) -> None:
        """The platform database goes away before a file's commit: the run fails
        (transient, retried by Dagster); a later run loads the file."""
        _FAIL.commit = True
        try:
            load_family_partition(self.family().spec(self.registry()), partition, self.services())
        except TransientError as e:
            assert "injected" in str(e)
        finally:
            _FAIL.commit = False

    @precondition(lambda self: self._here())
    @rule(partition=st.sampled_from(PARTITIONS))
    def store_refuses_a_run(self, partition: str) -> None:
        """The object store refuses the run (wrong credentials, a bucket policy): not the
        files' fault; once fixed, the sensor asks for them again."""
        services = self.services()
        services = dataclasses.replace(services, store=_RefusingStore(services.store.client, services.store.endpoint_url))
        try:
            load_family_partition(self.family().spec(self.registry()), partition, services)
        except IngestionError as e:
            assert "injected" in str(e)

    @precondition(lambda self: [r for r in self._appendable() if self.files[r]["stable"]])
    @rule(data=st.data(), when=st.sampled_from(["before", "after"]), rows=ROWS)
    def writer_appends_during_a_run(self, data: st.DataObject, when: str, rows: list) -> None:
        """A file at rest is written to while a manual run loads it: before it is read (the
        run skips it) or after its load (it must not be moved)."""
        relative = data.draw(st.sampled_from([r for r in self._appendable() if self.files[r]["stable"]]))
        partition = partition_of(relative)
        gens = self._at_rest(partition)
        gens.pop(relative)
        _FAIL.writer = (relative, when, lambda: self._append(relative, rows, stable=True))
        try:
            load_family_partition(self.family().spec(self.registry()), partition, self.services())
        finally:
            _FAIL.writer = None
        self._saw(gens)

    # ------------------------------------------------------------------ the invariants

    def _ledger(self) -> list[tuple[str, str, str, str]]:
        return query(self.conn, "SELECT relative_path, content_md5, object_key, partition_key "
                                "FROM data_platform.ingested_files WHERE family = %s", (self.name,))

    @invariant()
    def bronze_holds_each_version_once_and_unchanged(self) -> None:
        spec = self.family().spec(self.registry())
        ledger = self._ledger()
        loaded = {(r, m) for r, m, _, _ in ledger}
        assert len(loaded) == len(ledger), ("a version in the ledger twice", ledger)
        for relative, md5, key, partition in ledger:
            assert (relative, md5) in self.written, ("loaded a version never written", relative, md5)
            assert self.rows[md5] is not None, ("a bad file in the ledger", relative)
            assert partition == partition_of(relative) and key == spec.object_key(partition, relative, md5), (
                "object key", relative, key)
        successes = query(self.conn, "SELECT object_key, count(*) FROM data_platform.ingestion_metadata "
                                     "WHERE family = %s AND status = 'success' GROUP BY 1", (self.name,))
        twice = [(k, n) for k, n in successes if n != 1]
        assert not twice, ("versions loaded more than once", twice)
        assert {k for k, _ in successes} == {k for _, _, k, _ in ledger}, ("success rows and ledger differ",)
        objects = bronze_objects(self.store_settings, f"files/{self.name}/")
        by_key = {spec.object_key(partition_of(r), r, m): m for r, m in self.written if self.rows[m] is not None}
        for _, _, key, _ in ledger:
            assert key in objects, ("a loaded version's object is missing", key)
        for key, table in objects.items():
            assert key in by_key, ("an object that is no version's", key)
            self._same_rows(key, table, self.rows[by_key[key]])
        missing = {v for v in self.must if self.rows[v[1]] is not None} - loaded
        assert not missing, ("versions seen at rest and never loaded", missing)

    def _same_rows(self, key: str, table: pa.Table, rows: list[tuple[str, str, str]]) -> None:
        assert table.column_names == list(HEADER), (key, table.schema)
        assert pa.types.is_int64(table.schema.field("id").type), (key, table.schema)
        assert pa.types.is_string(table.schema.field("name").type), (key, table.schema)
        got = table.to_pylist()
        assert len(got) == len(rows), (key, got, rows)
        code = table.schema.field("code").type
        for have, (id_, name, text) in zip(got, rows):
            assert (have["id"], have["name"]) == (int(id_), name), (key, have, (id_, name))
            assert _same_value(text, have["code"], code), (key, "code", code, have["code"], text)

    @invariant()
    def bad_files_are_recorded_and_good_ones_never(self) -> None:
        failures = query(self.conn, "SELECT f.relative_path, f.content_md5, m.status FROM data_platform.file_failures f "
                                    "LEFT JOIN data_platform.ingestion_metadata m ON m.id = f.run_id "
                                    "WHERE f.family = %s", (self.name,))
        for relative, md5, status in failures:
            assert status == "failed", ("a failure without a failed run", relative, md5, status)
            if relative == BAD_NAME:
                assert md5.startswith(family_load.PROBLEM_KEY_PREFIX)
            else:
                assert self.rows.get(md5, "?") is None, ("a good version recorded as failed", relative, md5)
        failed = {(r, m) for r, m, _ in failures}
        missing = {v for v in self.must if self.rows[v[1]] is None} - failed
        assert not missing, ("bad versions seen at rest and not recorded", missing)
        if self.must_bad_name:
            assert any(r == BAD_NAME for r, _, _ in failures), ("the misnamed file was not reported", failures)
        [(runs,)] = query(self.conn, "SELECT count(*) FROM data_platform.ingestion_metadata WHERE family = %s "
                                     "AND source_name = %s", (self.name, BAD_NAME))
        assert runs == sum(r == BAD_NAME for r, _, _ in failures), ("the misnamed file reported more than once", runs)

    @invariant()
    def no_file_is_lost_or_moved_unloaded(self) -> None:
        held: Counter[bytes] = Counter()
        loaded = {(r, m) for r, m, _, _ in self._ledger()}
        processed = self.directory / "_processed"
        for path in self.directory.rglob("*"):
            if not path.is_file():
                continue
            data = path.read_bytes()
            held[data] += 1
            if processed in path.parents:
                assert self.after_load == "move", ("moved under after_load: leave", path)
                partition, *parts = path.relative_to(processed).parts
                relative = re.sub(r"\.\d+$", "", "/".join(parts)) if not re.search(r"\.csv(\.gz)?$", parts[-1]) \
                    else "/".join(parts)
                md5 = hashlib.md5(data).hexdigest()
                assert (relative, md5) in loaded, ("moved a version that was not loaded", path)
                assert partition == partition_of(relative), ("moved to another partition's folder", path)
        assert held == +self.contents, ("files lost or invented", +self.contents - held, held - +self.contents)

    def teardown(self) -> None:
        run_records.commit_success = _real_commit
        family_load.load_file = _real_load_file
        shutil.rmtree(self.directory, ignore_errors=True)
        self.conn.close()

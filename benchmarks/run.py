"""Entry point: ``python -m benchmarks.run [--quick] [--rows N] [--csv-rows N] [--repeat N] ...``.

1. starts a ``localbucket`` S3 server on a free loopback port and creates a database
   ``bench_ingest_<hex>`` (both removed at the end);
2. generates the data (``datagen``): the table at full size plus a quarter-size and
   a small copy, and the CSV / NDJSON twins (cached under benchmarks/data/files);
3. runs every method ``--repeat`` times, each run in a process of its own, the
   methods of a group in turn (round robin) so that drift hits all of them alike;
4. reads every output back and compares it with the generated reference (``verify``);
5. prints the table and the PASS/FAIL targets and writes
   ``benchmarks/results/<name>.{json,md,png}`` (``latest`` for a full run,
   ``quick`` for ``--quick``).
"""

from __future__ import annotations

import os

BASE_ENV = dict(os.environ)  # before the project is imported (it sets ARROW_DEFAULT_MEMORY_POOL)

import argparse
import datetime as dt
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks import datagen, infra, report, verify
from benchmarks.config import (
    BRONZE_BUCKET,
    DAGSTER_START_DATE,
    DATA_DIR,
    DEFAULT_REPEAT,
    DEFAULT_SEED,
    DLT_BUCKET,
    DLT_PYTHON,
    EXECUTION_DATE,
    FULL_CSV_ROWS,
    FULL_ROWS,
    HALF_TABLE,
    INCREMENTAL_FRACTION_MODULUS,
    QUICK_CSV_ROWS,
    QUICK_ROWS,
    REPO_ROOT,
    RESULT_MARKER,
    RESULTS_DIR,
    SMALL_ROWS,
    SMALL_TABLE,
    TABLE,
    TABLE_KEY,
    WATERMARK_COLUMN,
    PgTarget,
    S3Target,
)
from benchmarks.methods import METHODS
from benchmarks.model import Record

GROUPS = ("table", "incremental", "csv", "ndjson", "dagster", "memory")
CHILD_TIMEOUT_S = 3600


@dataclass(frozen=True)
class Settings:
    quick: bool
    rows: int
    csv_rows: int
    repeat: int
    seed: int
    dlt: bool
    pandas: bool
    groups: tuple[str, ...]
    keep_db: bool
    results_name: str
    strict: bool

    @property
    def half_rows(self) -> int:
        return max(1, self.rows // 4)

    @property
    def small_rows(self) -> int:
        return min(SMALL_ROWS, self.rows)


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"CI size: {QUICK_ROWS:,} table rows, {QUICK_CSV_ROWS:,} CSV rows, 1 repetition, no dlt")
    parser.add_argument("--rows", type=int, help=f"table rows (default {FULL_ROWS:,}; quick {QUICK_ROWS:,})")
    parser.add_argument("--csv-rows", type=int,
                        help=f"CSV/NDJSON rows (default {FULL_CSV_ROWS:,}; quick {QUICK_CSV_ROWS:,})")
    parser.add_argument("--repeat", type=int, help=f"runs per method (default {DEFAULT_REPEAT}; quick 1)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="data generator seed")
    dlt = parser.add_mutually_exclusive_group()
    dlt.add_argument("--skip-dlt", action="store_true", help="do not run the dlt baselines")
    dlt.add_argument("--dlt", action="store_true", help="run the dlt baselines in --quick mode too")
    parser.add_argument("--skip-pandas", action="store_true",
                        help="do not run the pandas baselines (at scale they take minutes and many GiB)")
    parser.add_argument("--only", help=f"comma-separated groups to run, of {','.join(GROUPS)}")
    parser.add_argument("--keep-db", action="store_true", help="leave the benchmark database in place")
    parser.add_argument("--results-name", help="file stem under benchmarks/results (default latest; quick: quick)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target FAILs")
    a = parser.parse_args(argv)
    groups = tuple(g.strip() for g in a.only.split(",")) if a.only else GROUPS
    unknown = set(groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups {sorted(unknown)}; choose from {GROUPS}")
    settings = Settings(
        quick=a.quick,
        rows=a.rows or (QUICK_ROWS if a.quick else FULL_ROWS),
        csv_rows=a.csv_rows or (QUICK_CSV_ROWS if a.quick else FULL_CSV_ROWS),
        repeat=a.repeat or (1 if a.quick else DEFAULT_REPEAT),
        seed=a.seed,
        dlt=(not a.skip_dlt) and (a.dlt or not a.quick),
        pandas=not a.skip_pandas,
        groups=groups,
        keep_db=a.keep_db,
        results_name=a.results_name or ("quick" if a.quick else "latest"),
        strict=a.strict,
    )
    if settings.rows < 100 or settings.csv_rows < 10 or settings.repeat < 1:
        parser.error("--rows must be >= 100, --csv-rows >= 10 and --repeat >= 1")
    return settings


def log(message: str) -> None:
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Paths:
    root: Path = DATA_DIR
    out: Path = DATA_DIR / "out"
    work: Path = DATA_DIR / "work"
    s3: Path = DATA_DIR / "s3"
    files: Path = DATA_DIR / "files"
    scratch: Path = DATA_DIR / "scratch"
    dlt: Path = DATA_DIR / "dlt"
    logs: Path = DATA_DIR / "logs"

    def reset(self) -> None:
        for p in (self.out, self.work, self.scratch, self.dlt, self.logs):
            shutil.rmtree(p, ignore_errors=True)
            p.mkdir(parents=True)
        self.files.mkdir(parents=True, exist_ok=True)


@dataclass
class Suite:
    """Runs method processes and keeps what they measured."""

    settings: Settings
    pg: PgTarget
    s3: S3Target
    paths: Paths
    records: dict[str, Record] = field(default_factory=dict)

    def add(self, rid: str, group: str, method: str, role: str, label: str, note: str = "") -> Record:
        record = Record(id=rid, group=group, method=method, role=role, label=label, note=note)  # type: ignore[arg-type]
        self.records[rid] = record
        return record

    def base_args(self) -> dict[str, Any]:
        return {"pg": self.pg.to_json(), "s3": self.s3.to_json(), "work_dir": str(self.paths.work),
                "execution_date": EXECUTION_DATE}

    def child(self, method: str, args: dict[str, Any], log_name: str) -> dict[str, Any]:
        """Run ``method`` in its own process; its result dict (with ``error`` if it failed)."""
        spec = METHODS[method]
        python = str(DLT_PYTHON) if spec.interpreter == "dlt" else sys.executable
        command = [python, "-m", "benchmarks.method", method, json.dumps(args)]
        # Through sh, which forks the method process: started by this (large) process
        # directly, the method's ru_maxrss would start at this process's high-water mark.
        launch = ["/bin/sh", "-c", '"$@"; exit $?', "sh", *command]
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        try:
            done = subprocess.run(launch, cwd=REPO_ROOT, env=dict(BASE_ENV), capture_output=True, text=True,
                                  timeout=CHILD_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {CHILD_TIMEOUT_S} s"}
        process_seconds = time.perf_counter() - start
        (self.paths.logs / f"{log_name}.log").write_text(
            f"$ {' '.join(command[:4])} ...\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        result: dict[str, Any] | None = None
        for line in reversed(done.stdout.splitlines()):
            if line.startswith(RESULT_MARKER):
                result = json.loads(line[len(RESULT_MARKER):])
                break
        if result is None:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            result = {"error": f"exit {done.returncode}: {' | '.join(tail)}"}
        elif done.returncode != 0 and "error" not in result:
            result["error"] = f"exit {done.returncode}"
        result["process_seconds"] = process_seconds
        result["loadavg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        return result

    def measure(self, record: Record, args: dict[str, Any], rep: int) -> dict[str, Any]:
        result = self.child(record.method, args, f"{record.id}_{rep}")
        record.runs.append({**result, "rep": rep})
        if "error" in result:
            record.error = result["error"]
            log(f"  {record.id} run {rep + 1}: FAILED: {result['error']}")
        else:
            children = result.get("maxrss_children_mib")
            log(f"  {record.id} run {rep + 1}/{self.settings.repeat}: {result['seconds']:.3f} s, "
                f"{result.get('rows')} rows, RSS {result['maxrss_self_mib']:.0f} MiB"
                + (f" (children {children:.0f} MiB)" if children is not None else ""))
        return result

    def round_robin(self, plan: list[tuple[Record, Callable[[int], dict[str, Any]]]]) -> None:
        """Each repetition runs every method once; the starting method rotates."""
        for rep in range(self.settings.repeat):
            shift = rep % len(plan)
            for record, make_args in plan[shift:] + plan[:shift]:
                self.measure(record, make_args(rep), rep)


# --- data -------------------------------------------------------------------------------


@dataclass
class Data:
    table: pa.Table
    files: datagen.FileData
    file_table: pa.Table


def prepare_data(settings: Settings, pg: PgTarget, paths: Paths) -> Data:
    t0 = time.perf_counter()
    table = datagen.table_reference(settings.rows, settings.seed)
    conn = infra.connect(pg)
    try:
        if {"table", "incremental", "dagster", "memory"} & set(settings.groups):
            datagen.load_table(conn, TABLE, table)
            datagen.copy_table(conn, TABLE, HALF_TABLE, settings.half_rows)
            datagen.copy_table(conn, TABLE, SMALL_TABLE, settings.small_rows)
    finally:
        conn.close()
    log(f"table {TABLE}: {settings.rows:,} rows loaded into {pg.dbname} "
        f"(+ {HALF_TABLE} {settings.half_rows:,}, {SMALL_TABLE} {settings.small_rows:,}) "
        f"in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    files = datagen.ensure_file_data(paths.files, settings.csv_rows, settings.seed)
    log(f"files: {files.csv.name} {files.csv.stat().st_size / 1e6:.1f} MB, "
        f"{files.ndjson.name} {files.ndjson.stat().st_size / 1e6:.1f} MB ({time.perf_counter() - t0:.1f} s)")
    return Data(table=table, files=files, file_table=pq.read_table(files.reference))


def table_streams(pg: PgTarget, table: str) -> int:
    """How many COPY streams our extractor uses for ``table`` (as postgres.extract decides)."""
    from platform_assets.ingestion.postgres.extract import (
        PARALLEL_MIN_PAGES,
        parallel_streams,
    )

    conn = infra.connect(pg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int",
                        (f"public.{table}",))
            pages = int(cur.fetchone()[0])
    finally:
        conn.close()
    return parallel_streams() if pages >= PARALLEL_MIN_PAGES else 1


# --- groups -----------------------------------------------------------------------------


def run_table_group(suite: Suite, rows: int) -> None:
    base = suite.base_args()
    out = suite.paths.out
    streams = table_streams(suite.pg, TABLE)
    log(f"group table: {rows:,} rows; our extractor reads it with {streams} COPY stream(s)")
    plan: list[tuple[Record, Callable[[int], dict[str, Any]]]] = []
    table_args = {**base, "table": TABLE, "rows": rows}
    plan.append((suite.add("limit_copy_binary", "table", "limit_copy_binary", "limit",
                           "limit: COPY binary -> /dev/null (psql)"), lambda rep: table_args))
    if streams > 1:
        plan.append((suite.add("limit_copy_binary_parallel", "table", "limit_copy_binary_parallel", "limit",
                               f"limit: {streams} x COPY binary by ctid range"),
                     lambda rep: {**table_args, "streams": streams}))
    if suite.settings.pandas:
        plan.append((suite.add("pandas_read_sql", "table", "pandas_read_sql", "baseline",
                               "pandas.read_sql + to_parquet"),
                     lambda rep: {**table_args, "out": str(out / "pandas_read_sql.parquet")}))
    if suite.settings.dlt:
        for backend in ("pyarrow", "connectorx"):
            method = f"dlt_{backend}"
            plan.append((suite.add(method, "table", method, "baseline", f"dlt sql_table ({backend}) -> S3 parquet",
                                   note="filesystem destination on the same localbucket S3 server"),
                         lambda rep: {**table_args, "s3": {**table_args["s3"], "bucket": DLT_BUCKET},
                                      "tag": f"r{rep}", "pipelines_dir": str(suite.paths.dlt)}))
    plan.append((suite.add("duckdb_postgres", "table", "duckdb_postgres", "baseline",
                           "duckdb postgres scanner -> parquet"),
                 lambda rep: {**table_args, "out": str(out / "duckdb_postgres.parquet")}))
    plan.append((suite.add("ours_full", "table", "ours_full", "ours", "ours: extract_table_full -> S3"),
                 lambda rep: {**table_args, "object_key": f"bench/ours_full/{EXECUTION_DATE}/{TABLE}.parquet"}))
    partition_args = {**table_args, "start_date": EXECUTION_DATE}
    plan.append((suite.add("ours_partition", "table", "ours_partition", "ours",
                           "ours: a full-load partition (engine) -> S3"), lambda rep: partition_args))
    plan.append((suite.add("ours_partition_deletes", "table", "ours_partition_deletes", "ours",
                           "ours: the same partition capturing deletes (key set compared)"),
                 lambda rep: partition_args))
    log("  warm-up: one untimed COPY of the table (OS page cache), one untimed run capturing deletes (key set)")
    suite.child("limit_copy_binary", table_args, "warmup_table")
    suite.child("ours_partition_deletes", partition_args, "warmup_deletes")
    suite.round_robin(plan)


@dataclass
class IncrementalState:
    updated_ids_modulus: int | None = None
    watermark_before: str | None = None
    plan: Any = None  # EXPLAIN before the first timed run
    setup: dict[str, Any] | None = None
    updated_rows: list[int] = field(default_factory=list)
    per_run: list[dict[str, Any]] = field(default_factory=list)  # stored watermark state + index use


def run_incremental_group(suite: Suite) -> IncrementalState:
    state = IncrementalState()
    base = suite.base_args()
    key = f"bench/ours_incremental/{EXECUTION_DATE}/{TABLE}.parquet"
    inc_args = {**base, "table": TABLE, "watermark_column": WATERMARK_COLUMN, "object_key": key}
    log("group incremental: untimed first run of extract_table_incremental (full extract, sets the watermark)")
    state.setup = suite.child("ours_incremental", inc_args, "incremental_setup")
    if "error" in state.setup:
        log(f"  setup FAILED: {state.setup['error']}")
        suite.add("ours_incremental", "incremental", "ours_incremental", "ours",
                  "ours: extract_table_incremental -> S3").error = state.setup["error"]
        return state
    log(f"  setup: {state.setup['rows']:,} rows in {state.setup['seconds']:.3f} s, "
        f"watermark {state.setup.get('watermark_after')}")
    limit = suite.add("limit_copy_binary_incremental", "incremental", "limit_copy_binary", "limit",
                      "limit: COPY binary WHERE updated_at > wm")
    ours = suite.add("ours_incremental", "incremental", "ours_incremental", "ours",
                     "ours: extract_table_incremental -> S3")
    from benchmarks.explain import incremental_plan

    for rep in range(suite.settings.repeat):
        modulus = rep % INCREMENTAL_FRACTION_MODULUS
        conn = infra.connect(suite.pg)
        try:
            with conn.cursor() as cur:
                cur.execute(f"UPDATE public.{TABLE} SET {WATERMARK_COLUMN} = now() WHERE id %% %s = %s",
                            (INCREMENTAL_FRACTION_MODULUS, modulus))
                updated = cur.rowcount
                cur.execute("SELECT watermark_value FROM data_platform.watermarks WHERE source_name = %s",
                            (f"public.{TABLE}",))
                watermark = cur.fetchone()[0]
        finally:
            conn.close()
        state.updated_rows.append(updated)
        log(f"  run {rep + 1}: updated {updated:,} rows (id % {INCREMENTAL_FRACTION_MODULUS} = {modulus}) "
            f"to now(); stored watermark {watermark}")
        plan = incremental_plan(suite.pg, TABLE, WATERMARK_COLUMN)
        state.plan = state.plan or plan
        state.per_run.append({"run": rep + 1, "watermark": plan.watermark, "catchup_floor": plan.catchup_floor,
                              "last_snapshot": plan.last_snapshot, "index_used": plan.index_used,
                              "plan_top": plan.exact_plan[:3]})
        log(f"  EXPLAIN of the exact incremental SELECT: watermark index used: "
            f"{'yes' if plan.index_used else 'NO'} (stored catch-up floor {plan.catchup_floor}, "
            f"snapshot {plan.last_snapshot})")
        suite.measure(limit, {**base, "table": TABLE, "rows": updated,
                              "where": f"{WATERMARK_COLUMN} > '{watermark}'::timestamptz"}, rep)
        suite.measure(ours, inc_args, rep)
        state.updated_ids_modulus, state.watermark_before = modulus, watermark
    return state


def run_file_groups(suite: Suite, data: Data) -> None:
    base = suite.base_args()
    out = suite.paths.out
    files = data.files
    rows = data.file_table.num_rows
    for group, path, limit_method, limit_label, pandas_method, pandas_label, duck, ours in (
        ("csv", files.csv, "limit_pyarrow_read_csv", "limit: pyarrow.csv.read_csv (explicit types)",
         "pandas_read_csv", "pandas.read_csv + to_parquet", "duckdb_read_csv", "ours_csv"),
        ("ndjson", files.ndjson, "limit_pyarrow_read_json", "limit: pyarrow.json.read_json",
         "pandas_read_json", "pandas.read_json(lines=True) + to_parquet", "duckdb_read_json", "ours_json"),
    ):
        if group not in suite.settings.groups:
            continue
        log(f"group {group}: {path.name} ({path.stat().st_size / 1e6:.1f} MB, {rows:,} rows)")
        file_args = {**base, "path": str(path), "rows": rows, "reference": str(files.reference)}
        suite.child("limit_cat", file_args, f"warmup_{group}")
        ours_label = "ours: ingest_csv_file -> S3" if group == "csv" else "ours: ingest_json_file -> S3"
        plan: list[tuple[Record, Callable[[int], dict[str, Any]]]] = [
            (suite.add(f"limit_cat_{group}", group, "limit_cat", "limit", "limit: cat file > /dev/null"),
             lambda rep, a=file_args: a),
            (suite.add(limit_method, group, limit_method, "limit", limit_label), lambda rep, a=file_args: a),
            *([(suite.add(pandas_method, group, pandas_method, "baseline", pandas_label),
                lambda rep, a=file_args, m=pandas_method: {**a, "out": str(out / f"{m}.parquet")})]
              if suite.settings.pandas else []),
            (suite.add(duck, group, duck, "baseline", f"duckdb {'read_csv' if group == 'csv' else 'read_json'}"
                       " -> parquet"),
             lambda rep, a=file_args, m=duck: {**a, "out": str(out / f"{m}.parquet")}),
            (suite.add(ours, group, ours, "ours", ours_label),
             lambda rep, a=file_args, g=group: {**a, "object_key": f"bench/{g}/{EXECUTION_DATE}/orders.parquet"}),
        ]
        suite.round_robin(plan)


def run_dagster_group(suite: Suite) -> None:
    base = suite.base_args()
    log(f"group dagster: {SMALL_TABLE} ({suite.settings.small_rows:,} rows), materialize vs bare function")
    small = {**base, "table": SMALL_TABLE}
    plan: list[tuple[Record, Callable[[int], dict[str, Any]]]] = [
        (suite.add("ours_full_small", "dagster", "ours_full", "ours", "ours: extract_table_full (bare) -> S3"),
         lambda rep: {**small, "object_key": f"bench/ours_full_small/{EXECUTION_DATE}/{SMALL_TABLE}.parquet"}),
        (suite.add("ours_dagster_asset", "dagster", "ours_dagster_asset", "ours",
                   "ours: dg.materialize(asset, partition) -> S3"),
         lambda rep: {**small, "start_date": DAGSTER_START_DATE}),
    ]
    suite.round_robin(plan)


def run_memory_group(suite: Suite) -> None:
    log(f"group memory: extract_table_full on {HALF_TABLE} ({suite.settings.half_rows:,} rows)")
    record = suite.add("ours_full_half", "memory", "ours_full", "ours",
                       f"ours: extract_table_full, {suite.settings.half_rows:,} rows -> S3")
    args = {**suite.base_args(), "table": HALF_TABLE,
            "object_key": f"bench/ours_full_half/{EXECUTION_DATE}/{HALF_TABLE}.parquet"}
    suite.round_robin([(record, lambda rep: args)])


# --- checks -----------------------------------------------------------------------------


def check_outputs(suite: Suite, data: Data, incremental: IncrementalState | None) -> None:
    """Read each method's last output back and compare it with its reference."""
    table, files = data.table, data.file_table
    half = table.slice(0, suite.settings.half_rows)
    small = table.slice(0, suite.settings.small_rows)
    references: dict[str, tuple[pa.Table, frozenset[str], str]] = {
        "table": (table, datagen.TABLE_JSON_COLUMNS, TABLE_KEY),
        "csv": (files, frozenset(), "id"),
        "ndjson": (files, frozenset(), "id"),
        "dagster": (small, datagen.TABLE_JSON_COLUMNS, TABLE_KEY),
        "memory": (half, datagen.TABLE_JSON_COLUMNS, TABLE_KEY),
    }
    for record in suite.records.values():
        output = record.last_output
        if record.role == "limit" or output is None:
            continue
        t0 = time.perf_counter()
        try:
            candidate = verify.read_output(output, suite.s3, suite.paths.scratch)
        except Exception as e:  # noqa: BLE001 - any failure to read is reported as a failed check
            record.check = verify.Check(False, 0, 0, [f"cannot read output: {e}"]).to_json()
            continue
        if candidate is None:
            continue
        if record.group == "incremental":
            record.check = _check_incremental(table, candidate, incremental).to_json()
        else:
            reference, json_columns, key = references[record.group]
            record.check = verify.compare(reference, candidate, key, json_columns).to_json()
        if record.id in ("ours_full", "ours_csv", "ours_json"):
            record.default_size_bytes = verify.default_write_size(candidate, suite.paths.scratch)
        status = "same" if record.check["same"] else "DIFFERENT: " + "; ".join(record.check["differences"][:3])
        log(f"  check {record.id}: {status} ({time.perf_counter() - t0:.1f} s)")


def _check_incremental(table: pa.Table, candidate: pa.Table, state: IncrementalState | None) -> verify.Check:
    """The last incremental run holds exactly the rows updated before it, with their values."""
    if state is None or state.updated_ids_modulus is None:
        return verify.Check(False, candidate.num_rows, 0, ["no incremental run to check"])
    ids = table.column(TABLE_KEY).to_numpy()
    expected = table.filter(pa.array(ids % INCREMENTAL_FRACTION_MODULUS == state.updated_ids_modulus))
    check = verify.compare(expected, candidate, TABLE_KEY, datagen.TABLE_JSON_COLUMNS,
                           skip_values=frozenset({WATERMARK_COLUMN}))
    if WATERMARK_COLUMN in candidate.column_names and state.watermark_before:
        import pandas as pd

        floor = pd.Timestamp(state.watermark_before).value // 1000
        values = verify.canonical(candidate.column(WATERMARK_COLUMN), pa.timestamp("us", tz="UTC"))
        stale = pc.sum(pc.less_equal(values, floor).cast(pa.int64())).as_py() or 0
        if stale:
            check.differences.append(f"{stale} rows with {WATERMARK_COLUMN} <= the watermark before the run")
            check.same = False
    return check


# --- main -------------------------------------------------------------------------------


def versions(pg: PgTarget, dlt: bool) -> dict[str, str]:
    import duckdb
    import pandas

    found = {"python": platform.python_version(), "pyarrow": pa.__version__, "pandas": pandas.__version__,
             "duckdb": duckdb.__version__}
    conn = infra.connect(pg)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            found["postgresql"] = cur.fetchone()[0]
    finally:
        conn.close()
    if dlt and DLT_PYTHON.exists():
        probe = subprocess.run([str(DLT_PYTHON), "-c", "import dlt; print(dlt.__version__)"],
                               capture_output=True, text=True, check=False,
                               env={**BASE_ENV, "RUNTIME__DLTHUB_TELEMETRY": "false"})
        found["dlt"] = probe.stdout.strip() or "unavailable"
    return found


def machine() -> str:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError):
        memory = "? RAM"
    return f"{os.cpu_count()} cores, {memory}, {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    if settings.dlt and not DLT_PYTHON.exists():
        log(f"dlt skipped: {DLT_PYTHON} does not exist (make bench creates it)")
        settings = Settings(**{**settings.__dict__, "dlt": False})
    started = dt.datetime.now(dt.UTC)
    paths = Paths()
    paths.reset()
    log(f"benchmark ({'quick' if settings.quick else 'full'}): table {settings.rows:,} rows, "
        f"files {settings.csv_rows:,} rows, {settings.repeat} repetition(s), dlt {'on' if settings.dlt else 'off'}")
    server = infra.start_s3_server(paths.s3, [BRONZE_BUCKET, DLT_BUCKET])
    log(f"S3 server: localbucket at {server.target.endpoint} (folder {paths.s3})")
    pg = infra.create_database()
    log(f"database: {pg.dbname}")
    suite = Suite(settings, pg, server.target, paths)
    incremental: IncrementalState | None = None
    try:
        data = prepare_data(settings, pg, paths)
        found_versions = versions(pg, settings.dlt)
        if "table" in settings.groups:
            run_table_group(suite, settings.rows)
        if "incremental" in settings.groups:
            incremental = run_incremental_group(suite)
        run_file_groups(suite, data)
        if "dagster" in settings.groups:
            run_dagster_group(suite)
        if "memory" in settings.groups:
            run_memory_group(suite)
        log("checking outputs against the reference")
        check_outputs(suite, data, incremental)
    finally:
        server.stop()
        if settings.keep_db:
            log(f"kept database {pg.dbname}")
        else:
            infra.drop_database(pg)
    finished = dt.datetime.now(dt.UTC)
    return finish(settings, suite, incremental, started, finished, found_versions)


def _load_range(records: list[Record]) -> list[float] | None:
    """Lowest and highest 1-minute load average seen around the method runs.

    Above the core count, other processes competed for the CPU (on a shared machine,
    e.g. test suites of other sessions): the times are then less reliable.
    """
    values = [v for r in records for run in r.runs for v in run.get("loadavg_1m", [])]
    return [min(values), max(values)] if values else None


def finish(settings: Settings, suite: Suite, incremental: IncrementalState | None,
           started: dt.datetime, finished: dt.datetime, found_versions: dict[str, str]) -> int:
    records = list(suite.records.values())
    targets = report.evaluate_targets(records)
    extras: dict[str, Any] = {}
    memory = [suite.records[r] for r in ("ours_full_half", "ours_full") if r in suite.records]
    memory = [m for m in memory if m.ok_runs]
    if memory:
        extras["memory_scaling"] = [
            {"rows": m.rows, "peak_rss_mib": m.peak_rss_mib, "children_rss_mib": m.children_rss_mib,
             "median_seconds": m.median_seconds} for m in memory
        ]
    if incremental is not None:
        extras["incremental"] = {"setup_run": incremental.setup, "updated_rows_per_run": incremental.updated_rows,
                                 "runs": incremental.per_run}
        if incremental.plan is not None:
            extras["incremental_plan"] = incremental.plan.to_json()
    meta = {
        "mode": "quick" if settings.quick else "full", "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"), "machine": machine(), "rows": settings.rows,
        "csv_rows": settings.csv_rows, "repeat": settings.repeat, "seed": settings.seed,
        "half_rows": settings.half_rows, "small_rows": settings.small_rows, "versions": found_versions,
        "object_store": "localbucket (S3 over HTTP on 127.0.0.1) for ours and dlt; pandas/DuckDB write local files",
        "dlt": ("filesystem destination -> the same localbucket S3 server" if settings.dlt else "skipped"),
        "loadavg_1m": _load_range(records),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = RESULTS_DIR / settings.results_name
    report.write_json(stem.with_suffix(".json"), meta, records, targets, extras)
    report.write_markdown(stem.with_suffix(".md"), meta, records, targets, extras)
    report.write_chart(stem.with_suffix(".png"), records,
                       f"Ingestion benchmark ({meta['mode']}): {settings.rows:,} table rows, "
                       f"{settings.csv_rows:,} file rows, median of {settings.repeat}")

    print()
    print(report.text_table(records))
    print()
    if "memory_scaling" in extras:
        print("Peak RSS of extract_table_full by table size (psql children are separate processes):")
        for m in extras["memory_scaling"]:
            children = m["children_rss_mib"]
            print(f"  {m['rows']:>10,} rows: {m['peak_rss_mib']:.0f} MiB"
                  + (f" (psql children {children:.0f} MiB)" if children is not None else "")
                  + f", {m['median_seconds']:.3f} s")
        print()
    if incremental is not None and incremental.plan is not None:
        plan = incremental.plan
        print(f"Incremental predicate (exact SELECT, watermark index used: {'yes' if plan.index_used else 'NO'}):")
        print("  " + plan.exact_sql)
        print("\n".join("    " + line for line in plan.exact_plan))
        print(f"Plain predicate (index used: {'yes' if plan.simple_index_used else 'NO'}): {plan.simple_sql}")
        print("\n".join("    " + line for line in plan.simple_plan))
        for run in incremental.per_run:
            print(f"  run {run['run']}: index used {'yes' if run['index_used'] else 'NO'}; stored catch-up floor "
                  f"{run['catchup_floor']}; snapshot of the previous run {run['last_snapshot']}")
        print()
    notes = report.type_notes(records)
    if notes:
        print("Type notes (values equal after normalisation, types differ from the reference):")
        print("\n".join("  " + n for n in notes))
        print()
    print("Targets:")
    if settings.quick:
        print("  (quick mode: on data this small, fixed per-run costs dominate; the time ratios are not meaningful)")
    print("\n".join("  " + t.line() for t in targets))
    print()
    print(f"Results: {stem.with_suffix('.json')}, {stem.with_suffix('.md')}, {stem.with_suffix('.png')}")
    failed_methods = [r.id for r in records if r.error]
    bad_outputs = [r.id for r in records if r.role == "ours" and r.check and not r.check["same"]]
    if failed_methods:
        print(f"Methods that failed: {failed_methods} (logs in {suite.paths.logs})")
    if bad_outputs:
        print(f"Our outputs that differ from the reference: {bad_outputs}")
    if failed_methods or bad_outputs:
        return 1
    if settings.strict and any(t.passed is False for t in targets):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

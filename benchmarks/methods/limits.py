"""Limits: read the source as fast as the server, the disk or the parser allows; write nothing.

- ``copy_binary``: ``COPY (SELECT * FROM t [WHERE ...]) TO STDOUT (FORMAT binary)``
  through ``psql`` into /dev/null: what the server can send over one connection.
- ``copy_binary_parallel``: the same over N connections, each a range of heap pages
  (``ctid``), as our extractor splits a large table.
- ``cat_file``: ``cat file > /dev/null``.
- ``pyarrow_read_csv`` / ``pyarrow_read_json``: the bare Arrow readers (CSV with the
  reference's explicit column types), the data left in memory.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

from benchmarks.config import PgTarget


def _psql(target: PgTarget) -> tuple[list[str], dict[str, str]]:
    import os

    psql = shutil.which("psql")
    if psql is None:
        raise RuntimeError("psql is not on the PATH")
    env = {**os.environ, "PGHOST": target.host, "PGPORT": str(target.port), "PGUSER": target.user,
           "PGDATABASE": target.dbname, "PGAPPNAME": "benchmarks:limit"}
    if target.password:
        env["PGPASSWORD"] = target.password
    return [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1"], env


def _copy_statement(table: str, conditions: list[str]) -> str:
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"COPY (SELECT * FROM public.{table}{where}) TO STDOUT (FORMAT binary)"


def _run_copies(target: PgTarget, statements: list[str]) -> float:
    base, env = _psql(target)
    start = time.perf_counter()
    processes = [
        subprocess.Popen([*base, "-c", s], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        for s in statements
    ]
    failures = []
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            failures.append(err.decode(errors="replace").strip())
    seconds = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"psql COPY failed: {failures[0]}")
    return seconds


def copy_binary(args: dict[str, Any]) -> dict[str, Any]:
    target = PgTarget.from_json(args["pg"])
    where = [args["where"]] if args.get("where") else []
    seconds = _run_copies(target, [_copy_statement(args["table"], where)])
    return {"seconds": seconds, "rows": args["rows"], "output": {"kind": "none"}, "streams": 1}


def copy_binary_parallel(args: dict[str, Any]) -> dict[str, Any]:
    """N COPY streams over contiguous page ranges (the split our extractor uses)."""
    target = PgTarget.from_json(args["pg"])
    streams = int(args["streams"])
    base, env = _psql(target)
    pages = int(subprocess.run(
        [*base, "-Atc", f"SELECT pg_relation_size('public.{args['table']}') / 8192"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout.strip())
    bounds = [pages * i // streams for i in range(1, streams)]
    ranges = list(zip([None, *bounds], [*bounds, None]))
    statements = []
    for first, last in ranges:
        conditions = []
        if first is not None:
            conditions.append(f"ctid >= '({first},0)'::tid")
        if last is not None:
            conditions.append(f"ctid < '({last},0)'::tid")
        statements.append(_copy_statement(args["table"], conditions))
    seconds = _run_copies(target, statements)
    return {"seconds": seconds, "rows": args["rows"], "output": {"kind": "none"}, "streams": streams}


def cat_file(args: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    subprocess.run(["cat", args["path"]], stdout=subprocess.DEVNULL, check=True)
    return {"seconds": time.perf_counter() - start, "rows": args["rows"], "output": {"kind": "none"}}


def pyarrow_read_csv(args: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    schema = pq.read_schema(args["reference"])
    options = pa_csv.ConvertOptions(
        column_types={f.name: f.type for f in schema}, strings_can_be_null=True
    )
    start = time.perf_counter()
    table = pa_csv.read_csv(args["path"], convert_options=options)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": table.num_rows, "output": {"kind": "none"}}


def pyarrow_read_json(args: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.json as pa_json

    start = time.perf_counter()
    table = pa_json.read_json(args["path"])
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": table.num_rows, "output": {"kind": "none"}}

"""Baselines in the project's venv: pandas and DuckDB, each writing a local Parquet file.

- ``pandas_read_sql``: ``pandas.read_sql`` (SQLAlchemy + psycopg2) then ``to_parquet``;
- ``pandas_read_csv`` / ``pandas_read_json``: ``read_csv`` / ``read_json(lines=True)``
  with defaults, then ``to_parquet``;
- ``duckdb_postgres``: DuckDB's postgres scanner (the extension file shipped in the
  ``duckdb_extension_postgres`` wheel, loaded from disk; nothing is downloaded),
  ``COPY (SELECT * FROM pg.public.t) TO 'out.parquet'``;
- ``duckdb_read_csv`` / ``duckdb_read_json``: DuckDB's readers with auto-detection,
  ``COPY ... TO`` Parquet (extra reference points, not targets).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.config import PgTarget


def _local_output(path: str, rows: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "seconds": seconds, "rows": rows, "output_bytes": os.path.getsize(path),
        "output": {"kind": "file", "path": path}, **extra,
    }


def pandas_read_sql(args: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd
    import sqlalchemy

    target = PgTarget.from_json(args["pg"])
    start = time.perf_counter()
    engine = sqlalchemy.create_engine(target.sqlalchemy_url())
    with engine.connect() as conn:
        frame = pd.read_sql(f"SELECT * FROM public.{args['table']}", conn)
    frame.to_parquet(args["out"])
    seconds = time.perf_counter() - start
    engine.dispose()
    return _local_output(args["out"], len(frame), seconds)


def pandas_read_csv(args: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    start = time.perf_counter()
    frame = pd.read_csv(args["path"])
    frame.to_parquet(args["out"])
    return _local_output(args["out"], len(frame), time.perf_counter() - start)


def pandas_read_json(args: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    start = time.perf_counter()
    frame = pd.read_json(args["path"], lines=True)
    frame.to_parquet(args["out"])
    return _local_output(args["out"], len(frame), time.perf_counter() - start)


def postgres_extension_file(work_dir: Path) -> Path:
    """The postgres scanner from the ``duckdb_extension_postgres`` wheel, under a name DuckDB accepts.

    The wheel ships ``postgres.duckdb_extension``, but DuckDB derives the entry point
    from the file name and the binary exports ``postgres_scanner_duckdb_cpp_init``:
    loading it under its shipped name fails ("did not contain the expected entrypoint
    function 'postgres_duckdb_cpp_init'"). A symlink named ``postgres_scanner`` works.
    """
    import duckdb_extension_postgres

    package = Path(duckdb_extension_postgres.__file__).parent
    found = sorted(package.rglob("*.duckdb_extension"))
    if not found:
        raise RuntimeError(f"no .duckdb_extension file under {package}")
    work_dir.mkdir(parents=True, exist_ok=True)
    link = work_dir / "postgres_scanner.duckdb_extension"
    if link.is_symlink() or link.exists():
        link.unlink()
    try:
        link.symlink_to(found[0])
    except OSError:
        shutil.copyfile(found[0], link)
    return link


def _duckdb() -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    return con


def duckdb_postgres(args: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    target = PgTarget.from_json(args["pg"])
    extension = postgres_extension_file(Path(args["work_dir"]))
    con = _duckdb()
    start = time.perf_counter()
    con.execute(f"LOAD '{extension}'")
    con.execute(f"ATTACH '{target.dsn()}' AS pg (TYPE postgres, READ_ONLY)")
    con.execute(
        f"COPY (SELECT * FROM pg.public.{args['table']}) TO '{args['out']}' (FORMAT parquet)"
    )
    seconds = time.perf_counter() - start
    con.close()
    rows = pq.ParquetFile(args["out"]).metadata.num_rows
    return _local_output(args["out"], rows, seconds)


def duckdb_read_csv(args: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    con = _duckdb()
    start = time.perf_counter()
    con.execute(f"COPY (SELECT * FROM read_csv('{args['path']}')) TO '{args['out']}' (FORMAT parquet)")
    seconds = time.perf_counter() - start
    return _local_output(args["out"], pq.ParquetFile(args["out"]).metadata.num_rows, seconds)


def duckdb_read_json(args: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    con = _duckdb()
    start = time.perf_counter()
    con.execute(
        f"COPY (SELECT * FROM read_json('{args['path']}', format = 'newline_delimited')) "
        f"TO '{args['out']}' (FORMAT parquet)"
    )
    seconds = time.perf_counter() - start
    return _local_output(args["out"], pq.ParquetFile(args["out"]).metadata.num_rows, seconds)

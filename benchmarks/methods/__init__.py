"""The measured methods, one function each, run one per process by ``benchmarks.method``.

``METHODS`` maps a method name to where its function lives and which interpreter
runs it (``main``: the project's .venv; ``dlt``: .venv-bench-dlt). Modules are
imported only in the process that runs the method, so this package imports
nothing but the standard library (the dlt venv has neither the project nor pandas).

A method function takes the JSON arguments (dict) and returns a dict with at least
``seconds`` (wall time of the work itself, after imports), ``rows`` and ``output``
(where the result is, for the output check; ``{"kind": "none"}`` for limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Interpreter = Literal["main", "dlt"]


@dataclass(frozen=True)
class MethodSpec:
    module: str
    function: str
    interpreter: Interpreter = "main"


METHODS: dict[str, MethodSpec] = {
    # limits: read the source as fast as the server / disk / parser allows, write nothing
    "limit_copy_binary": MethodSpec("benchmarks.methods.limits", "copy_binary"),
    "limit_copy_binary_parallel": MethodSpec("benchmarks.methods.limits", "copy_binary_parallel"),
    "limit_cat": MethodSpec("benchmarks.methods.limits", "cat_file"),
    "limit_pyarrow_read_csv": MethodSpec("benchmarks.methods.limits", "pyarrow_read_csv"),
    "limit_pyarrow_read_json": MethodSpec("benchmarks.methods.limits", "pyarrow_read_json"),
    # baselines: other ways to get the same Parquet
    "pandas_read_sql": MethodSpec("benchmarks.methods.baselines", "pandas_read_sql"),
    "pandas_read_csv": MethodSpec("benchmarks.methods.baselines", "pandas_read_csv"),
    "pandas_read_json": MethodSpec("benchmarks.methods.baselines", "pandas_read_json"),
    "duckdb_postgres": MethodSpec("benchmarks.methods.baselines", "duckdb_postgres"),
    "duckdb_read_csv": MethodSpec("benchmarks.methods.baselines", "duckdb_read_csv"),
    "duckdb_read_json": MethodSpec("benchmarks.methods.baselines", "duckdb_read_json"),
    "dlt_pyarrow": MethodSpec("benchmarks.methods.dlt_runs", "dlt_pyarrow", "dlt"),
    "dlt_connectorx": MethodSpec("benchmarks.methods.dlt_runs", "dlt_connectorx", "dlt"),
    # ours
    "ours_full": MethodSpec("benchmarks.methods.ours", "full"),
    "ours_incremental": MethodSpec("benchmarks.methods.ours", "incremental"),
    "ours_csv": MethodSpec("benchmarks.methods.ours", "csv_file"),
    "ours_json": MethodSpec("benchmarks.methods.ours", "json_file"),
    "ours_dagster_asset": MethodSpec("benchmarks.methods.ours", "dagster_asset"),
    "ours_partition": MethodSpec("benchmarks.methods.ours", "partition_full"),
    "ours_partition_deletes": MethodSpec("benchmarks.methods.ours", "partition_full_with_deletes"),
}

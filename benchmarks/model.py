"""What one benchmarked method measured over its repetitions (plain data, JSON-able)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["limit", "baseline", "ours"]

GROUP_TITLES = {
    "table": "PostgreSQL table, full extract",
    "incremental": "PostgreSQL table, incremental (1% of rows updated)",
    "csv": "CSV file to Parquet",
    "ndjson": "NDJSON file to Parquet",
    "dagster": "Dagster overhead (small table)",
    "memory": "Memory at a second table size",
}
# Per group: the limit that "x limit" divides by, and the pandas baseline for "pandas speedup".
GROUP_LIMIT = {
    "table": "limit_copy_binary",
    "incremental": "limit_copy_binary_incremental",
    "csv": "limit_pyarrow_read_csv",
    "ndjson": "limit_pyarrow_read_json",
    "dagster": "ours_full_small",
}
GROUP_PANDAS = {"table": "pandas_read_sql", "csv": "pandas_read_csv", "ndjson": "pandas_read_json"}


@dataclass
class Record:
    id: str
    group: str
    method: str
    role: Role
    label: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    check: dict[str, Any] | None = None
    default_size_bytes: int | None = None
    note: str = ""

    @property
    def ok_runs(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if "error" not in r]

    @property
    def median_seconds(self) -> float | None:
        runs = self.ok_runs
        return statistics.median(r["seconds"] for r in runs) if runs else None

    @property
    def rows(self) -> int | None:
        runs = self.ok_runs
        return runs[-1].get("rows") if runs else None

    @property
    def rows_per_s(self) -> float | None:
        seconds, rows = self.median_seconds, self.rows
        return rows / seconds if seconds and rows is not None else None

    @property
    def peak_rss_mib(self) -> float | None:
        runs = self.ok_runs
        return max(r["maxrss_self_mib"] for r in runs) if runs else None

    @property
    def children_rss_mib(self) -> float | None:
        values = [r["maxrss_children_mib"] for r in self.ok_runs if r.get("maxrss_children_mib") is not None]
        return max(values) if values else None

    @property
    def output_bytes(self) -> int | None:
        runs = self.ok_runs
        return runs[-1].get("output_bytes") if runs else None

    @property
    def last_output(self) -> dict[str, Any] | None:
        runs = self.ok_runs
        return runs[-1].get("output") if runs else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            median_seconds=self.median_seconds, rows_per_s=self.rows_per_s,
            peak_rss_mib=self.peak_rss_mib, children_rss_mib=self.children_rss_mib,
            output_bytes=self.output_bytes,
        )
        return data

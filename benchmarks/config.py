"""Paths, sizes and names shared by the benchmark modules (standard library only).

This module is imported by method processes running under the dlt virtualenv too,
so it must not import the project or any third-party package.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "benchmarks"
DATA_DIR = BENCH_DIR / "data"  # gitignored: generated files, outputs, the S3 server's folder
RESULTS_DIR = BENCH_DIR / "results"
MAIN_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
DLT_PYTHON = REPO_ROOT / ".venv-bench-dlt" / "bin" / "python"

RESULT_MARKER = "BENCH_RESULT "  # prefix of the JSON line a method process prints last

TABLE = "bench_orders"
HALF_TABLE = "bench_orders_half"
SMALL_TABLE = "bench_orders_small"
TABLE_KEY = "id"
FILE_KEY = "id"
WATERMARK_COLUMN = "updated_at"
EXECUTION_DATE = "2024-06-01"  # partition / execution date used by every run of ours
DAGSTER_START_DATE = "2024-01-01"

FULL_ROWS = 2_000_000
FULL_CSV_ROWS = 1_000_000
QUICK_ROWS = 50_000
QUICK_CSV_ROWS = 20_000
SMALL_ROWS = 1_000
DEFAULT_REPEAT = 3
DEFAULT_SEED = 20240601
INCREMENTAL_FRACTION_MODULUS = 100  # UPDATE rows with id % 100 = r: 1% of the table

S3_ACCESS_KEY = "bench-access"
S3_SECRET_KEY = "bench-secret"
S3_REGION = "us-east-1"
BRONZE_BUCKET = "bench-bronze"
DLT_BUCKET = "bench-dlt"


@dataclass(frozen=True)
class PgTarget:
    """Where the benchmark database is (passed to method processes as JSON)."""

    host: str
    port: int
    user: str
    dbname: str
    password: str | None = None

    def dsn(self) -> str:
        """libpq key/value connection string (DuckDB, psql)."""
        parts = [f"host={self.host}", f"port={self.port}", f"user={self.user}", f"dbname={self.dbname}"]
        if self.password:
            parts.append(f"password={self.password}")
        return " ".join(parts)

    def sqlalchemy_url(self) -> str:
        auth = self.user if not self.password else f"{self.user}:{self.password}"
        return f"postgresql+psycopg2://{auth}@{self.host}:{self.port}/{self.dbname}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PgTarget:
        return cls(**data)


@dataclass(frozen=True)
class S3Target:
    """The loopback S3 server every S3-writing method uses."""

    endpoint: str
    bucket: str = BRONZE_BUCKET
    access_key: str = S3_ACCESS_KEY
    secret_key: str = S3_SECRET_KEY
    region: str = S3_REGION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> S3Target:
        return cls(**data)

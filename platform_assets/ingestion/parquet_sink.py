"""Writes Arrow batches to a local Parquet file in large row groups.

Batches are buffered up to ``row_group_bytes`` before a row group is written, so
the file has few, large row groups while memory stays bounded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_ROW_GROUP_BYTES = 32 * 1024 * 1024
HASH_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ParquetFile:
    path: Path
    row_count: int
    size_bytes: int
    md5: str


class ParquetSink:
    """Accumulates batches of one schema and writes them as a Parquet file."""

    def __init__(self, path: Path, schema: pa.Schema, row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES):
        self._path = path
        self._schema = schema
        self._row_group_bytes = row_group_bytes
        self._writer = pq.ParquetWriter(path, schema, compression="snappy")
        self._pending: list[pa.RecordBatch] = []
        self._pending_bytes = 0
        self._rows = 0

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_bytes += batch.nbytes
        self._rows += batch.num_rows
        if self._pending_bytes >= self._row_group_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending, schema=self._schema)
            self._writer.write_table(table, row_group_size=table.num_rows)
        self._pending = []
        self._pending_bytes = 0

    def close(self) -> ParquetFile:
        self._flush()
        self._writer.close()
        return ParquetFile(self._path, self._rows, self._path.stat().st_size, file_md5(self._path))

    def abort(self) -> None:
        self._pending = []
        self._writer.close()


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()

"""Writes Arrow batches to a local Parquet file in large row groups.

Batches are buffered up to ``row_group_bytes`` before a row group is written, so
the file has few, large row groups while memory stays bounded. Row groups are
encoded by a background thread (Arrow releases the GIL), so reading the next
batches overlaps with writing; the file's MD5 is computed as it is written. A
``follower`` (the growing upload to the object store) is told how many bytes are
final after each row group, so it can send them while the next ones are encoded.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from platform_assets.ingestion.sink.arrow_values import python_values
from platform_assets.ingestion.sink.hashing_io import HashingWriter
from platform_assets.ingestion.sink.memory import release_free_memory

DEFAULT_ROW_GROUP_BYTES = 32 * 1024 * 1024
PREVIEW_ROWS = 5
HASH_CHUNK = 8 * 1024 * 1024
TRIM_EVERY_BATCHES = 8  # also hand free pages back while a row group accumulates
_CLOSE = object()


@dataclass(frozen=True)
class ParquetFile:
    path: Path
    row_count: int
    size_bytes: int
    md5: str


class FileFollower(Protocol):
    """Something that reads the file while it is written (see ``GrowingFileUpload``)."""

    def grown(self, size: int) -> None: ...

    def restart(self) -> None: ...


class ParquetSink:
    """Accumulates batches of one schema and writes them as a Parquet file."""

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
        follower: FileFollower | None = None,
    ):
        self._path = path
        self._follower = follower
        if follower is not None:
            follower.restart()  # the file starts again from its first byte
        self._schema = schema
        self._row_group_bytes = row_group_bytes
        self._output = HashingWriter(path)
        self._writer = pq.ParquetWriter(pa.PythonFile(self._output, mode="w"), schema, compression="snappy")
        self._pending: list[pa.RecordBatch] = []
        self._pending_bytes = 0
        self._rows = 0
        self._groups: queue.Queue = queue.Queue()
        # One row group in the writer's hands (queued or being encoded) while the next
        # accumulates: memory holds at most two row groups.
        self._writer_free = threading.Semaphore(1)
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._write_groups, name="parquet-writer", daemon=True)
        self._thread.start()

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def write(self, batch: pa.RecordBatch) -> None:
        self._raise_writer_failure()
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_bytes += batch.nbytes
        self._rows += batch.num_rows
        if self._pending_bytes >= self._row_group_bytes:
            self._flush()
        elif len(self._pending) % TRIM_EVERY_BATCHES == 0:
            release_free_memory()

    def _flush(self) -> None:
        if self._pending:
            self._writer_free.acquire()
            self._groups.put(pa.Table.from_batches(self._pending, schema=self._schema))
        self._pending = []
        self._pending_bytes = 0

    def _write_groups(self) -> None:
        while (table := self._groups.get()) is not _CLOSE:
            try:
                if not self._failure:  # after a failure, drain: it is reported to the caller
                    self._writer.write_table(table, row_group_size=table.num_rows)
                    if self._follower is not None:
                        self._output.flush()
                        self._follower.grown(self._output.size)
            except BaseException as e:
                self._failure.append(e)
            finally:
                del table  # not held while waiting for the next one
                self._writer_free.release()
                release_free_memory()

    def _raise_writer_failure(self) -> None:
        if self._failure:
            raise self._failure[0]

    def close(self) -> ParquetFile:
        self._flush()
        self._groups.put(_CLOSE)
        self._thread.join()
        self._raise_writer_failure()
        self._writer.close()
        self._output.close()
        return ParquetFile(self._path, self._rows, self._output.size, self._output.md5.hexdigest())

    def abort(self) -> None:
        self._pending = []
        self._groups.put(_CLOSE)
        self._thread.join()
        try:
            self._writer.close()
        finally:
            self._output.close()


def preview_rows(batch: pa.RecordBatch, rows: int = PREVIEW_ROWS) -> list[dict]:
    """The first rows as Python values; values Python cannot hold (year 0) as text.

    Zoned timestamps are converted without pandas (see ``arrow_values``).
    """
    head = batch.slice(0, rows)
    try:
        return _rows(head)
    except (OverflowError, ValueError):
        return pa.RecordBatch.from_arrays(
            [column.cast(pa.string()) if _castable(column.type) else column for column in head.columns],
            names=head.schema.names,
        ).to_pylist()


def _rows(batch: pa.RecordBatch) -> list[dict]:
    columns = [python_values(column) for column in batch.columns]
    return [dict(zip(batch.schema.names, values)) for values in zip(*columns)]


def _castable(arrow_type: pa.DataType) -> bool:
    return pa.types.is_temporal(arrow_type) or pa.types.is_decimal(arrow_type)


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()

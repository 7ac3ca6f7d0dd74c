"""Merging what a partition's object held with what the source shows now (a replay).

A replay must not remove a row version bronze already held. A version is the row's
key (its primary key, the registry's ``key_columns``, or all columns) plus its
watermark value. The new extract is written first; then every row of the previous
object whose version the extract did not bring again is appended. Where both hold
a version, the source's row wins (its values as they are now).

Memory: only the key columns of both sides are held (as text, for one hash
anti-join); the previous object's rows stream through in batches. Columns the
previous object has and the source no longer has are kept, after the source's
columns, so no value it held is lost.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from platform_assets.ingestion.errors import IngestionError

BATCH_ROWS = 64 * 1024
_ROW = "__row"


@dataclass(frozen=True)
class PreviousObject:
    """The object a partition's replay merges into, downloaded to a local file."""

    path: Path
    schema: pa.Schema
    row_count: int

    @classmethod
    def open(cls, path: Path) -> PreviousObject:
        parquet = pq.ParquetFile(path)
        return cls(path, parquet.schema_arrow, parquet.metadata.num_rows)


def merged_schema(source: pa.Schema, previous: pa.Schema, source_name: str) -> pa.Schema:
    """The source's schema plus the previous object's columns it no longer has.

    A column whose type changed must widen (int32 -> int64, a decimal with more digits,
    ...): other changes (a zoned timestamp made naive, text made numeric) change what a
    value means, so the old rows cannot be kept as they are and a rebuild is the way.
    A column the old rows lack, or that held NULLs there, is nullable in the merge.
    """
    for field in previous:
        index = source.get_field_index(field.name)
        if index >= 0 and not widens(field.type, source.field(index).type):
            raise IngestionError(
                f"{source_name}: the partition's object holds column {field.name!r} as {field.type}, the "
                f"source now has {source.field(index).type}, and a replay keeps the object's rows: "
                "rebuild the partition (run config rebuild: true, or the tag data_platform/rebuild=true) "
                "to replace it with the source as it is now"
            )
    held = {f.name: f for f in previous}
    fields = [
        f if f.name in held and not held[f.name].nullable else f.with_nullable(True)
        for f in source
    ]
    kept = [f.with_nullable(True) for f in previous if source.get_field_index(f.name) < 0]
    return pa.schema([*fields, *kept], metadata=source.metadata)


def version_columns(
    key: list[str], columns: list[str], watermark: str | None, previous: pa.Schema, source_name: str
) -> list[str]:
    """The columns that identify a version on both sides of a merge.

    The key plus the watermark; without a key, the columns both sides have (so that a
    column added since does not make every old row look like another version). When
    the previous object lacks the watermark or a key column (renamed since), its
    versions cannot be told apart: the merge is refused and a rebuild is the way.
    """
    held = set(previous.names)
    missing = [c for c in [*key, *([watermark] if watermark else [])] if c not in held]
    if missing:
        raise IngestionError(
            f"{source_name}: the partition's object has no column {missing} (renamed since?), so a replay "
            "cannot tell its row versions apart: rebuild the partition (run config rebuild: true, or the "
            "tag data_platform/rebuild=true) to replace it with the source as it is now"
        )
    wanted = [*key] if key else [c for c in columns if c in held]
    if watermark is not None and watermark not in wanted:
        wanted.append(watermark)
    return wanted


class HeldValues:
    """What the previous object held in the columns the source no longer has, by version.

    A version the source still has is written from the source, with these columns
    filled from the previous object, so that no value bronze held is lost.
    """

    def __init__(self, previous: PreviousObject, version: list[str], kept: list[str], schema: pa.Schema):
        self.version = version
        self.kept = kept
        if not kept:
            return
        table = pq.ParquetFile(previous.path).read(columns=[*version, *kept])
        keys = pa.table({n: _widened(table.column(n), schema, n) for n in version})
        values = _encoded(keys, version, table.num_rows)
        for name in kept:
            values = values.append_column(f"v_{name}", table.column(name))
        key_names = [c for c in values.column_names if not c.startswith("v_")]
        first = values.group_by(key_names, use_threads=False).aggregate([(f"v_{n}", "first") for n in kept])
        self._values = first.rename_columns([*key_names, *(f"v_{n}" for n in kept)])

    def fill(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if not self.kept or not batch.num_rows:
            return batch
        keys = _encoded(batch, self.version, batch.num_rows)
        keys = keys.append_column(_ROW, pa.array(np.arange(batch.num_rows, dtype=np.int64)))
        joined = keys.join(self._values, keys=[c for c in keys.column_names if c != _ROW],
                           join_type="left outer", use_threads=False)
        joined = joined.sort_by(_ROW)
        columns = list(batch.columns)
        for name in self.kept:
            index = batch.schema.get_field_index(name)
            columns[index] = joined.column(f"v_{name}").combine_chunks().cast(batch.schema.field(name).type)
        return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


def _widened(column: pa.ChunkedArray, schema: pa.Schema, name: str) -> pa.ChunkedArray:
    return pc.cast(column, schema.field(name).type) if schema.get_field_index(name) >= 0 else column


def widens(old: pa.DataType, new: pa.DataType) -> bool:
    """Whether every value of ``old`` converts to ``new`` keeping its meaning."""
    if old == new:
        return True
    if pa.types.is_integer(old) and pa.types.is_integer(new):
        signed = pa.types.is_signed_integer
        return new.bit_width > old.bit_width if signed(new) and not signed(old) else (
            signed(new) == signed(old) and new.bit_width >= old.bit_width
        )
    if pa.types.is_floating(old) and pa.types.is_floating(new):
        return new.bit_width >= old.bit_width
    if pa.types.is_decimal(old) and pa.types.is_decimal(new):
        return new.scale >= old.scale and new.precision - new.scale >= old.precision - old.scale
    return (old, new) in ((pa.string(), pa.large_string()), (pa.binary(), pa.large_binary()))


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with ``schema``'s columns: cast where the type changed, null where missing."""
    columns = []
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            columns.append(pa.nulls(batch.num_rows, field.type))
        else:
            column = batch.column(index)
            columns.append(column if column.type == field.type else pc.cast(column, field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class VersionKeys:
    """The version keys of the rows a new extract wrote, for the anti-join with the previous object.

    A version of one integer, date or timestamp column (a table's usual key) is held
    as its sorted int64 values, 8 bytes a row, and looked up by binary search while
    the previous object streams through. Other versions are encoded as text for a hash
    anti-join, which holds both sides' keys and a hash table at once (~130 bytes a row).
    """

    def __init__(self, columns: list[str]):
        self.columns = columns
        self._parts: list[pa.Table] = []
        self._numbers: list[np.ndarray] | None = None  # None: not decided yet, or encoded
        self._has_null = False
        self._sorted: np.ndarray | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        if self._numbers is None and not self._parts and _numeric_version(batch.schema, self.columns):
            self._numbers = []
        if self._numbers is not None:
            column = batch.column(batch.schema.get_field_index(self.columns[0]))
            self._has_null = self._has_null or column.null_count > 0
            self._numbers.append(_int64_values(column))
        else:
            self._parts.append(_encoded(batch, self.columns, batch.num_rows))

    @property
    def numeric(self) -> bool:
        return self._numbers is not None

    def held(self, column: pa.Array) -> np.ndarray:
        """Which values of ``column`` (the previous object's, as the source's type) were written."""
        if self._sorted is None:  # sorted in place, the parts let go first: two copies at most, briefly
            self._sorted = np.concatenate(self._numbers or [np.empty(0, np.int64)])
            self._numbers = []
            self._sorted.sort()
        values = _int64_values(column, keep_nulls=True)
        found = np.zeros(len(values), dtype=bool)
        if len(self._sorted):
            at = np.minimum(np.searchsorted(self._sorted, values), len(self._sorted) - 1)
            found = self._sorted[at] == values
        if column.null_count:
            found[column.is_null().to_numpy(zero_copy_only=False)] = self._has_null
        return found

    def table(self) -> pa.Table:
        if not self._parts:
            return _encoded(pa.table({}), self.columns, 0)
        return pa.concat_tables(self._parts)


def _numeric_version(schema: pa.Schema, columns: list[str]) -> bool:
    if len(columns) != 1 or schema.get_field_index(columns[0]) < 0:
        return False
    kind = schema.field(columns[0]).type
    return (pa.types.is_integer(kind) and kind != pa.uint64()) or pa.types.is_date32(kind) or pa.types.is_timestamp(kind)


def _int64_values(column: pa.Array | pa.ChunkedArray, keep_nulls: bool = False) -> np.ndarray:
    """The column's values as int64 (dates as days, timestamps in their unit); nulls dropped,
    or (``keep_nulls``) left in place holding any value, for the caller to mask."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_date32(column.type):
        column = column.cast(pa.int32())
    numbers = column.cast(pa.int64())
    if not keep_nulls:
        return numbers.drop_null().to_numpy()
    return np.frombuffer(numbers.buffers()[1], dtype=np.int64)[numbers.offset:numbers.offset + len(numbers)]


def kept_rows(previous: PreviousObject, written: VersionKeys, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Rows of ``previous`` whose version is not among ``written``, shaped as ``schema``."""
    if written.numeric:  # version_columns made sure the previous object has the column
        yield from _kept_by_search(previous, written, schema)
        return
    parquet = pq.ParquetFile(previous.path)
    present = [c for c in written.columns if c in previous.schema.names]
    old_keys = parquet.read(columns=present)
    old_keys = pa.table({name: _widened(old_keys.column(name), schema, name) for name in present})
    encoded = _encoded(old_keys, written.columns, previous.row_count)
    encoded = encoded.append_column(_ROW, pa.array(np.arange(previous.row_count, dtype=np.int64)))
    survivors = encoded.join(
        written.table(), keys=[c for c in encoded.column_names if c != _ROW], join_type="left anti", use_threads=False
    )
    rows = np.sort(survivors.column(_ROW).to_numpy())
    offset = 0
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
        end = offset + batch.num_rows
        first, last = np.searchsorted(rows, [offset, end])
        if last > first:
            yield conform(batch.take(pa.array(rows[first:last] - offset)), schema)
        offset = end


def _kept_by_search(previous: PreviousObject, written: VersionKeys, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    name = written.columns[0]
    for batch in pq.ParquetFile(previous.path).iter_batches(batch_size=BATCH_ROWS):
        key = batch.column(batch.schema.get_field_index(name))
        if key.type != schema.field(name).type:
            key = pc.cast(key, schema.field(name).type)
        kept = ~written.held(key)
        if kept.any():
            yield conform(batch.filter(pa.array(kept)), schema)


def _encoded(batch: pa.RecordBatch | pa.Table, columns: list[str], rows: int) -> pa.Table:
    """Each key column as non-null text plus a null flag: the join then matches NULL with NULL."""
    arrays: dict[str, pa.Array] = {}
    for i, name in enumerate(columns):
        index = batch.schema.get_field_index(name)
        column = batch.column(index) if index >= 0 else pa.nulls(rows)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        arrays[f"k{i}"] = pc.fill_null(_as_text(column), "")
        arrays[f"n{i}"] = pc.is_null(column)
    return pa.table(arrays)


def _as_text(column: pa.Array) -> pa.Array:
    kind = column.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return pa.array([None if v is None else v.hex() for v in column.to_pylist()], pa.string())
    if pa.types.is_nested(kind) or pa.types.is_null(kind):
        return pa.array(
            [None if v is None else json.dumps(v, sort_keys=True, default=str) for v in column.to_pylist()],
            pa.string(),
        )
    return pc.cast(column, pa.string())

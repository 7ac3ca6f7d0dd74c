"""Which keys of one key set are missing from the next: a streaming merge of two sorted streams.

A source that captures deletes records the key of every row in each frontier run's
snapshot, sorted (``key_query``: the key columns in ascending order, text in byte
order, ``COLLATE "C"``). The keys of the previous set that the new one lacks are the
rows deleted in between. Both sets arrive as Arrow batches; the merge holds at most a
batch of each side plus ``MAX_WINDOW_ROWS`` of the new set, however many keys there
are. Python compares key tuples the way PostgreSQL ordered them: integers, dates,
timestamps and UUIDs by value, text by code point (which is UTF-8 byte order, i.e.
``COLLATE "C"``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

MAX_WINDOW_ROWS = 256 * 1024
# Key column types whose order Python reproduces exactly (text: under COLLATE "C").
ORDERED_TYPES = frozenset({"int2", "int4", "int8", "text", "varchar", "uuid", "date", "timestamp", "timestamptz"})
COLLATED_TYPES = frozenset({"text", "varchar"})


class KeyOrderError(ValueError):
    """The key sets are not in one order: comparing them would loop or report wrong keys."""


def missing_keys(old: Iterator[pa.RecordBatch], new: Iterator[pa.RecordBatch]) -> Iterator[pa.Table]:
    """The rows of ``old`` whose key is not in ``new``; both sorted ascending, without duplicates.

    Every column is part of the key. ``new`` is read only as far as ``old`` needs.
    """
    buffer: pa.Table | None = None
    exhausted = False
    for batch in old:
        pending = pa.Table.from_batches([batch])
        while pending.num_rows:
            high = _key(pending, pending.num_rows - 1)
            while not exhausted and (buffer is None or buffer.num_rows < MAX_WINDOW_ROWS) and (
                buffer is None or buffer.num_rows == 0 or _key(buffer, buffer.num_rows - 1) <= high
            ):
                more = next(new, None)
                if more is None:
                    exhausted = True
                elif more.num_rows:
                    table = pa.Table.from_batches([more])
                    buffer = table if buffer is None else pa.concat_tables([buffer, table.cast(buffer.schema)])
            window_full = buffer is not None and buffer.num_rows >= MAX_WINDOW_ROWS
            bound = high if not window_full or _key(buffer, buffer.num_rows - 1) > high else _key(
                buffer, buffer.num_rows - 1)
            old_cut = _count_up_to(pending, bound)
            new_cut = 0 if buffer is None else _count_up_to(buffer, bound)
            if old_cut == 0 and new_cut == 0:
                raise KeyOrderError("the two key sets are not sorted the same way (no key can be compared)")
            window = None if buffer is None else buffer.slice(0, new_cut)
            missing = _not_in(pending.slice(0, old_cut), window)
            if missing.num_rows:
                yield missing
            pending = pending.slice(old_cut)
            if buffer is not None:
                buffer = buffer.slice(new_cut)


def _key(table: pa.Table, row: int) -> tuple[Any, ...]:
    return tuple(column[row].as_py() for column in table.columns)


def _count_up_to(table: pa.Table, bound: tuple[Any, ...]) -> int:
    """How many leading rows of the sorted ``table`` have a key <= ``bound``."""
    low, high = 0, table.num_rows
    while low < high:
        middle = (low + high) // 2
        if _key(table, middle) <= bound:
            low = middle + 1
        else:
            high = middle
    return low


def _not_in(keys: pa.Table, window: pa.Table | None) -> pa.Table:
    if window is None or window.num_rows == 0 or keys.num_rows == 0:
        return keys
    present = pc.is_in(_single(keys), value_set=_single(window.cast(keys.schema)))
    return keys.filter(pc.invert(present))


def _single(table: pa.Table) -> pa.Array:
    """One comparable column per key: the column itself, or the columns' text joined by NUL
    (PostgreSQL text holds no NUL, and each column's text is unambiguous)."""
    if table.num_columns == 1:
        return table.column(0).combine_chunks()
    texts = [pc.cast(column, pa.string()).combine_chunks() for column in table.columns]
    return pc.binary_join_element_wise(*texts, "\x00")

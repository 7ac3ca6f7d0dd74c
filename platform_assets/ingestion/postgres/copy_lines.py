"""Splits a stream of COPY text output into buffers of whole lines, for rows of any size.

pyarrow's streaming CSV reader needs every row to fit in one read block (1 MiB, to
keep memory flat). COPY's text format writes one row per line (newlines in values
are escaped), so cutting the stream after its last newline always yields whole
rows: this module hands out such buffers, about one read chunk each, or one long
row at a time when a row is larger than a chunk. Memory then holds a few copies of
the largest row instead of blocks sized for it.

A field whose text grows past ``MAX_FIELD_TEXT_BYTES`` while its row is still
being read stops the read (``FieldTooLarge``) before it can exhaust memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from platform_assets.ingestion.errors import IngestionError

CHUNK_BYTES = 1024 * 1024
MIB = 1024 * 1024
# The largest value a field may hold (bytes of text or JSON, bytes of a bytea).
MAX_FIELD_BYTES = 64 * MIB
# Its COPY text form: escapes (text) and hex digits (bytea) at most double it.
MAX_FIELD_TEXT_BYTES = 2 * MAX_FIELD_BYTES + 3


class FieldTooLarge(IngestionError):
    """A field exceeds ``MAX_FIELD_BYTES``; names the column and, when known, the row's key."""

    def __init__(self, source_name: str, column: str, key: dict[str, Any] | None):
        self.source_name = source_name
        self.column = column
        self.key = key
        super().__init__(self.describe())

    def with_key(self, key: dict[str, Any] | None) -> FieldTooLarge:
        return FieldTooLarge(self.source_name, self.column, key)

    def describe(self) -> str:
        row = ", ".join(f"{k}={v}" for k, v in self.key.items()) if self.key else "(key unknown)"
        return (
            f"{self.source_name}: column {self.column!r} of the row {row} holds a value larger than the "
            f"{MAX_FIELD_BYTES // MIB} MiB limit of a field; leave it out or shorten it in a custom query "
            "(e.g. left(col, n)), or store such documents outside the table"
        )


def whole_line_buffers(reader: Any, names: list[str], source_name: str) -> Iterator[bytes]:
    """Buffers of complete COPY lines read from ``reader``.

    Raises FieldTooLarge (with the columns before it as the key, when they are
    complete) when a field's text passes ``MAX_FIELD_TEXT_BYTES``.
    """
    pending = bytearray()
    field_start = 0  # where the last field of the pending (incomplete) line starts
    while chunk := reader.read(CHUNK_BYTES):
        end = chunk.rfind(b"\n")
        if end < 0:
            tab = chunk.rfind(b"\t")
            if tab >= 0:
                field_start = len(pending) + tab + 1
            pending += chunk
            if len(pending) - field_start > MAX_FIELD_TEXT_BYTES:
                raise _open_field_error(bytes(pending[:field_start]), names, source_name)
            continue
        if pending:
            pending += chunk[: end + 1]
            yield bytes(pending)
        else:
            yield chunk[: end + 1]
        pending = bytearray(chunk[end + 1 :])
        tab = pending.rfind(b"\t")
        field_start = tab + 1 if tab >= 0 else 0
    if pending:
        yield bytes(pending)


def _open_field_error(prefix: bytes, names: list[str], source_name: str) -> FieldTooLarge:
    """The field being read is the one after the complete fields of ``prefix``."""
    fields = prefix.split(b"\t")[:-1] if prefix else []
    column = names[min(len(fields), len(names) - 1)]
    known = {name: _text(value) for name, value in zip(names, fields)}
    return FieldTooLarge(source_name, column, known or None)


def _text(value: bytes) -> str | None:
    return None if value == b"\\N" else value.decode("utf-8", "replace")

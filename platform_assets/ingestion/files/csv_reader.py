"""Streams a CSV file (optionally gzip-compressed) as typed Arrow batches.

pyarrow's streaming reader reads the file block by block. Types are inferred
from the first block read as text (see ``text_types``) unless pinned; the file is
then read again with booleans (and pinned dates and timestamps) parsed by pyarrow;
numbers, inferred dates and timestamps are read as text and converted exactly (leading
zeros stay text, no rounding, every date held to its ISO pattern). A later value that
does not fit its type raises ``Widen``; the caller restarts with that column as text. Unquoted empty fields are null, quoted empty fields (``""``) are
empty strings.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv

from platform_assets.ingestion.errors import SchemaDetectionError
from platform_assets.ingestion.files.text_types import Widen, convert_strict, infer_type
from platform_assets.ingestion.sink.memory import STREAM_BLOCK_BYTES

DEFAULT_BLOCK_BYTES = 4 * 1024 * 1024
QUOTE_SCAN_CHUNK = 8 * 1024 * 1024
MAX_HEADER_BLOCK_BYTES = 256 * 1024 * 1024
# The largest row a file may hold: its blocks grow up to this size for it.
MAX_ROW_BYTES = 128 * 1024 * 1024
_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): .*CSV conversion error")
_QUOTED_VALUE = re.compile(r"'(.*)'")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _every_case(word: str) -> list[str]:
    return ["".join(chars) for chars in itertools.product(*((c.lower(), c.upper()) for c in word))]


# ``true``/``false`` in any case, as text_types reads booleans (and nothing else: no 1/0).
TRUE_VALUES = _every_case("true")
FALSE_VALUES = _every_case("false")


@dataclass(frozen=True)
class CsvOptions:
    """How a CSV file is parsed (the registry's options for a CSV family)."""

    delimiter: str = ","
    quote_char: str = '"'
    escape_char: str | None = None
    encoding: str = "utf-8"
    null_values: tuple[str, ...] = ("",)
    skip_rows: int = 0
    block_size: int = DEFAULT_BLOCK_BYTES
    """The first block, which types are inferred from."""
    stream_block_size: int = STREAM_BLOCK_BYTES
    """The blocks the rows stream in; a row must fit in one (see ``RowBeyondBlock``)."""
    column_types: dict[str, pa.DataType] = field(default_factory=dict)

    def with_larger_blocks(self) -> CsvOptions:
        """Blocks large enough for a row that did not fit (``MAX_ROW_BYTES`` at most)."""
        stream = min(self.stream_block_size * 4, MAX_ROW_BYTES)
        return replace(self, stream_block_size=stream, block_size=max(self.block_size, stream))


class RowBeyondBlock(Exception):
    """A row is longer than a read block: read the file again with larger blocks."""


def open_input(path: Path) -> pa.NativeFile:
    """The file's bytes, decompressed when its name ends in ``.gz`` (any case)."""
    return pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None)


def is_gzip(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def read_header(path: Path, options: CsvOptions) -> list[str]:
    """Column names from the header line; SchemaDetectionError for empty or unusable headers.

    Read with Python's csv module so that a header without a final newline, blank
    names (renamed ``column_<n>``) and invalid UTF-8 are reported precisely.
    """
    try:
        with open_input(path) as stream:
            text = io.TextIOWrapper(stream, encoding=_python_encoding(options), newline="")
            for _ in range(options.skip_rows):
                text.readline()
            reader = csv.reader(
                text,
                delimiter=options.delimiter,
                quotechar=options.quote_char,
                escapechar=options.escape_char,
                doublequote=True,
                strict=True,
            )
            names = next(reader, None)
    except UnicodeDecodeError as e:
        encoding = "UTF-8" if _python_encoding(options) == "utf-8-sig" else options.encoding
        raise SchemaDetectionError(
            f"Failed to read CSV {path}: the file is not valid {encoding} text ({e})"
        ) from e
    except csv.Error as e:
        line = unclosed_quote_line(path, options)
        if line is not None:
            raise SchemaDetectionError(
                f"Failed to read CSV {path}: unterminated quoted field starting on line {line}"
            ) from e
        raise SchemaDetectionError(f"Failed to read CSV {path}: the header line is malformed ({e})") from e
    except (OSError, EOFError) as e:
        raise SchemaDetectionError(f"Failed to read CSV {path}: {_reason(e)}") from e
    if not names:
        raise SchemaDetectionError(f"Failed to read CSV {path}: the file is empty (no header line)")
    return _checked_names(path, names)


def _python_encoding(options: CsvOptions) -> str:
    utf8 = options.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    return "utf-8-sig" if utf8 else options.encoding


def _checked_names(path: Path, names: list[str]) -> list[str]:
    names = [n if n.strip() else f"column_{i + 1}" for i, n in enumerate(names)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SchemaDetectionError(
            f"Failed to read CSV {path}: the header repeats column names {duplicates}; "
            "Parquet needs unique names"
        )
    return names


def text_batches(
    path: Path,
    names: list[str],
    options: CsvOptions,
    parsed: dict[str, pa.DataType] | None = None,
    block_size: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """Every data row of the file as columns named ``names``: text, except the columns
    of ``parsed`` (booleans, dates, timestamps), parsed as those types by pyarrow.

    The last value is checked for an unterminated quote: pyarrow reads one to the
    end of the file without complaint, leaving that value holding the rest of the file.
    A value of a ``parsed`` column that does not parse raises ``Widen``.
    ``block_size`` defaults to the options' (the block types are inferred from).
    """
    block_size = block_size or options.block_size
    while True:
        try:
            yield from _text_batches(path, names, options, block_size, parsed or {})
            return
        except _HeaderBeyondBlock:
            # pyarrow skips the header within its first block: a longer header needs a
            # larger block; a file shorter than the block holds only the header.
            if block_size >= _file_size(path):
                return
            if block_size >= MAX_HEADER_BLOCK_BYTES:
                raise SchemaDetectionError(
                    f"Failed to read CSV {path}: the header is longer than {MAX_HEADER_BLOCK_BYTES} bytes"
                ) from None
            block_size *= 4


class _HeaderBeyondBlock(Exception):
    pass


def _file_size(path: Path) -> int:
    if is_gzip(path):
        with open_input(path) as stream:
            size = 0
            while chunk := stream.read(QUOTE_SCAN_CHUNK):
                size += len(chunk)
            return size
    return path.stat().st_size


def _text_batches(
    path: Path, names: list[str], options: CsvOptions, block_size: int, parsed: dict[str, pa.DataType]
) -> Iterator[pa.RecordBatch]:
    last: pa.RecordBatch | None = None
    try:
        with open_input(path) as stream:
            reader = pa_csv.open_csv(
                stream,
                read_options=_read_options(options, names, block_size),
                parse_options=_parse_options(options),
                convert_options=pa_csv.ConvertOptions(
                    column_types={n: parsed.get(n, pa.string()) for n in names},
                    null_values=list(options.null_values),
                    true_values=TRUE_VALUES,
                    false_values=FALSE_VALUES,
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                ),
            )
            for batch in reader:
                if batch.num_rows:
                    last = batch
                yield batch
    except (pa.ArrowInvalid, OSError, EOFError) as e:
        if "Empty CSV file" in str(e):
            return  # a header without data rows
        if "Could not skip initial" in str(e):
            raise _HeaderBeyondBlock from e
        if "straddling object" in str(e):
            if block_size >= MAX_ROW_BYTES:
                raise SchemaDetectionError(
                    f"Failed to read CSV {path}: a row is larger than {MAX_ROW_BYTES // (1024 * 1024)} MiB"
                ) from e
            raise RowBeyondBlock from e
        failed = _CONVERSION_ERROR.search(str(e))
        column = names[int(failed.group(1))] if failed and int(failed.group(1)) < len(names) else None
        if column in parsed:
            value = _QUOTED_VALUE.search(str(e))
            raise Widen(column, value.group(1) if value else None) from e
        raise SchemaDetectionError(f"Failed to read CSV {path}: {_reason(e)}") from e
    if last is not None and _may_hold_unclosed_quote(path, last, options):
        line = unclosed_quote_line(path, options)
        if line is not None:
            raise SchemaDetectionError(
                f"Failed to read CSV {path}: unterminated quoted field starting on line {line}"
            )


def _may_hold_unclosed_quote(path: Path, last: pa.RecordBatch, options: CsvOptions) -> bool:
    """Cheap test: an unclosed quote leaves the last value spanning lines (or, in a file
    without a final newline, indistinguishable from a regular last value). The last byte
    of a compressed file, or of text not in an ASCII-compatible encoding, says nothing:
    a text last value is then scanned for."""
    column = last.column(last.num_columns - 1)
    value = column[last.num_rows - 1].as_py() if pa.types.is_string(column.type) else None
    if value is not None and ("\n" in value or "\r" in value):
        return True
    if is_gzip(path) or not ascii_compatible(options.encoding):
        return value is not None
    with path.open("rb") as f:
        f.seek(0, io.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, io.SEEK_END)
        return f.read(1) not in (b"\n", b"\r")


def typed_batches(
    path: Path, names: list[str], options: CsvOptions, types: dict[str, pa.DataType]
) -> Iterator[pa.RecordBatch]:
    """Batches converted to ``types``; columns missing from ``types`` are inferred
    from the first block (``options.block_size``) and added. The rows are then read
    in smaller blocks, which hold less memory (see ``memory.STREAM_BLOCK_BYTES``)."""
    if any(n not in types for n in names):
        blocks = text_batches(path, names, options)
        first = next(blocks, None)
        blocks.close()  # releases the reader and its read-ahead now, not at garbage collection
        if first is None:
            return  # header only: nothing to infer from
        for name, column in zip(names, first.columns):
            if name not in types:
                types[name] = infer_type(column)
    # Inferred dates and timestamps are converted from text, each value held to its ISO
    # pattern: pyarrow's parser alone would take a later bare date or an hour-only time.
    parsed = {n: t for n, t in types.items()
              if t == pa.bool_() or (_parsed_by_pyarrow(t) and n in options.column_types)}
    schema = pa.schema([pa.field(n, types[n]) for n in names])
    for batch in text_batches(path, names, options, parsed, options.stream_block_size):
        yield pa.RecordBatch.from_arrays(
            [c if n in parsed else convert_strict(c, types[n], n) for n, c in zip(names, batch.columns)],
            schema=schema,
        )


def _parsed_by_pyarrow(arrow_type: pa.DataType) -> bool:
    """Types whose pyarrow CSV parsing is exactly the text conversion's (numbers are
    not: pyarrow reads ``007`` as 7, text_types keeps it as text)."""
    return arrow_type == pa.bool_() or pa.types.is_date32(arrow_type) or pa.types.is_timestamp(arrow_type)


def unclosed_quote_line(path: Path, options: CsvOptions) -> int | None:
    """Line where a quoted field opens that is never closed, following the quoting rules.

    Streams the file in chunks and visits the quote characters only (the bytes
    between them are counted, not walked), so memory stays bounded and the cost
    grows with the number of quotes rather than the file size.
    """
    quote = ord(options.quote_char)
    separators = {ord(options.delimiter), ord("\n"), ord("\r")}
    quote_byte = bytes([quote])
    line, opened_on = 1 + options.skip_rows, 0
    in_quotes = pending_quote = False
    previous: int | None = None  # last byte of the previous chunk (None: start of the data)
    first = True
    with open_input(path) as stream:
        for chunk in _utf8_chunks(stream, options.encoding):
            if first:
                chunk = _skip_preamble(chunk, options.skip_rows)
                first = False
            position, counted = 0, 0
            if pending_quote:
                pending_quote = False
                if chunk[:1] == quote_byte:
                    position = 1  # a doubled quote split across chunks
                else:
                    in_quotes = False
            while (i := chunk.find(quote_byte, position)) >= 0:
                if in_quotes:
                    if i + 1 == len(chunk):
                        pending_quote, position = True, i + 1
                    elif chunk[i + 1] == quote:
                        position = i + 2
                    else:
                        in_quotes, position = False, i + 1
                    continue
                before = chunk[i - 1] if i else previous
                if before is None or before in separators:
                    line += chunk.count(b"\n", counted, i)
                    counted = i
                    in_quotes, opened_on = True, line
                position = i + 1
            line += chunk.count(b"\n", counted)
            previous = chunk[-1]
    return opened_on if in_quotes and not pending_quote else None


def ascii_compatible(encoding: str) -> bool:
    """Whether quotes, delimiters and line breaks are single ASCII bytes in ``encoding``."""
    return codecs.lookup(encoding).name not in _WIDE_ENCODINGS


_WIDE_ENCODINGS = {"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"}


def _utf8_chunks(stream: Any, encoding: str) -> Iterator[bytes]:
    """The stream's bytes; text in a wide encoding (UTF-16/32) re-encoded as UTF-8 first."""
    decoder = None if ascii_compatible(encoding) else codecs.getincrementaldecoder(encoding)(errors="replace")
    while chunk := stream.read(QUOTE_SCAN_CHUNK):
        text = chunk if decoder is None else decoder.decode(chunk).encode("utf-8")
        if text:
            yield text
    if decoder is not None and (tail := decoder.decode(b"", final=True).encode("utf-8")):
        yield tail


def _skip_preamble(chunk: bytes, skip_rows: int) -> bytes:
    if chunk.startswith(codecs.BOM_UTF8):
        chunk = chunk[len(codecs.BOM_UTF8) :]
    for _ in range(skip_rows):
        chunk = chunk[chunk.find(b"\n") + 1 :] if b"\n" in chunk else b""
    return chunk


def _read_options(options: CsvOptions, column_names: list[str], block_size: int) -> pa_csv.ReadOptions:
    """Names given explicitly and the header skipped (pyarrow would keep blank names).

    pyarrow skips physical lines: a header with quoted line breaks spans several.
    """
    header_lines = 1 + sum(len(_LINE_BREAK.findall(name)) for name in column_names)
    return pa_csv.ReadOptions(
        block_size=block_size,
        skip_rows=options.skip_rows + header_lines,
        column_names=column_names,
        encoding=options.encoding,
        use_threads=False,
    )


def _parse_options(options: CsvOptions) -> pa_csv.ParseOptions:
    """Empty lines are skipped, in a one-column file too (as pandas and Python's csv do)."""
    return pa_csv.ParseOptions(
        delimiter=options.delimiter,
        quote_char=options.quote_char,
        escape_char=options.escape_char or False,
        double_quote=True,
        newlines_in_values=True,
    )


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    if "UTF8" in text:
        return f"the file is not valid UTF-8 text ({text})"
    if "gzip" in text.lower() or isinstance(error, EOFError):
        return f"the gzip stream is corrupt or truncated ({text})"
    return text

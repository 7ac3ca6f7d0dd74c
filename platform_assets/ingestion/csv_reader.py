"""Streams a CSV file (optionally gzip-compressed) as typed Arrow batches.

Every field is first read as text by pyarrow's streaming reader (one block in
memory at a time); types are inferred from the first block (see ``text_types``)
unless pinned, then each block is converted exactly. A later value that does not
fit its inferred type raises ``Widen``; the caller restarts with that column as
text. Unquoted empty fields are null, quoted empty fields (``""``) are empty strings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from platform_assets.ingestion.errors import SchemaDetectionError
from platform_assets.ingestion.text_types import convert, infer_type

DEFAULT_BLOCK_BYTES = 16 * 1024 * 1024
SCAN_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class CsvOptions:
    """How a CSV file is parsed (the registry's ``options`` for a CSV family)."""

    delimiter: str = ","
    quote_char: str = '"'
    escape_char: str | None = None
    encoding: str = "utf-8"
    null_values: tuple[str, ...] = ("",)
    skip_rows: int = 0
    block_size: int = DEFAULT_BLOCK_BYTES
    column_types: dict[str, pa.DataType] = field(default_factory=dict)


def open_input(path: Path) -> pa.NativeFile:
    """The file's bytes, decompressed when its name ends in ``.gz``."""
    return pa.input_stream(str(path), compression="gzip" if path.name.endswith(".gz") else None)


def read_header(path: Path, options: CsvOptions) -> list[str]:
    """Column names from the header line; SchemaDetectionError for empty or unusable headers."""
    try:
        with open_input(path) as stream:
            reader = pa_csv.open_csv(
                stream,
                read_options=_read_options(options, block_size=1 << 20),
                parse_options=_parse_options(options),
                convert_options=pa_csv.ConvertOptions(
                    null_values=list(options.null_values), strings_can_be_null=True
                ),
            )
            names = list(reader.schema.names)
    except (pa.ArrowInvalid, OSError, EOFError) as e:
        raise SchemaDetectionError(f"Failed to read CSV {path}: {_reason(e)}") from e
    return _checked_names(path, names)


def _checked_names(path: Path, names: list[str]) -> list[str]:
    names = [n if n.strip() else f"column_{i + 1}" for i, n in enumerate(names)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SchemaDetectionError(
            f"Failed to read CSV {path}: the header repeats column names {duplicates}; "
            "Parquet needs unique names"
        )
    return names


def text_batches(path: Path, names: list[str], options: CsvOptions) -> Iterator[pa.RecordBatch]:
    """Every row of the file as text columns."""
    try:
        with open_input(path) as stream:
            reader = pa_csv.open_csv(
                stream,
                read_options=_read_options(options),
                parse_options=_parse_options(options),
                convert_options=pa_csv.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    null_values=list(options.null_values),
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                ),
            )
            yield from reader
    except (pa.ArrowInvalid, OSError, EOFError) as e:
        raise SchemaDetectionError(f"Failed to read CSV {path}: {_reason(e)}") from e


def typed_batches(
    path: Path, names: list[str], options: CsvOptions, types: dict[str, pa.DataType]
) -> Iterator[pa.RecordBatch]:
    """Batches converted to ``types``; columns missing from ``types`` are inferred and added."""
    for batch in text_batches(path, names, options):
        for name, column in zip(names, batch.columns):
            if name not in types:
                types[name] = infer_type(column)
        schema = pa.schema([pa.field(n, types[n]) for n in names])
        yield pa.RecordBatch.from_arrays(
            [convert(c, types[n], n) for n, c in zip(names, batch.columns)], schema=schema
        )


def check_quotes_closed(path: Path, options: CsvOptions) -> None:
    """Raise SchemaDetectionError when a quoted field is never closed.

    pyarrow reads an unterminated quote to the end of the file without complaint.
    An odd number of quote characters is cheap to detect; the line of the opening
    quote is then found by following the quoting rules.
    """
    quote = options.quote_char.encode(options.encoding)
    count = 0
    with open_input(path) as stream:
        while chunk := stream.read(SCAN_CHUNK):
            count += chunk.count(quote)
    if count % 2 == 0:
        return
    line = _unclosed_quote_line(path, options)
    if line is not None:
        raise SchemaDetectionError(
            f"Failed to read CSV {path}: unterminated quoted field starting on line {line}"
        )


def _unclosed_quote_line(path: Path, options: CsvOptions) -> int | None:
    quote, delimiter = options.quote_char, options.delimiter
    in_quotes = False
    at_field_start = True
    opened_on = line = 1
    pending_quote = False
    with open_input(path) as stream:
        text = stream.read().decode(options.encoding, errors="replace")
    for ch in text:
        if in_quotes:
            if pending_quote:
                pending_quote = False
                if ch == quote:
                    continue  # doubled quote inside a quoted field
                in_quotes = False
            elif ch == quote:
                pending_quote = True
                continue
        if in_quotes:
            if ch == "\n":
                line += 1
            continue
        if ch == quote and at_field_start:
            in_quotes, opened_on = True, line
            continue
        at_field_start = ch in (delimiter, "\n", "\r")
        if ch == "\n":
            line += 1
    return opened_on if in_quotes and not pending_quote else None


def _read_options(options: CsvOptions, block_size: int | None = None) -> pa_csv.ReadOptions:
    return pa_csv.ReadOptions(
        block_size=block_size or options.block_size,
        skip_rows=options.skip_rows,
        encoding=options.encoding,
    )


def _parse_options(options: CsvOptions) -> pa_csv.ParseOptions:
    return pa_csv.ParseOptions(
        delimiter=options.delimiter,
        quote_char=options.quote_char,
        escape_char=options.escape_char or False,
        double_quote=True,
        newlines_in_values=True,
    )


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    if "Empty CSV file" in text:
        return "the file is empty (no header line)"
    if "invalid UTF8" in text or "UTF8" in text:
        return f"the file is not valid {('UTF-8')} text ({text})"
    if "gzip" in text.lower() or isinstance(error, EOFError):
        return f"the gzip stream is corrupt or truncated ({text})"
    return text

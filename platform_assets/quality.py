"""Data quality rules evaluated on the Parquet files a load just wrote (no Dagster here).

Every rule reads only the columns it needs, batch by batch (``unique`` keeps the
key columns of the partition), so checks work on partitions larger than memory.
Each outcome carries the failing rows' count and a small sample of them: the checked
columns, the row's key when the source has one, and ``_row``, the row's 1-based
position in its object (with ``_object`` when the partition has several objects).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from platform_assets.registry_checks import (
    AcceptedValuesCheck,
    NotNullCheck,
    PanderaCheck,
    RangeCheck,
    RowCountCheck,
    UniqueCheck,
)

SAMPLE_ROWS = 5
_HAS_OFFSET = re.compile(r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$")
BATCH_ROWS = 64 * 1024


@dataclass
class CheckOutcome:
    passed: bool
    failing_rows: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class MissingColumn(Exception):
    pass


@dataclass(frozen=True)
class Rows:
    """The partition's objects, local copies first, and what identifies a row in a sample."""

    files: list[Path]
    key_columns: Sequence[str] = ()
    object_keys: Sequence[str] = ()
    source_name: str = ""

    def label(self, index: int) -> str:
        return self.object_keys[index] if index < len(self.object_keys) else self.files[index].name


def evaluate(check: Any, files: list[Path] | Rows) -> CheckOutcome:
    """Run one declared check over the partition's Parquet files."""
    rows = files if isinstance(files, Rows) else Rows(files)
    files = rows.files
    try:
        if isinstance(check, RowCountCheck):
            return row_count(files, check.min, check.max)
        if isinstance(check, NotNullCheck):
            return not_null(rows, check.columns)
        if isinstance(check, UniqueCheck):
            return unique(rows, check.columns)
        if isinstance(check, AcceptedValuesCheck):
            return accepted_values(rows, check.column, check.values)
        if isinstance(check, RangeCheck):
            return value_range(rows, check.column, check.min, check.max)
        if isinstance(check, PanderaCheck):
            return pandera_schema(files, check.schema_ref)
    except MissingColumn as e:
        return CheckOutcome(False, details={"error": f"check {check.name!r}: {e}"})
    raise TypeError(f"unknown check {check!r}")


def row_count(files: list[Path], minimum: int, maximum: int | None) -> CheckOutcome:
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    passed = rows >= minimum and (maximum is None or rows <= maximum)
    return CheckOutcome(passed, details={"row_count": rows, "min": minimum, "max": maximum})


def _rows(files: list[Path] | Rows) -> Rows:
    return files if isinstance(files, Rows) else Rows(files)


def _parquet_files(rows: Rows, columns: list[str]) -> Iterator[tuple[int, pq.ParquetFile]]:
    for index, path in enumerate(rows.files):
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        missing = [c for c in columns if c not in names]
        if missing:
            source = f"source {rows.source_name!r}" if rows.source_name else "the source"
            raise MissingColumn(
                f"columns {missing} are not columns of {source} (object {rows.label(index)} has {names}); "
                "fix the check's columns in the registry"
            )
        yield index, parquet


def _batches(files: list[Path] | Rows, columns: list[str]) -> Iterator[pa.RecordBatch]:
    for _, parquet in _parquet_files(_rows(files), columns):
        yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)


def _failing(files: list[Path] | Rows, columns: list[str], failing_mask: Any) -> CheckOutcome:
    """Rows where ``failing_mask`` holds; the sample names each row by key and position."""
    rows = _rows(files)
    count, sample = 0, []
    for index, parquet in _parquet_files(rows, columns):
        names = parquet.schema_arrow.names
        identity = [c for c in rows.key_columns if c in names and c not in columns]
        position = 0
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=[*identity, *columns]):
            mask = pc.fill_null(failing_mask(batch), False)
            hits = int(pc.sum(mask).as_py() or 0)
            if hits and len(sample) < SAMPLE_ROWS:
                wanted = SAMPLE_ROWS - len(sample)
                numbers = pc.add(pa.array(range(position, position + batch.num_rows), pa.int64()), 1)
                for row, number in zip(batch.filter(mask).slice(0, wanted).to_pylist(),
                                       numbers.filter(mask).slice(0, wanted).to_pylist()):
                    located = {"_row": number, **({"_object": rows.label(index)} if len(rows.files) > 1 else {})}
                    sample.append({**located, **row})
            count += hits
            position += batch.num_rows
    return CheckOutcome(count == 0, count, _printable(sample))


def not_null(files: list[Path] | Rows, columns: list[str]) -> CheckOutcome:
    def mask(batch: pa.RecordBatch) -> pa.Array:
        result = pc.is_null(batch.column(columns[0]))
        for name in columns[1:]:
            result = pc.or_(result, pc.is_null(batch.column(name)))
        return result

    return _failing(files, columns, mask)


def accepted_values(files: list[Path] | Rows, column: str, values: list[Any]) -> CheckOutcome:
    def mask(batch: pa.RecordBatch) -> pa.Array:
        array = batch.column(column)
        allowed = pa.array(values).cast(array.type) if array.type != pa.string() else pa.array([str(v) for v in values])
        return pc.invert(pc.is_in(array, value_set=allowed))

    outcome = _failing(files, [column], mask)
    outcome.details["accepted"] = values
    return outcome


def value_range(files: list[Path] | Rows, column: str, minimum: Any, maximum: Any) -> CheckOutcome:
    def mask(batch: pa.RecordBatch) -> pa.Array:
        array = batch.column(column)
        result = pa.array([False] * len(array))
        if minimum is not None:
            result = pc.or_(result, pc.less(array, _scalar(minimum, array.type)))
        if maximum is not None:
            result = pc.or_(result, pc.greater(array, _scalar(maximum, array.type)))
        return result

    outcome = _failing(files, [column], mask)
    outcome.details.update(min=minimum, max=maximum)
    return outcome


def _scalar(value: Any, arrow_type: pa.DataType) -> pa.Scalar:
    """A bound comparable with the column: numbers as float64 (or the decimal), dates and
    timestamps parsed from text (a date-only bound on a zoned column is midnight UTC)."""
    if pa.types.is_decimal(arrow_type):
        return pa.scalar(value, pa.float64()).cast(pa.decimal128(38, arrow_type.scale), safe=False)
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return pa.scalar(float(value), pa.float64())
    if pa.types.is_timestamp(arrow_type) and isinstance(value, str):
        text = value if "T" in value or " " in value else f"{value}T00:00:00"
        if arrow_type.tz is not None and not _HAS_OFFSET.search(text):
            text += "+00:00"
        return pa.scalar(text).cast(arrow_type)
    return pa.scalar(value).cast(arrow_type)


def unique(files: list[Path] | Rows, columns: list[str]) -> CheckOutcome:
    batches = list(_batches(files, columns))
    if not any(b.num_rows for b in batches):
        return CheckOutcome(True)
    keys = pa.Table.from_batches(batches)
    counts = keys.group_by(columns, use_threads=False).aggregate([([], "count_all")])
    duplicated = counts.filter(pc.greater(counts["count_all"], 1))
    failing = int(pc.sum(duplicated["count_all"]).as_py() or 0)
    sample = duplicated.slice(0, SAMPLE_ROWS).rename_columns([*columns, "occurrences"]).to_pylist()
    return CheckOutcome(failing == 0, failing, _printable(sample), {"duplicate_keys": duplicated.num_rows})


def pandera_schema(files: list[Path], schema_ref: str) -> CheckOutcome:
    import pandera.errors

    schema = load_object(schema_ref)
    wanted = [c for c in getattr(schema, "columns", {})] or None
    failing, sample = 0, []
    for path in files:
        parquet = pq.ParquetFile(path)
        columns = [c for c in wanted if c in parquet.schema_arrow.names] if wanted else None
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            try:
                schema.validate(batch.to_pandas(), lazy=True)
            except pandera.errors.SchemaErrors as e:
                cases = e.failure_cases
                # Row-level failures carry the row index; schema-level ones (a missing
                # column, a wrong dtype) have none and fail every row of the batch.
                row_level = cases["index"].notna() if "index" in cases else None
                if row_level is None or not row_level.all():
                    failing += batch.num_rows
                else:
                    failing += int(cases["index"].nunique())
                if len(sample) < SAMPLE_ROWS:
                    sample += cases.head(SAMPLE_ROWS - len(sample)).astype(str).to_dict("records")
    return CheckOutcome(failing == 0, failing, sample, {"schema": schema_ref})


def load_object(reference: str) -> Any:
    """``package.module:attribute`` -> the object."""
    module_name, attribute = reference.split(":", 1)
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load {reference!r}: {e}") from e


def _printable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v if isinstance(v, (int, float, bool, type(None))) else str(v) for k, v in r.items()} for r in rows]

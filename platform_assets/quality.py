"""Data quality rules evaluated on the Parquet files a load just wrote (no Dagster here).

Every rule reads only the columns it needs, batch by batch (``unique`` keeps the
key columns of the partition), so checks work on partitions larger than memory.
Each outcome carries the failing rows' count and a small sample of them.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
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


def evaluate(check: Any, files: list[Path]) -> CheckOutcome:
    """Run one declared check over the partition's Parquet files."""
    try:
        if isinstance(check, RowCountCheck):
            return row_count(files, check.min, check.max)
        if isinstance(check, NotNullCheck):
            return not_null(files, check.columns)
        if isinstance(check, UniqueCheck):
            return unique(files, check.columns)
        if isinstance(check, AcceptedValuesCheck):
            return accepted_values(files, check.column, check.values)
        if isinstance(check, RangeCheck):
            return value_range(files, check.column, check.min, check.max)
        if isinstance(check, PanderaCheck):
            return pandera_schema(files, check.schema_ref)
    except MissingColumn as e:
        return CheckOutcome(False, details={"error": str(e)})
    raise TypeError(f"unknown check {check!r}")


def row_count(files: list[Path], minimum: int, maximum: int | None) -> CheckOutcome:
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    passed = rows >= minimum and (maximum is None or rows <= maximum)
    return CheckOutcome(passed, details={"row_count": rows, "min": minimum, "max": maximum})


def _batches(files: list[Path], columns: list[str]) -> Iterator[pa.RecordBatch]:
    for path in files:
        parquet = pq.ParquetFile(path)
        missing = [c for c in columns if c not in parquet.schema_arrow.names]
        if missing:
            raise MissingColumn(f"columns {missing} are not in {path.name} ({parquet.schema_arrow.names})")
        yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)


def _failing(files: list[Path], columns: list[str], failing_mask: Any) -> CheckOutcome:
    count, sample = 0, []
    for batch in _batches(files, columns):
        mask = pc.fill_null(failing_mask(batch), False)
        hits = int(pc.sum(mask).as_py() or 0)
        if hits:
            count += hits
            if len(sample) < SAMPLE_ROWS:
                sample += batch.filter(mask).slice(0, SAMPLE_ROWS - len(sample)).to_pylist()
    return CheckOutcome(count == 0, count, _printable(sample))


def not_null(files: list[Path], columns: list[str]) -> CheckOutcome:
    def mask(batch: pa.RecordBatch) -> pa.Array:
        result = pc.is_null(batch.column(columns[0]))
        for name in columns[1:]:
            result = pc.or_(result, pc.is_null(batch.column(name)))
        return result

    return _failing(files, columns, mask)


def accepted_values(files: list[Path], column: str, values: list[Any]) -> CheckOutcome:
    def mask(batch: pa.RecordBatch) -> pa.Array:
        array = batch.column(column)
        allowed = pa.array(values).cast(array.type) if array.type != pa.string() else pa.array([str(v) for v in values])
        return pc.invert(pc.is_in(array, value_set=allowed))

    outcome = _failing(files, [column], mask)
    outcome.details["accepted"] = values
    return outcome


def value_range(files: list[Path], column: str, minimum: Any, maximum: Any) -> CheckOutcome:
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


def unique(files: list[Path], columns: list[str]) -> CheckOutcome:
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

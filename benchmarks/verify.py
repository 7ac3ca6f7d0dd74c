"""Checks that a method's output holds the reference's rows and values, and notes lost types.

Each output Parquet (local file, S3 object, or every Parquet object under an S3
prefix for dlt) is read back, sorted by key and compared column by column with the
generated reference after bringing both to one canonical form per reference type:

- integers: int64 (a float column whose values are all whole numbers converts);
- decimals: the unscaled integer at the reference's scale (``815951.70`` -> 81595170),
  from a decimal of any scale exactly, from a float by rounding ``x * 10**scale``;
- floats: float64, equal within a relative 1e-12 (values differing only in the last
  bits, e.g. from a parser that does not round correctly, are counted in a note);
- timestamps: microseconds since the epoch in UTC (naive values taken as UTC,
  ISO strings parsed);
- dates: days since the epoch (a timestamp or ISO string converts);
- booleans: bool (``"true"``/``"false"`` strings convert);
- JSON columns: the text itself, and where texts differ, ``json.dumps`` with sorted
  keys and compact separators of both sides (structs from pandas become JSON);
- other strings: string.

So a method passes with, say, ``amount`` as float64 where the reference has
``decimal(12,2)``; such changes are listed as type notes ("qty: double, source
int32"), not as differences. Differences are missing/extra columns or keys,
duplicate keys and values that differ after normalisation.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.config import S3Target
from benchmarks.infra import s3_client

MAX_EXAMPLES = 3


@dataclass
class Check:
    """Result of comparing one output with the reference."""

    same: bool
    rows: int
    expected_rows: int
    differences: list[str] = field(default_factory=list)
    type_notes: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = "yes" if self.same else "no (" + "; ".join(self.differences[:MAX_EXAMPLES]) + ")"
        return text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_output(output: dict[str, Any], s3: S3Target, scratch: Path) -> pa.Table | None:
    """The Parquet a method wrote, or None for methods that write nothing."""
    kind = output.get("kind")
    if kind == "none":
        return None
    if kind == "file":
        return pq.read_table(output["path"])
    client = s3_client(s3)
    scratch.mkdir(parents=True, exist_ok=True)
    if kind == "s3":
        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            local = Path(tmp) / "object.parquet"
            client.download_file(output["bucket"], output["key"], str(local))
            return pq.read_table(local)
    if kind == "s3_prefix":
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=output["bucket"], Prefix=output["prefix"]
        ):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".parquet")]
        if not keys:
            raise FileNotFoundError(f"no Parquet object under s3://{output['bucket']}/{output['prefix']}")
        tables = []
        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            for i, key in enumerate(sorted(keys)):
                local = Path(tmp) / f"{i}.parquet"
                client.download_file(output["bucket"], key, str(local))
                tables.append(pq.read_table(local))
        return pa.concat_tables(tables, promote_options="permissive")
    raise ValueError(f"unknown output kind {kind!r}")


def default_write_size(table: pa.Table, scratch: Path) -> int:
    """Size of ``pq.write_table(table, path)`` with pyarrow's defaults (one file)."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        path = Path(tmp) / "default.parquet"
        pq.write_table(table, path)
        return path.stat().st_size


# --- canonical forms --------------------------------------------------------------------


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_large_string(array.type) or pa.types.is_string_view(array.type):
        array = array.cast(pa.string())
    return array


def _plain_type(t: pa.DataType) -> pa.DataType:
    if isinstance(t, pa.ExtensionType):
        t = t.storage_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    return t


def _to_float(a: pa.Array) -> pa.Array:
    return a.cast(pa.float64())


def _to_unscaled(a: pa.Array, scale: int) -> pa.Array:
    """Decimal values as integers in units of ``10**-scale``."""
    if pa.types.is_decimal(a.type):
        try:
            text = a.cast(pa.decimal128(38, scale)).cast(pa.string())
            return pc.replace_substring(text, ".", "").cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # more digits than the reference's scale: compare through floats
    return pc.round(pc.multiply(_to_float(a), float(10**scale))).cast(pa.int64())


def _to_int(a: pa.Array) -> pa.Array:
    if pa.types.is_floating(a.type):
        whole = pc.equal(a, pc.floor(a))
        if not pc.all(pc.fill_null(whole, True)).as_py():
            raise ValueError("holds fractional values")
        return a.cast(pa.int64(), safe=False)
    return a.cast(pa.int64())


def _to_bool(a: pa.Array) -> pa.Array:
    if pa.types.is_string(a.type):
        return pc.equal(pc.utf8_lower(a), "true")
    return a.cast(pa.bool_())


def _to_epoch_us(a: pa.Array) -> pa.Array:
    if pa.types.is_string(a.type):
        import pandas as pd

        parsed = pd.to_datetime(pd.Series(a.to_pylist(), dtype="object"), utc=True, format="ISO8601")
        a = pa.array(parsed, type=pa.timestamp("ns", tz="UTC"))
    if pa.types.is_timestamp(a.type):
        factor = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}[a.type.unit]
        raw = a.cast(pa.int64())
        return pc.divide(raw, 1_000) if factor is None else pc.multiply(raw, factor)
    if pa.types.is_date(a.type):
        return pc.multiply(a.cast(pa.date32()).cast(pa.int32()).cast(pa.int64()), 86_400_000_000)
    raise TypeError(f"cannot read {a.type} as a timestamp")


def _to_days(a: pa.Array) -> pa.Array:
    if pa.types.is_string(a.type):
        a = pc.utf8_slice_codeunits(a, 0, 10).cast(pa.date32())
    elif pa.types.is_timestamp(a.type):
        micros = _to_epoch_us(a)
        return pc.floor(pc.divide(micros.cast(pa.float64()), 86_400_000_000)).cast(pa.int64())
    return a.cast(pa.date32()).cast(pa.int32()).cast(pa.int64())


def _to_string(a: pa.Array) -> pa.Array:
    return a if pa.types.is_string(a.type) else a.cast(pa.string())


def _json_text(value: Any) -> str | None:
    """Canonical JSON text of a JSON string or of an already-parsed value."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def canonical(column: pa.ChunkedArray | pa.Array, ref_type: pa.DataType, is_json: bool = False) -> pa.Array:
    """``column`` in the canonical form of the reference type ``ref_type`` (see module doc)."""
    a = _plain(column)
    if is_json:
        if pa.types.is_string(a.type):
            return a
        return pa.array([_json_text(v) for v in a.to_pylist()], pa.string())
    if pa.types.is_integer(ref_type):
        return _to_int(a)
    if pa.types.is_decimal(ref_type):
        return _to_unscaled(a, ref_type.scale)
    if pa.types.is_floating(ref_type):
        return _to_float(a)
    if pa.types.is_boolean(ref_type):
        return _to_bool(a)
    if pa.types.is_timestamp(ref_type):
        return _to_epoch_us(a)
    if pa.types.is_date(ref_type):
        return _to_days(a)
    return _to_string(a)


def _unequal(left: pa.Array, right: pa.Array) -> pa.Array:
    """Mask of positions where the values differ (null equals null only)."""
    both_null = pc.and_(pc.is_null(left), pc.is_null(right))
    equal = pc.fill_null(pc.equal(left, right), False)
    return pc.invert(pc.or_(equal, both_null))


FLOAT_RELATIVE_TOLERANCE = 1e-12


def _float_unequal(left: pa.Array, right: pa.Array) -> tuple[pa.Array, int]:
    """Mask of float values that differ beyond the tolerance, and how many differ within it."""
    import numpy as np

    exact = _unequal(left, right)
    a = left.to_numpy(zero_copy_only=False).astype(np.float64)
    b = right.to_numpy(zero_copy_only=False).astype(np.float64)
    null_a = np.asarray(pc.is_null(left).to_numpy(zero_copy_only=False), dtype=bool)
    null_b = np.asarray(pc.is_null(right).to_numpy(zero_copy_only=False), dtype=bool)
    with np.errstate(invalid="ignore"):
        close = np.isclose(a, b, rtol=FLOAT_RELATIVE_TOLERANCE, atol=0.0, equal_nan=True)
    differ = (null_a != null_b) | (~null_a & ~null_b & ~close)
    near = int(pc.sum(exact.cast(pa.int64())).as_py() or 0) - int(differ.sum())
    return pa.array(differ), near


def _json_unequal(left: pa.Array, right: pa.Array) -> pa.Array:
    mask = _unequal(left, right)
    positions = pc.indices_nonzero(mask).to_pylist()
    if not positions:
        return mask
    flags = mask.to_pylist()
    lvals = left.take(pa.array(positions)).to_pylist()
    rvals = right.take(pa.array(positions)).to_pylist()
    for pos, lv, rv in zip(positions, lvals, rvals):
        flags[pos] = _json_text(lv) != _json_text(rv)
    return pa.array(flags, pa.bool_())


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def compare(
    reference: pa.Table,
    candidate: pa.Table,
    key: str,
    json_columns: frozenset[str] = frozenset(),
    skip_values: frozenset[str] = frozenset(),
) -> Check:
    """Compare ``candidate`` with ``reference`` (sorted by ``key``, unique keys).

    ``skip_values``: columns whose presence is checked but not their values.
    """
    check = Check(same=True, rows=candidate.num_rows, expected_rows=reference.num_rows)
    names = set(candidate.column_names)
    missing = [n for n in reference.column_names if n not in names]
    check.ignored_columns = [n for n in candidate.column_names if n not in set(reference.column_names)]
    if missing:
        check.differences.append(f"missing columns {missing}")
    for f in reference.schema:
        if f.name in names:
            got = _plain_type(candidate.schema.field(f.name).type)
            if got != f.type:
                check.type_notes.append(f"{f.name}: {got} (reference {f.type})")
    try:
        cand_keys = canonical(candidate.column(key), reference.schema.field(key).type)
    except (pa.ArrowInvalid, ValueError, TypeError, KeyError) as e:
        check.differences.append(f"key column {key!r} unreadable: {e}")
        check.same = False
        return check
    order = pc.sort_indices(cand_keys)
    cand_keys = cand_keys.take(order)
    ref_keys = canonical(reference.column(key), reference.schema.field(key).type)
    ref_order = pc.sort_indices(ref_keys)
    ref_keys = ref_keys.take(ref_order)
    duplicates = len(cand_keys) - len(pc.unique(cand_keys))
    if duplicates:
        check.differences.append(f"{duplicates} duplicate keys")
    in_ref = pc.is_in(cand_keys, value_set=ref_keys)
    in_cand = pc.is_in(ref_keys, value_set=cand_keys)
    extra = len(cand_keys) - pc.sum(in_ref.cast(pa.int64())).as_py() if len(cand_keys) else 0
    lost = len(ref_keys) - pc.sum(in_cand.cast(pa.int64())).as_py() if len(ref_keys) else 0
    if lost:
        check.differences.append(f"{lost} rows missing")
    if extra:
        check.differences.append(f"{extra} unexpected rows")
    cand_take = order.filter(in_ref)
    ref_take = ref_order.filter(in_cand)
    if not duplicates and len(cand_take) == len(ref_take):
        shown_keys = ref_keys.filter(in_cand)
        for f in reference.schema:
            if f.name not in names or f.name in skip_values or f.name == key:
                continue
            is_json = f.name in json_columns
            try:
                left = canonical(reference.column(f.name).take(ref_take), f.type, is_json)
                right = canonical(candidate.column(f.name).take(cand_take), f.type, is_json)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, TypeError) as e:
                check.differences.append(f"{f.name}: cannot compare ({e})")
                continue
            if is_json:
                mask = _json_unequal(left, right)
            elif pa.types.is_floating(f.type):
                mask, near = _float_unequal(left, right)
                if near:
                    check.type_notes.append(
                        f"{f.name}: {near} values differ in the last bits only (within "
                        f"{FLOAT_RELATIVE_TOLERANCE:g} relative; counted as equal)"
                    )
            else:
                mask = _unequal(left, right)
            count = pc.sum(mask.cast(pa.int64())).as_py() or 0
            if count:
                first = pc.indices_nonzero(mask)[0].as_py()
                raw_ref = reference.column(f.name).take(ref_take)[first].as_py()
                raw_cand = candidate.column(f.name).take(cand_take)[first].as_py()
                check.differences.append(
                    f"{f.name}: {count} values differ (e.g. {key}={shown_keys[first].as_py()}: "
                    f"{_show(raw_cand)} vs {_show(raw_ref)})"
                )
    check.same = not check.differences
    return check

"""Deterministic benchmark data: the PostgreSQL table and the CSV / NDJSON twins.

Every value comes from ``numpy.random.default_rng(seed)``, so the same sizes and seed
give byte-identical files and tables. The generated Arrow tables are also the
*reference* every method's output is checked against (``verify``): they are the
truth the source was loaded from, independent of any reader under test.

Table ``bench_orders`` (PostgreSQL): ``id bigint`` primary key, ``qty integer``
(10% NULL), ``amount numeric(12,2)``, ``name text`` (2% NULL, with commas, quotes,
non-ASCII), ``updated_at timestamptz`` (indexed), ``active boolean``, ``attrs jsonb``
(5% NULL, small objects), ``day date``.

File twins (``orders.csv`` and ``orders.ndjson``, same rows): id, customer, email,
country, amount, quantity (5% missing), discount, created_at (ISO, ``Z``),
order_date, is_active, note (3% missing; commas, quotes, non-ASCII).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

GENERATOR_VERSION = 1  # bump when the generated data changes (invalidates cached files)
EPOCH_2024_US = 1_704_067_200 * 1_000_000  # 2024-01-01T00:00:00Z
YEAR_US = 365 * 86_400 * 1_000_000
DAY_2024 = 19_723  # 2024-01-01 as days since 1970-01-01
LOAD_CHUNK_ROWS = 200_000
WRITE_CHUNK_ROWS = 100_000

FIRST = ["Anna", "Bjørn", "Chloé", "Dmitri", "Émile", "Fatima", "Günter", "Hiro", "Inés", "José",
         "Kai", "Léa", "Mateo", "Noor", "Olu", "Priya", "Quinn", "Rosa", "Søren", "Zoë"]
LAST = ["Smith", "Müller", "O'Brien", "García", "Nakamura", 'The "Best" Co', "Smith, Jr.",
        "Öztürk", "Nguyen", "Kowalski", "Da Silva", "Ivanova", "Dubois", "Rossi", "北京商贸"]
TAGS = ["red", "green", "blue", "café", "promo", "b2b", "vip", "returns"]
COUNTRIES = ["DE", "FR", "US", "GB", "JP", "BR", "IN", "NL", "SE", "ES"]
NOTES = ["leave at door", "call, then ring", 'fragile "glass"', "gift wrap", "Zoë's order",
         "deliver after 6pm", "速达", "no plastic", "back entrance; code 12", "weekday only"]

TABLE_DDL = """
CREATE TABLE {name} (
    id bigint NOT NULL,
    qty integer,
    amount numeric(12,2) NOT NULL,
    name text,
    updated_at timestamptz NOT NULL,
    active boolean NOT NULL,
    attrs jsonb,
    day date NOT NULL
)
"""
TABLE_JSON_COLUMNS = frozenset({"attrs"})


def _null_where(values: pa.Array, mask: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.scalar(None, values.type), values)


def _money_text(cents: np.ndarray) -> pa.Array:
    """Exact decimal text (``-1234.05``) of integer cents."""
    sign = pa.array(np.where(cents < 0, "-", ""))
    absolute = np.abs(cents)
    whole = pc.cast(pa.array(absolute // 100), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(absolute % 100), pa.string()), 2, "0")
    return pc.binary_join_element_wise(sign, whole, ".", frac, "")


def _pick(choices: list[str], rng: np.random.Generator, rows: int) -> pa.Array:
    return pa.array(choices, pa.string()).take(pa.array(rng.integers(0, len(choices), rows)))


def table_reference(rows: int, seed: int) -> pa.Table:
    """The rows of ``bench_orders``, typed as the engine maps the PostgreSQL columns."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, rows + 1, dtype=np.int64)
    qty = _null_where(pa.array(rng.integers(0, 10_000, rows, dtype=np.int32)), rng.random(rows) < 0.10)
    amount = pc.cast(_money_text(rng.integers(-100_000_000, 100_000_000, rows)), pa.decimal128(12, 2))
    name = pc.binary_join_element_wise(_pick(FIRST, rng, rows), _pick(LAST, rng, rows), " ")
    name = _null_where(name, rng.random(rows) < 0.02)
    updated_at = pa.array(EPOCH_2024_US + rng.integers(0, YEAR_US, rows), pa.int64()).cast(
        pa.timestamp("us", tz="UTC")
    )
    active = pa.array(rng.random(rows) < 0.5)
    # PostgreSQL's own jsonb text form (keys by length, then bytes; ", " and ": "), so
    # the reference equals jsonb::text.
    attrs = pc.binary_join_element_wise(
        '{"k": ', pc.cast(pa.array(rng.integers(0, 1000, rows)), pa.string()),
        ', "ok": ', pa.array(np.where(rng.random(rows) < 0.5, "true", "false")),
        ', "tag": "', _pick(TAGS, rng, rows), '"}', "",
    )
    attrs = _null_where(attrs, rng.random(rows) < 0.05)
    day = pa.array(DAY_2024 + rng.integers(0, 730, rows, dtype=np.int32), pa.int32()).cast(pa.date32())
    return pa.table({
        "id": pa.array(ids), "qty": qty, "amount": amount, "name": name, "updated_at": updated_at,
        "active": active, "attrs": attrs, "day": day,
    })


def file_reference(rows: int, seed: int) -> pa.Table:
    """The rows of the CSV / NDJSON files, with the types a careful reader produces."""
    rng = np.random.default_rng(seed + 1)
    ids = np.arange(1, rows + 1, dtype=np.int64)
    customer = pc.binary_join_element_wise(_pick(FIRST, rng, rows), _pick(LAST, rng, rows), " ")
    email = pc.binary_join_element_wise(
        "user", pc.cast(pa.array(ids), pa.string()), "@example",
        pc.cast(pa.array(ids % 97), pa.string()), ".com", "",
    )
    country = _pick(COUNTRIES, rng, rows)
    amount = pc.cast(_money_text(rng.integers(0, 10_000_000, rows)), pa.float64())
    quantity = _null_where(pa.array(rng.integers(1, 500, rows, dtype=np.int64)), rng.random(rows) < 0.05)
    discount = pc.cast(
        pc.binary_join_element_wise(
            "0.", pc.utf8_lpad(pc.cast(pa.array(rng.integers(0, 500, rows)), pa.string()), 3, "0"), ""
        ),
        pa.float64(),
    )
    created_at = pa.array(EPOCH_2024_US + rng.integers(0, YEAR_US, rows), pa.int64()).cast(
        pa.timestamp("us", tz="UTC")
    )
    order_date = pa.array(DAY_2024 + rng.integers(0, 730, rows, dtype=np.int32), pa.int32()).cast(pa.date32())
    is_active = pa.array(rng.random(rows) < 0.7)
    note = pc.binary_join_element_wise(
        _pick(NOTES, rng, rows), " #", pc.cast(pa.array(rng.integers(1, 10_000, rows)), pa.string()), ""
    )
    note = _null_where(note, rng.random(rows) < 0.03)
    return pa.table({
        "id": pa.array(ids), "customer": customer, "email": email, "country": country, "amount": amount,
        "quantity": quantity, "discount": discount, "created_at": created_at, "order_date": order_date,
        "is_active": is_active, "note": note,
    })


# --- text forms -----------------------------------------------------------------------


def _float_text(values: pa.Array, decimals: int) -> pa.Array:
    """Shortest exact text of floats that were generated with ``decimals`` digits."""
    scaled = pc.round(pc.multiply(values, 10**decimals)).to_numpy(zero_copy_only=False).astype(np.int64)
    whole = pc.cast(pa.array(scaled // 10**decimals), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(scaled % 10**decimals), pa.string()), decimals, "0")
    return pc.binary_join_element_wise(whole, ".", frac, "")


def _text_columns(table: pa.Table) -> dict[str, pa.Array]:
    """Each file column as its text form (None for missing values), before quoting."""
    chunk = table.combine_chunks()
    return {
        "id": pc.cast(chunk["id"], pa.string()).combine_chunks(),
        "customer": chunk["customer"].combine_chunks(),
        "email": chunk["email"].combine_chunks(),
        "country": chunk["country"].combine_chunks(),
        "amount": _float_text(chunk["amount"].combine_chunks(), 2),
        "quantity": pc.cast(chunk["quantity"], pa.string()).combine_chunks(),
        "discount": _float_text(chunk["discount"].combine_chunks(), 3),
        "created_at": pc.strftime(chunk["created_at"], format="%Y-%m-%dT%H:%M:%SZ").combine_chunks(),
        "order_date": pc.strftime(chunk["order_date"], format="%Y-%m-%d").combine_chunks(),
        "is_active": pc.if_else(chunk["is_active"], "true", "false").combine_chunks(),
        "note": chunk["note"].combine_chunks(),
    }


def _csv_quote(values: pa.Array) -> pa.Array:
    """RFC 4180 quoting where needed (comma, quote, newline)."""
    needs = pc.match_substring_regex(values, '[",\r\n]')
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(values, '"', '""'), '"', "")
    return pc.if_else(pc.fill_null(needs, False), quoted, values)


def _json_string(values: pa.Array) -> pa.Array:
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise('"', escaped, '"', "")


STRING_FILE_COLUMNS = ("customer", "email", "country", "created_at", "order_date", "note")


def write_csv(table: pa.Table, path: Path) -> None:
    """Header line, then one line per row: unquoted numbers, quotes only where needed,
    a missing value as an empty unquoted field."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(table.column_names) + "\n")
        for start in range(0, table.num_rows, WRITE_CHUNK_ROWS):
            text = _text_columns(table.slice(start, WRITE_CHUNK_ROWS))
            fields = [pc.fill_null(_csv_quote(text[n]), "") for n in table.column_names]
            lines = pc.binary_join_element_wise(*fields, ",")
            out.write("\n".join(lines.to_pylist()) + "\n")


def write_ndjson(table: pa.Table, path: Path) -> None:
    """One JSON object per line, keys in column order, ``null`` for missing values."""
    with path.open("w", encoding="utf-8", newline="") as out:
        for start in range(0, table.num_rows, WRITE_CHUNK_ROWS):
            text = _text_columns(table.slice(start, WRITE_CHUNK_ROWS))
            parts: list[Any] = []
            for i, name in enumerate(table.column_names):
                value = text[name]
                if name in STRING_FILE_COLUMNS:
                    value = _json_string(value)
                parts += [("{" if i == 0 else ", ") + json.dumps(name) + ": ", pc.fill_null(value, "null")]
            parts += ["}", ""]
            lines = pc.binary_join_element_wise(*parts)
            out.write("\n".join(lines.to_pylist()) + "\n")


@dataclass(frozen=True)
class FileData:
    csv: Path
    ndjson: Path
    reference: Path  # Parquet of the reference table


def ensure_file_data(directory: Path, rows: int, seed: int) -> FileData:
    """The CSV / NDJSON twins and their reference, generated once per (rows, seed)."""
    stem = f"orders_{rows}_s{seed}_v{GENERATOR_VERSION}"
    data = FileData(directory / f"{stem}.csv", directory / f"{stem}.ndjson", directory / f"{stem}.reference.parquet")
    done = directory / f"{stem}.done"
    if done.exists() and data.csv.exists() and data.ndjson.exists() and data.reference.exists():
        return data
    directory.mkdir(parents=True, exist_ok=True)
    table = file_reference(rows, seed)
    write_csv(table, data.csv)
    write_ndjson(table, data.ndjson)
    pq.write_table(table, data.reference)
    done.write_text("ok\n")
    return data


def load_table(conn: Any, name: str, reference: pa.Table) -> None:
    """Create ``name`` and COPY ``reference`` into it; key, watermark index, VACUUM.

    VACUUM (FREEZE, ANALYZE) sets hint bits and the visibility map up front, so the
    first method to read the table does not pay for writing them.
    """
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(TABLE_DDL.format(name=name))
        for start in range(0, reference.num_rows, LOAD_CHUNK_ROWS):
            buffer = io.BytesIO()
            pa_csv.write_csv(reference.slice(start, LOAD_CHUNK_ROWS), buffer)
            buffer.seek(0)
            cur.copy_expert(f"COPY {name} FROM STDIN (FORMAT csv, HEADER true)", buffer)
    finish_table(conn, name)


def copy_table(conn: Any, source: str, name: str, rows: int) -> None:
    """``name`` holding the first ``rows`` rows of ``source`` (same DDL, key and index)."""
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(TABLE_DDL.format(name=name))
        cur.execute(f"INSERT INTO {name} SELECT * FROM {source} WHERE id <= %s ORDER BY id", (rows,))
    finish_table(conn, name)


def finish_table(conn: Any, name: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (id)")
        cur.execute(f"CREATE INDEX {name}_updated_at_idx ON {name} (updated_at)")
        cur.execute(f"VACUUM (FREEZE, ANALYZE) {name}")

"""Text from a SQL_ASCII source database.

Promise (README, "Types"): "A SQL_ASCII database stores bytes it cannot convert: valid
UTF-8 bytes load as they are; other bytes fail the run naming the encoding and the fix".
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from platform_resources.config import PostgresSettings
from tests.adversarial._common import D2, registry, rows
from tests.adversarial._common2 import ORDERS
from tests.conftest import database_with_encoding
from tests.helpers import materialize_partition, query, tracking_runs


@pytest.fixture
def sql_ascii() -> Iterator[PostgresSettings]:
    yield from database_with_encoding("SQL_ASCII")


def test_a_null_watermark_row_with_other_bytes_fails_every_partition_that_does_not_read_it(sql_ascii, store_settings):
    """Day D2 holds only valid text ('abc'). Another row, with a NULL watermark (it belongs to
    no day D2 reads), has a key in LATIN1 bytes. The null-watermark count of D2's run
    takes a sample of such rows' keys (``null_watermarks.uncaptured_null_rows``), which
    fails on the bytes: D2 cannot be loaded, nor can any partition but the first, and the
    error ("reading the source failed: invalid byte sequence for encoding "UTF8"") names
    neither SQL_ASCII nor the fix (``pg_extract._not_utf8`` only wraps the COPY). Expected:
    D2 loads its valid rows and reports the NULL-watermark row (its key escaped).
    """
    conn = sql_ascii.connect()
    conn.autocommit = True
    try:
        query(conn, "CREATE TABLE orders (code text PRIMARY KEY, updated_at timestamptz);"
                    "INSERT INTO orders VALUES ('abc', '2024-03-02 08:00Z');"
                    "INSERT INTO orders VALUES (convert_from(decode('e974e9', 'hex'), 'SQL_ASCII'), NULL)")
        result = materialize_partition(registry(ORDERS), sql_ascii, store_settings, "orders", D2,
                                       raise_on_error=False)
        errors = [r["error_message"] for r in tracking_runs(conn, "public.orders")]
    finally:
        conn.close()
    assert result.success, f"D2 failed: {errors}"
    assert rows(store_settings, "orders", D2, "code") == [("abc",)]

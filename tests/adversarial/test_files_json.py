"""Found by an attack test: JSON/NDJSON input outside the grammar, or values changed on the way to bronze,
through the guide's ``ingest_json_file`` (real PostgreSQL, S3 server on loopback)."""

from __future__ import annotations

import pytest

from platform_assets.ingestion.errors import SchemaDetectionError
from platform_assets.ingestion.file_ingestor import ingest_json_file
from tests.helpers import read_parquet, tracking_runs, write_input

DS = "2024-01-01"


def _keys(services) -> list[str]:
    services.store.ensure_bucket(services.bronze_bucket)
    return sorted(o["Key"] for o in services.store.list_objects(services.bronze_bucket))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("nan.ndjson", '{"id": 1, "v": 1.5}\n{"id": 2, "v": NaN}\n'),
        ("inf.ndjson", '{"id": 1, "v": 1.5}\n{"id": 2, "v": -Infinity}\n'),
        ("nan_array.json", '[{"id": 1, "v": 1.5}, {"id": 2, "v": NaN}]'),
    ],
)
def test_non_json_tokens_nan_and_infinity_are_accepted(services, pg_conn, tmp_path, name, text):
    """Promise (README, Bad input): malformed JSON gets a SchemaDetectionError, a ``failed``
    row and nothing in bronze.

    ``NaN`` / ``Infinity`` / ``-Infinity`` are not JSON (RFC 8259 has no such literals;
    pyarrow's JSON parser rejects them). When the fast path refuses the file, the exact
    path's ``json.loads`` / ``JSONDecoder.raw_decode`` accept them by default (no
    ``parse_constant`` hook), so the file loads with NaN/-inf doubles.
    """
    path = write_input(tmp_path, name, text)
    key = f"files/{name}.parquet"
    try:
        ingest_json_file(path, key, DS, services=services)
    except SchemaDetectionError:
        pass
    else:
        stored = read_parquet(services, key).to_pylist()
        pytest.fail(f"{name} (not valid JSON) was loaded: {stored}")
    assert key not in _keys(services)
    assert [r["status"] for r in tracking_runs(pg_conn, name)] == ["failed"]


def test_duplicate_keys_in_an_object_silently_drop_a_value(services, pg_conn, tmp_path):
    """Promises (README, Formats/Bad input): values reach bronze exactly; nested shapes that
    do not fit are "kept losslessly as JSON text"; malformed input fails the file.

    ``{"id": 1, "amount": 10, "amount": 99}``: pyarrow's reader refuses it ("Column(/amount)
    was specified twice"), the exact path then uses ``json.loads``, which keeps the last
    value only. One of the two values of the record is silently discarded and the load
    reports success - neither refused nor kept.
    """
    path = write_input(tmp_path, "dup.ndjson", '{"id": 1, "amount": 10, "amount": 99}\n')
    key = "files/dup.parquet"
    try:
        ingest_json_file(path, key, DS, services=services)
    except SchemaDetectionError:
        return  # refusing the record is acceptable
    rows = read_parquet(services, key).to_pylist()
    assert "10" in str(rows), f"source record held amount 10 and 99; bronze holds {rows}"


def test_ndjson_line_null_becomes_a_phantom_row(services, pg_conn, tmp_path):
    """Promise (README, Formats/Bad input): NDJSON is one *object* per line; a line that is
    a scalar is refused ("line N is not a JSON object", as for ``123`` or ``"x"``).

    A line holding ``null`` is accepted by the fast path (pyarrow's reader) and stored
    as an extra row whose every column is null - a row the file does not contain. The
    exact path (e.g. the same file with a byte-order mark) refuses it.
    """
    path = write_input(tmp_path, "events.ndjson", '{"id": 1, "ok": true}\nnull\n{"id": 2, "ok": false}\n')
    key = "files/events.parquet"
    try:
        ingest_json_file(path, key, DS, services=services)
    except SchemaDetectionError as e:
        assert "line 2" in str(e)
        return
    rows = read_parquet(services, key).to_pylist()
    assert rows == [{"id": 1, "ok": True}, {"id": 2, "ok": False}], f"bronze holds {rows}"


def test_ndjson_nested_integers_beyond_int64_become_inexact_floats(services, tmp_path):
    """Promise (README, Types): integers beyond 64 bits stay text (never rounded).

    Top-level NDJSON fields honour it, and so does a JSON array file with the same
    record (the nested value is kept as text). But in NDJSON a struct field or list
    item holding 12345678901234567890 is stored as the double 1.2345678901234567e19:
    ``json_fast._refuse_inexact_floats`` only inspects top-level columns of the fast
    path's batches. (Likewise ``[1.5, 9007199254740993]`` is stored as
    ``[1.5, 9007199254740992.0]``.)
    """
    path = write_input(
        tmp_path, "nested.ndjson",
        '{"id": 1, "order": {"ref": 12345678901234567890}, "codes": [12345678901234567890]}\n',
    )
    key = "files/nested.parquet"
    ingest_json_file(path, key, DS, services=services)
    [row] = read_parquet(services, key).to_pylist()
    assert str(row["order"]["ref"]) == "12345678901234567890", f"stored {row}"
    assert str(row["codes"][0]) == "12345678901234567890", f"stored {row}"


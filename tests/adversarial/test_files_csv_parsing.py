"""Found by an attack test: CSV structure (quotes, header, compression, long rows) through ``ingest_csv_file``
and ``batch_ingest_files`` against real PostgreSQL and an S3 server on loopback."""

from __future__ import annotations

import gzip

import pytest

from platform_assets.ingestion.errors import SchemaDetectionError
from platform_assets.ingestion.file_ingestor import batch_ingest_files, ingest_csv_file
from tests.helpers import read_parquet, tracking_runs, write_input

DS = "2024-01-01"


def _keys(services) -> list[str]:
    services.store.ensure_bucket(services.bronze_bucket)
    return sorted(o["Key"] for o in services.store.list_objects(services.bronze_bucket))


def test_unterminated_quote_in_gzip_csv_without_final_newline_is_loaded(services, pg_conn, tmp_path):
    """Promise (README, Bad input): unterminated quotes get a SchemaDetectionError, a
    ``failed`` row and nothing in bronze.

    The same bytes uncompressed are refused ("unterminated quoted field starting on
    line 3"); gzip-compressed they load, the open quote silently dropped:
    ``csv_reader._may_hold_unclosed_quote`` only inspects the last byte for plain
    files and returns False for ``.gz`` when the last value has no line break.
    """
    text = 'id,comment\n1,ok\n2,"never closed'
    plain = write_input(tmp_path, "plain.csv", text)
    with pytest.raises(SchemaDetectionError, match="unterminated"):
        ingest_csv_file(plain, "files/plain.parquet", DS, services=services)

    path = write_input(tmp_path, "notes.csv.gz", text)
    key = "files/notes.parquet"
    try:
        ingest_csv_file(path, key, DS, services=services)
    except SchemaDetectionError as e:
        assert "unterminated" in str(e)
    else:
        stored = read_parquet(services, key).to_pylist()
        pytest.fail(f"unterminated quote in {path.name} was loaded: {stored}")
    assert key not in _keys(services)
    assert [r["status"] for r in tracking_runs(pg_conn, "notes.csv.gz")] == ["failed"]


def test_header_name_with_a_quoted_carriage_return_becomes_a_data_row(services, tmp_path):
    """Promise (README, Formats): quoted fields with embedded newlines are supported; a
    load stores exactly the file's rows.

    The header's first name is the quoted ``"a\\rb"`` (a bare CR inside quotes). Python's
    csv module reads the header correctly, but ``csv_reader._read_options`` counts only
    ``\\n`` to decide how many physical lines pyarrow must skip; pyarrow treats the CR as
    a line end, so the tail of the header (``b",c``) is loaded as an extra data row.
    """
    path = write_input(tmp_path, "cr_header.csv", '"a\rb",c\n1,2\n')
    key = "files/cr_header.parquet"
    ingest_csv_file(path, key, DS, services=services)
    rows = read_parquet(services, key).to_pylist()
    assert len(rows) == 1, f"file has 1 data row, bronze holds {len(rows)}: {rows}"


def test_csv_with_a_2_mib_field_is_refused(services, tmp_path):
    """Promise (README, Formats/Memory): quoted fields hold any text; files stream through
    in 1 MiB blocks (memory bounded) - nothing says rows must be short.

    A valid CSV whose one field is 2 MiB (an embedded document, say) fails with
    pyarrow's "straddling object straddles two block boundaries (try to increase block
    size?)" - the block size is not a registry option, so the file can never load. The
    same record as NDJSON (5 MiB even) loads fine.
    """
    payload = "x" * (2 * 1024 * 1024)
    path = write_input(tmp_path, "docs.csv", f'id,body\n1,"{payload}"\n2,short\n')
    key = "files/docs.parquet"
    ingest_csv_file(path, key, DS, services=services)
    table = read_parquet(services, key)
    assert table.column("body").to_pylist() == [payload, "short"]


def test_uppercase_gz_extension_is_recognised_but_not_decompressed(services, pg_conn, tmp_path):
    """Promise (README, Formats): ``.csv`` ... each optionally ``.gz``; batch objects are
    named by stem.

    ``file_format``/``file_stem`` match extensions case-insensitively, so
    ``EXPORT.CSV.GZ`` is taken as a gzip CSV, but ``csv_reader.open_input`` only
    decompresses when the name ends in lowercase ``.gz``: the gzip bytes are parsed as
    text and the file fails ("not valid UTF-8"). (Same in ``json_reader`` for
    ``.JSON.GZ``.)
    """
    write_input(tmp_path, "EXPORT.CSV", "id,name\n1,a\n")
    (tmp_path / "EXPORT2.CSV.GZ").write_bytes(gzip.compress(b"id,name\n2,b\n"))

    results = batch_ingest_files(tmp_path, "*.CSV*", DS, services=services)

    statuses = {r["file"].rsplit("/", 1)[-1]: (r["status"], r.get("error")) for r in results}
    assert statuses["EXPORT.CSV"][0] == "success"
    assert statuses["EXPORT2.CSV.GZ"] == ("success", None), statuses["EXPORT2.CSV.GZ"]


def test_unterminated_quote_in_utf16_csv_swallows_the_following_rows(services, pg_conn, tmp_path):
    """Promise (README, Formats/Bad input): other encodings by option; unterminated quotes
    get a SchemaDetectionError and nothing in bronze.

    In a UTF-16 file (``encoding: utf-16``) an opening quote that is never closed makes
    pyarrow read the rest of the file into that one value: rows 3.. are merged into
    row 2 and the load succeeds with 2 rows instead of failing. The check that catches
    this for UTF-8 (``csv_reader.unclosed_quote_line``) scans the raw bytes for an ASCII
    quote preceded by an ASCII separator - in UTF-16 every separator is followed by a
    0x00 byte, so no quote ever "opens".
    """
    from platform_assets.ingestion.files.csv_reader import CsvOptions

    text = 'id,comment\n1,ok\n2,"never closed\n3,lost\n4,lost too\n'
    utf8 = write_input(tmp_path, "utf8.csv", text)
    with pytest.raises(SchemaDetectionError, match="unterminated"):
        ingest_csv_file(utf8, "files/utf8.parquet", DS, services=services)

    path = write_input(tmp_path, "utf16.csv", text.encode("utf-16"))
    key = "files/utf16.parquet"
    try:
        ingest_csv_file(path, key, DS, options=CsvOptions(encoding="utf-16"), services=services)
    except SchemaDetectionError as e:
        assert "unterminated" in str(e)
    else:
        pytest.fail(f"loaded: {read_parquet(services, key).to_pylist()}")

"""Object key patterns that pass the registry's validation but make partitions or
versions share one object (third adversarial pass).

Promise (README, "What a partition holds"): "Each source writes
``postgres/<name>/<date>/<name>.parquet`` in the bronze bucket (the registry can change
the pattern ...)"; the registry refuses a pattern that does not use ``{date}`` "so that
each partition has its own object". Files: "Each version is loaded once, into an object
of its own"; "A custom ``object_key`` must use ``{date}``, ``{file}`` and ``{version}``".
"""

from __future__ import annotations

import hashlib

import pydantic

from platform_assets.registry import PostgresSource
from tests.adversarial._common import D1, D2, registry
from tests.adversarial._common2 import ORDERS
from tests.adversarial._files_support import age, family
from tests.adversarial._files_support import registry as files_registry
from tests.helpers import (
    bronze_objects,
    materialize_partition,
    query,
    tracking_runs,
    write_input,
)


def test_a_date_pattern_with_a_format_spec_makes_every_day_of_a_month_write_one_object(
        pg_conn, pg, store_settings):
    """``PostgresSource._object_key`` renders the pattern with date="d1" and date="d2" and
    accepts it when they differ. A format spec such as ``{date:.7}`` (a month folder, a
    plausible way to write "postgres/orders/2024-03/...") renders "d1" and "d2" - they
    differ - but on real partition keys it renders ``2024-03`` for every day of March.

    Sequence: a full source ``products`` with ``object_key:
    postgres/{name}/{date:.7}/{name}.parquet``; materialize 2024-03-01 (rows 1, 2), add a
    row, materialize 2024-03-02. Both runs record ``success`` with the same object key:
    D2's snapshot replaced D1's object, so partition D1's snapshot is gone while its
    tracking row still says ``success`` with row_count 2 and D1's checksum.

    Expected: the registry refuses the pattern (render it with two real dates), or each
    partition keeps its own object.
    """
    query(pg_conn, "CREATE TABLE products (id int PRIMARY KEY, name text);"
                   "INSERT INTO products VALUES (1, 'a'), (2, 'b')")
    reg = _accepted(lambda: registry(PostgresSource(name="products", table="products", allow_empty=True,
                                                    object_key="postgres/{name}/{date:.7}/{name}.parquet")))
    if reg is None:
        return
    assert materialize_partition(reg, pg, store_settings, "products", D1).success
    query(pg_conn, "INSERT INTO products VALUES (3, 'c')")
    assert materialize_partition(reg, pg, store_settings, "products", D2).success
    runs = [(r["partition_key"], r["object_key"], r["row_count"], r["status"])
            for r in tracking_runs(pg_conn, "public.products")]
    keys = {key for _, key, _, _ in runs}
    assert len(keys) == 2, f"two partitions recorded one object: {runs}"


def test_a_timestamp_partition_is_replaced_by_the_next_day_under_a_month_pattern(pg_conn, pg, store_settings):
    """Same cause, incremental source: "every version an extract saw is in bronze exactly
    once". ``orders`` (timestamp watermark) with ``object_key:
    postgres/{name}/{date:.7}/{name}.parquet``: row 1 on 2024-03-01, row 2 on 2024-03-02.
    Materialize D1, then D2: D2 is not a replay (no previous load of D2), so it writes its
    window only, at the same key - row 1, which bronze held, is gone from bronze.
    """
    query(pg_conn, "CREATE TABLE orders (id int PRIMARY KEY, updated_at timestamp);"
                   "INSERT INTO orders VALUES (1, '2024-03-01 10:00'), (2, '2024-03-02 10:00')")
    reg = _accepted(lambda: registry(ORDERS.model_validate(
        {**ORDERS.model_dump(by_alias=True), "object_key": "postgres/{name}/{date:.7}/{name}.parquet"})))
    if reg is None:
        return
    assert materialize_partition(reg, pg, store_settings, "orders", D1).success
    assert materialize_partition(reg, pg, store_settings, "orders", D2).success
    held = sorted(r["id"] for t in bronze_objects(store_settings, "postgres/orders/").values() for r in t.to_pylist())
    assert held == [1, 2], f"bronze holds {held}: D2 overwrote D1's object"


def _accepted(build):
    """What ``build`` returns, or None when the registry refuses the pattern (the promise
    is then kept by the refusal, which must say why)."""
    try:
        return build()
    except pydantic.ValidationError as e:
        assert "placeholders must be plain" in str(e) or "would write the same objects" in str(e), str(e)
        return None


def _same_first_hex_digit() -> tuple[str, str]:
    """Two CSV contents whose MD5s start with the same hex digit (1 in 16 pairs do)."""
    first = "id,v\n1,a\n"
    digit = hashlib.md5(first.encode()).hexdigest()[0]
    n = 2
    while True:
        second = f"id,v\n{n},b\n"
        if hashlib.md5(second.encode()).hexdigest()[0] == digit:
            return first, second
        n += 1


def test_a_version_pattern_with_a_format_spec_makes_two_versions_share_an_object(
        tmp_path, pg, pg_conn, store_settings):
    """``check_object_key_pattern`` renders ``{version}`` as "v" and "other" and accepts
    the pattern when they differ. ``{version:.1}`` passes ("v" vs "o"), yet keeps one hex
    digit of the MD5: two versions of a file collide one time in 16.

    Sequence: family with ``object_key: files/{name}/{date}/{file}.{version:.1}.parquet``;
    customers_20240301.csv holds version A; a manual run loads it. The file is replaced by
    version B whose MD5 starts with the same digit; a manual run loads it: B's Parquet is
    uploaded over A's object (``upload.complete`` before ``commit_success``), then the
    commit hits the unique index (family, object_key) and the run is marked failed. Version
    A's ledger row and ``success`` tracking row still point at the object, which now holds
    B's rows ("the object named for a version holds that version" is broken), and B is
    never loaded.
    """
    mat = materialize_partition
    a, b = _same_first_hex_digit()
    path = write_input(tmp_path, "customers_20240301.csv", a)
    age(path)
    reg = _accepted(lambda: files_registry(family(tmp_path, object_key="files/{name}/{date}/{file}.{version:.1}.parquet")))
    if reg is None:
        return
    mat(reg, pg, store_settings, "customer_files", "2024-03-01", group="files", raise_on_error=False)
    path.write_text(b)
    age(path, 1800)
    mat(reg, pg, store_settings, "customer_files", "2024-03-01", group="files", raise_on_error=False)
    [(key,)] = query(pg_conn, "SELECT object_key FROM data_platform.ingested_files")
    stored = bronze_objects(store_settings, key).get(key)
    held = None if stored is None else [r["id"] for r in stored.to_pylist()]
    loaded = query(pg_conn, "SELECT count(*) FROM data_platform.ingested_files")[0][0]
    assert held == [1] and loaded == 2, (
        f"the object {key} of version A holds ids {held}; versions in the ledger: {loaded}"
    )


def test_two_families_with_a_pattern_without_name_overwrite_each_others_objects(
        tmp_path, pg, pg_conn, store_settings):
    """The registry refuses two database sources writing the same objects, but not two
    file families: both read ``customers_*.csv`` in one directory (allowed with
    ``after_load: leave``), with ``object_key: files/{date}/{file}.{version}.parquet``
    (no ``{name}``). Family ``raw`` pins ``zip`` as string, family ``typed`` infers it.
    The ledger's unique index is per family, so both loads succeed - into one object key.

    Sequence: customers_20240301.csv holds zip ``12345``; materialize raw's 2024-03-01
    (zip pinned string), then typed's (zip inferred int64). typed's
    Parquet replaced raw's object: raw's ``success`` row and ledger row describe an object
    (checksum, row count, schema) that no longer exists; ``zip`` is now int64 under raw's
    key.

    Expected: the registry refuses two families whose objects can coincide (as it does for
    database sources), or each family's version keeps its own object.
    """
    path = write_input(tmp_path, "customers_20240301.csv", "id,zip\n1,12345\n")
    age(path)
    pattern = "files/{date}/{file}.{version}.parquet"
    reg = _accepted(lambda: files_registry(family(tmp_path, name="raw", object_key=pattern, column_types={"zip": "string"}),
                                           family(tmp_path, name="typed", object_key=pattern)))
    if reg is None:
        return
    assert materialize_partition(reg, pg, store_settings, "raw", "2024-03-01", group="files").success
    assert materialize_partition(reg, pg, store_settings, "typed", "2024-03-01", group="files").success
    rows = query(pg_conn, "SELECT i.family, i.object_key, m.checksum FROM data_platform.ingested_files i "
                          "JOIN data_platform.ingestion_metadata m ON m.id = i.run_id ORDER BY i.family")
    [(_, raw_key, raw_checksum), (_, typed_key, _)] = rows
    stored = bronze_objects(store_settings, raw_key)[raw_key]
    assert raw_key != typed_key and str(stored.schema.field("zip").type) == "string", (
        f"both families recorded {raw_key}; raw's object now has zip as {stored.schema.field('zip').type}"
    )

"""The family sensor (found by an attack test) (README, Ledger: "A family's sensor requests a run ... for
files unchanged across two ticks and absent from the ledger")."""

from __future__ import annotations

import os

from platform_assets.registry import Registry
from tests.adversarial.test_files_ledger import START, _family, _tick
from tests.helpers import write_input


def test_one_file_name_that_is_not_utf8_stops_the_sensor_for_every_file(tmp_path, pg, pg_conn, store_settings):
    """Promise: the sensor requests runs for new, stable files; one bad file never stops
    the others.

    A file whose name is not valid UTF-8 (Latin-1 ``résumé`` from a Windows share:
    Python sees it as a str with surrogate escapes) sits next to a normal file. Every tick
    raises UnicodeEncodeError ("surrogates not allowed") - in
    ``file_partitions.ingested_identities`` (psycopg2 cannot send the path) and in the
    run-key hash - so no run is ever requested, not even for the well-named
    ``customers_20240302.csv``, until someone removes the odd file by hand.
    """
    write_input(tmp_path, "customers_20240302.csv", "id\n1\n")
    (tmp_path / os.fsdecode(b"customers_r\xe9sum\xe9_20240303.csv")).write_bytes(b"id\n2\n")
    family = _family(tmp_path)
    registry = Registry(start_date=START, files=[family])

    try:
        _, cursor = _tick(registry, family, pg, store_settings, None)
        requests, _ = _tick(registry, family, pg, store_settings, cursor)
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"sensor tick failed for the whole family: {type(e).__name__}: {e}") from e
    assert "2024-03-02" in [r.partition_key for r in requests]

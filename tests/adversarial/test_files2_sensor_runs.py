"""The sensor's run requests (second adversarial pass)."""

from __future__ import annotations

from platform_assets.defs import common as defs_common
from platform_assets.ingestion.errors import TransientError
from platform_assets.ingestion.files import family_load
from tests.adversarial._files_support import family, registry, ticks
from tests.helpers import family_rows, launch, query, write_input


def test_a_version_whose_run_failed_for_a_transient_reason_is_requested_under_its_used_run_key(
        tmp_path, pg, pg_conn, store_settings, monkeypatch):
    """Promise: each version is loaded exactly once - by the sensor, without anyone
    stepping in, when the failure was not the file's fault (a transient one is not
    recorded in ``file_failures`` precisely so that it is tried again).

    The sensor requests customers_20240301.csv; its run meets an object-store outage
    (``TransientError``) on every retry and fails. The version is neither loaded nor a
    recorded failure, so later ticks request it again - with the same run key
    (``file_assets._run_request``: family, partition and the versions' hash). Dagster's
    sensor daemon skips a request whose run key already has a run in any state other
    than NOT_STARTED (``dagster._daemon.sensor._get_or_create_sensor_run`` ->
    ``SkippedSensorRun``), so the file is never loaded by the sensor. The same holds for
    a run killed by the OOM killer or a deploy. Only a manual run (or a new file landing
    in the same partition, changing the key) gets it loaded.
    """
    import dagster as dg

    instance = dg.DagsterInstance.ephemeral()
    write_input(tmp_path, "customers_20240301.csv", "id\n1\n")
    reg = registry(family(tmp_path))
    [request], cursor = ticks(reg, "customer_files", pg, store_settings, instance=instance)

    def store_down(*args, **kwargs):
        raise TransientError("customers_20240301.csv: Failed to ingest: the object store is unreachable")

    monkeypatch.setattr(family_load, "load_file", store_down)
    monkeypatch.setattr(defs_common, "RETRY_BASE_SECONDS", 0)
    assert not launch(reg, request, "customer_files", pg, store_settings, instance=instance).success
    monkeypatch.undo()  # the outage is over
    assert query(pg_conn, "SELECT count(*) FROM data_platform.file_failures") == [(0,)]

    used, requested = {request.run_key}, []
    for _ in range(3):
        requests, cursor = ticks(reg, "customer_files", pg, store_settings, cursor, count=1, instance=instance)
        requested += [r.run_key for r in requests]
        launchable = [r for r in requests if r.run_key not in used]  # what the daemon would launch
        for r in launchable:
            used.add(r.run_key)
            launch(reg, r, "customer_files", pg, store_settings, instance=instance)
    assert family_rows(store_settings, "customer_files", "id") == [(1,)], (
        f"failed run's key {request.run_key!r}; re-requested under {requested!r}: the daemon skips those"
    )


def test_a_file_touched_while_it_was_read_is_recorded_as_a_failed_version_and_never_loaded(
        tmp_path, pg, pg_conn, store_settings, monkeypatch):
    """Promise: each version is loaded exactly once; only versions bad in themselves (name,
    content) are recorded as failures and left alone by the sensor.

    The sensor requests customers_20240301.csv. While its run converts the file, something
    touches it (a sync tool re-copying the same bytes, a backup agent resetting times):
    the content - the version - is unchanged, only the mtime moved. ``load_file`` raises
    IngestionError "the file changed while it was being read ... load it again once it
    is complete", and ``_load_one`` records that version in ``file_failures`` as if its
    content were bad. The next ticks hash the file again: same MD5, ``has_failed`` ->
    never requested again. The file is never loaded by the sensor.
    """
    import os

    from platform_assets.ingestion.files import load as file_load

    path = write_input(tmp_path, "customers_20240301.csv", "id\n1\n")
    reg = registry(family(tmp_path))
    [request], cursor = ticks(reg, "customer_files", pg, store_settings)

    real_converter = file_load._converter

    def converter_while_touched(request_, text_columns):
        convert = real_converter(request_, text_columns)

        def run(*args):
            result = convert(*args)
            stat = path.stat()
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # same bytes
            return result
        return run

    monkeypatch.setattr(file_load, "_converter", converter_while_touched)
    launch(reg, request, "customer_files", pg, store_settings)
    monkeypatch.undo()

    for _ in range(3):
        requests, cursor = ticks(reg, "customer_files", pg, store_settings, cursor, count=1)
        for r in requests:
            launch(reg, r, "customer_files", pg, store_settings)
    failures = query(pg_conn, "SELECT relative_path, error_message FROM data_platform.file_failures")
    assert family_rows(store_settings, "customer_files", "id") == [(1,)], f"never loaded; failures: {failures}"


def test_one_large_file_makes_a_tick_last_as_long_as_its_hash_whatever_the_budget(
        tmp_path, pg, store_settings, monkeypatch):
    """Promise: the sensor loads the versions it saw at rest; hashing is bounded per tick
    (``family_watch``: "files not hashed yet wait for the next one"); one file never
    blocks the others.

    ``plan_tick`` checks its deadline only before starting a file: the MD5 of a large
    file runs to its end whatever the budget. A tick therefore lasts as long as the
    largest new file takes to hash. Scaled down here: budget 0.5 s, a 1 GiB (sparse)
    file that takes seconds. At full scale (budget 20 s) any file whose hash takes more
    than ~40 s (tens of GB: a database dump) makes every tick exceed Dagster's sensor
    evaluation timeout (60 s by default): the tick fails, its cursor is not saved, the
    next tick hashes the same file again - no file of the family is ever requested.
    """
    import json

    from platform_assets.ingestion.files import family_scan, family_watch

    class Clock:
        """A clock that moves 0.1 s each time it is read: no wall-clock timing in the test."""

        now = 0.0

        def monotonic(self) -> float:
            self.now += 0.1
            return self.now

    clock = Clock()
    monkeypatch.setattr(family_watch, "HASH_SECONDS_PER_TICK", 0.5)
    big = tmp_path / "customers_20240301_big.csv"
    with big.open("wb") as f:
        f.write(b"id\n1\n")
        f.truncate(1 << 30)
    write_input(tmp_path, "customers_20240301_small.csv", "id\n2\n")
    reg = registry(family(tmp_path))
    _, cursor = ticks(reg, "customer_files", pg, store_settings, count=1)
    monkeypatch.setattr(family_watch.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(family_scan.time, "monotonic", clock.monotonic)
    _, cursor = ticks(reg, "customer_files", pg, store_settings, cursor, count=1)
    # The budget is 5 clock reads: hashing stopped after a few chunks, not 1 GiB of them.
    assert clock.now < 2.0, f"the tick read the clock {clock.now * 10:.0f} times (one 1 GiB file)"
    state = json.loads(cursor)["files"]["customers_20240301_big.csv"][3]
    assert state in (family_watch.PENDING, family_watch.LARGE)

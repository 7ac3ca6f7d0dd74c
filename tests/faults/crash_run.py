"""Runs one incremental extract of ``public.orders`` and SIGKILLs its own process on the way.

Used by test_process_killed.py: ``python -m tests.faults.crash_run '<json spec>'``.
The patches live in this process only. ``kill_at``:

- ``after_upload``: ``run_records.commit_success`` (called right after the upload) kills:
  the object is stored, the run's row stays ``running``, the watermark does not move;
- ``during_extract``: ``ParquetSink.write`` kills after the first batch, while psql
  processes still stream (the full read runs in parallel psql streams, and their
  pipes are read slowly so that psql is still writing when the first batch is
  stored: pyarrow otherwise reads the whole COPY output ahead); the PIDs and states
  of this process's children are written to ``spec["pids_file"]`` first.

Exits 3 if the kill point was never reached.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


def _children() -> list[tuple[int, str]]:
    """(pid, state) of this process's children (state R/S/D: running, Z: exited)."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(stat[1]) == me:
                found.append((int(entry.name), stat[0]))
    return found


class _SlowPipe:
    """A COPY pipe read at ~2.5 MiB/s: psql blocks on its full pipe in between."""

    CHUNK = 256 * 1024

    def __init__(self, raw: Any):
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        time.sleep(0.1)
        return self._raw.read(self.CHUNK if size < 0 else min(size, self.CHUNK))

    def readable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def close(self) -> None:
        self._raw.close()


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main(spec: dict[str, Any]) -> int:
    from platform_assets.ingestion.database_ingestor import extract_table_incremental
    from platform_assets.ingestion.postgres import copy_streams
    from platform_assets.ingestion.postgres import extract as pg_extract
    from platform_assets.ingestion.services import Services
    from platform_assets.ingestion.sink.parquet import ParquetSink
    from platform_assets.ingestion.tracking import run_records
    from platform_resources.config import ObjectStoreSettings, PostgresSettings
    from platform_resources.object_store import ObjectStore

    pg = PostgresSettings(**spec["pg"])
    store = ObjectStoreSettings(**spec["store"])
    services = Services(
        source=pg, platform=pg, store=ObjectStore(store.client(), store.endpoint_url),
        bronze_bucket=spec["bucket"], lock_wait_seconds=30, work_dir=Path(spec["work_dir"]),
    )
    if spec["kill_at"] == "after_upload":
        run_records.commit_success = lambda *args, **kwargs: _die()
    elif spec["kill_at"] == "during_extract":
        pg_extract.PARALLEL_MIN_PAGES = 1  # a full read in parallel psql streams
        parse = copy_streams.parse_copy_text
        copy_streams.parse_copy_text = lambda reader, *args: parse(_SlowPipe(reader), *args)
        original = ParquetSink.write

        def write(self: ParquetSink, batch: Any) -> None:
            original(self, batch)
            Path(spec["pids_file"]).write_text(json.dumps(_children()))
            _die()

        ParquetSink.write = write  # type: ignore[method-assign]
    else:
        raise ValueError(spec["kill_at"])
    extract_table_incremental(
        "orders", "public", "updated_at", spec["key"], spec["date"], services=services
    )
    return 3


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))

"""The load skeleton both pipelines share: a staging directory and a streamed upload.

The Parquet file is written into a temporary directory while it is uploaded to its
key (``GrowingFileUpload``); the object appears at its key only when ``publish``
completes the upload, after checking that the run still holds its source's lock (a
run whose session died, and whose source another run took over, stores nothing).
Any exception inside the block aborts the upload: nothing is stored.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platform_assets.ingestion.services import Services
from platform_assets.ingestion.sink.upload import GrowingFileUpload
from platform_assets.ingestion.tracking.locks import assert_holds_lock


@dataclass(frozen=True)
class Stage:
    directory: Path
    """Scratch space of this load (removed with the block)."""
    local: Path
    """Where the Parquet file is written."""
    upload: GrowingFileUpload

    def publish(self, platform: Any, lock: str, size_bytes: int) -> None:
        """Make the object visible at its key, if ``platform`` still holds ``lock``."""
        assert_holds_lock(platform, lock)
        self.upload.complete(size_bytes)


@contextmanager
def staged_upload(services: Services, object_key: str) -> Iterator[Stage]:
    """A ``Stage`` for ``object_key`` in the bronze bucket (see the module docstring)."""
    services.store.ensure_bucket(services.bronze_bucket)
    with tempfile.TemporaryDirectory(prefix="ingest-", dir=services.work_dir) as tmp:
        directory = Path(tmp)
        local = directory / "data.parquet"
        upload = GrowingFileUpload(services.store, local, services.bronze_bucket, object_key)
        try:
            yield Stage(directory, local, upload)
        except BaseException:
            upload.abort()
            raise

"""The life of one tracking row: lock, ``running``, then ``success`` or ``failed``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from platform_assets.ingestion import tracking
from platform_assets.ingestion.errors import IngestionError, TransientError
from platform_assets.ingestion.memory import bound_resident_memory
from platform_assets.ingestion.object_keys import validate_object_key
from platform_assets.ingestion.services import Services
from platform_resources.object_store import ObjectStoreError

log = logging.getLogger(__name__)


@contextmanager
def tracked_run(services: Services, start: tracking.RunStart) -> Iterator[tuple[Any, int]]:
    """Yield ``(platform connection, run id)`` while holding the source's lock.

    Runs of the source left ``running`` by a crashed process are marked ``failed``
    first. An exception inside the block marks this run ``failed`` with its message
    and leaves as an IngestionError; the block itself commits ``success``.
    """
    validate_object_key(start.object_key)
    bound_resident_memory()
    platform = services.connect_platform()
    try:
        with tracking.source_lock(platform, start.source_name, services.lock_wait_seconds):
            stale = tracking.fail_stale_runs(platform, start.source_name)
            if stale:
                log.warning("%s: marked %d stale running row(s) failed", start.source_name, stale)
            run_id = tracking.start_run(platform, start)
            try:
                yield platform, run_id
            except Exception as e:
                tracking.finish_failed(platform, run_id, str(e))
                if isinstance(e, IngestionError):
                    raise
                if isinstance(e, ObjectStoreError) and e.transient:
                    raise TransientError(f"{start.source_name}: Failed to ingest: {e}") from e
                raise IngestionError(f"{start.source_name}: Failed to ingest: {e}") from e
    finally:
        platform.close()

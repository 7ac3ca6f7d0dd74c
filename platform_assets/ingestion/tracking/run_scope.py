"""The life of one tracking row: the source's lock, ``running``, then ``success`` or ``failed``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import psycopg2

from platform_assets.ingestion.errors import IngestionError, TransientError
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.sink.memory import bound_resident_memory
from platform_assets.ingestion.sink.object_keys import (
    check_storable,
    validate_object_key,
)
from platform_assets.ingestion.tracking import locks, run_records
from platform_resources.object_store import ObjectStoreError

log = logging.getLogger(__name__)


@contextmanager
def tracked_run(services: Services, start: run_records.RunStart) -> Iterator[tuple[Any, int]]:
    """Yield ``(platform connection, run id)`` of one run holding the source's lock.

    See ``locked_source`` and ``run_in_session``.
    """
    start, refusal = _storable(start)
    with locked_source(services, start.source_name) as platform:
        with run_in_session(platform, services, start, refusal) as run_id:
            yield platform, run_id


@contextmanager
def locked_source(services: Services, source_name: str, family: str | None = None) -> Iterator[Any]:
    """A platform connection holding the source's advisory lock (a family's file: that file's).

    Every decision that reads the source's tracking state and then writes it is
    taken inside this block. Runs of the source left ``running`` by a crashed
    process are marked ``failed`` first.
    """
    bound_resident_memory()
    with services.platform_connection() as platform:
        with locks.source_lock(platform, locks.lock_name(source_name, family), services.lock_wait_seconds):
            stale = run_records.fail_stale_runs(platform, source_name, family)
            if stale:
                log.warning("%s: marked %d stale running row(s) failed", source_name, stale)
            yield platform


@contextmanager
def run_in_session(
    platform: Any, services: Services, start: run_records.RunStart, refusal: IngestionError | None = None
) -> Iterator[int]:
    """Yield the id of a new ``running`` row; an exception inside the block marks it
    ``failed`` with its message and leaves as an IngestionError (or TransientError).
    The block itself commits ``success``. ``platform`` holds the source's lock."""
    run_id = run_records.start_run(platform, start)
    try:
        if refusal is not None:
            raise refusal
        validate_object_key(start.object_key)
        yield run_id
    except Exception as e:
        _record_failure(platform, run_id, e, services)
        if isinstance(e, IngestionError):
            raise
        if isinstance(e, (psycopg2.OperationalError, psycopg2.InterfaceError)):
            raise TransientError(
                f"{start.source_name}: the connection to the platform database "
                f"{services.platform.describe()} was lost: {str(e).strip()}"
            ) from e
        if isinstance(e, ObjectStoreError) and e.transient:
            raise TransientError(f"{start.source_name}: Failed to ingest: {e}") from e
        raise IngestionError(f"{start.source_name}: Failed to ingest: {e}") from e


def _storable(start: run_records.RunStart) -> tuple[run_records.RunStart, IngestionError | None]:
    """``start`` with names that can be recorded, and the refusal to raise when they could not."""
    refusal = _unstorable(start)
    if refusal is None:
        return start, None
    return replace(
        start,
        source_name=escaped(start.source_name),
        object_key=escaped(start.object_key),
        uri=escaped(start.uri),
        partition_key=None if start.partition_key is None else escaped(start.partition_key),
    ), refusal


def _record_failure(platform: Any, run_id: int, error: Exception, services: Services) -> None:
    """Mark the run failed; when the platform database is unreachable the row stays
    'running' and the next run of the source marks it failed."""
    try:
        run_records.finish_failed(platform, run_id, str(error))
    except psycopg2.Error as e:
        log.error(
            "run %s: could not record its failure in %s (%s); the next run of the source will",
            run_id, services.platform.describe(), str(e).strip(),
        )


def _unstorable(start: run_records.RunStart) -> IngestionError | None:
    try:
        check_storable(source_name=start.source_name, object_key=start.object_key,
                       partition_key=start.partition_key)
    except IngestionError as e:
        return e
    return None


def escaped(text: str) -> str:
    """``text`` with NUL and lone surrogates written as escapes, so it can be recorded."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
